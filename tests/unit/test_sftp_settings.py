"""SFTP folder settings: what an ``sftp://`` URL may say, and which folder sets are refused
before anything connects (exit 2 through the CLI, naming the problem)."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from tracos_sync.config import ConfigurationError, connector_settings
from tracos_sync.connectors.client_erp.files.sftp.location import Server, parse_location
from tracos_sync.connectors.client_erp.files.sftp.settings import (
    SftpFolderSettings,
    folders_on_sftp,
)
from tracos_sync.domain.ports import ConnectorConfig

SERVER = "sftp://tracos@sftp.example:2222"


def settings(**values: str) -> SftpFolderSettings:
    table: dict[str, str] = {
        "data_inbound_dir": f"{SERVER}/x/in",
        "data_outbound_dir": f"{SERVER}/x/out",
        "sftp_key_file": "/keys/id",
        **values,
    }
    return connector_settings(SftpFolderSettings, ConnectorConfig(settings=table, where="t"))


def test_a_url_gives_user_host_port_and_absolute_path() -> None:
    location = parse_location("sftp://me@h.example/drop/in%20box/")
    assert location.server == Server("me", "h.example", 22)
    assert location.path == PurePosixPath("/drop/in box")
    assert str(parse_location(f"{SERVER}/a")) == f"{SERVER}/a"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sftp://me:secret@h/in", "must not hold a password"),
        ("sftp://me%3Asecret@h/in", "must not hold a password"),
        ("sftp://me%3asecret@h/in", "must not hold a password"),
        ("sftp://me%253Asecret@h/in", "must not hold a password"),
        ("sftp://me%3A@h/in", "must not hold a password"),
        ("sftp://h/in", "names no user"),
        ("sftp://me@h", "names no folder"),
        ("sftp://me@h/", "names no folder"),
        ("sftp://me@h/a/../b", "'.' or '..'"),
        ("sftp://me@h:99999/a", "invalid port"),
        ("sftp://me@h:0/a", "invalid port"),
        ("sftp://me@h/a?x=1", "no query"),
        ("ftp://me@h/a", "not an sftp:// URL"),
    ],
)
def test_a_url_that_cannot_name_a_folder_is_refused(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=said(says)) as refused:
        parse_location(url)
    assert "secret" not in str(refused.value)


def said(text: str) -> str:
    return text.replace(".", r"\.").replace("?", r"\?")


def test_processed_and_rejected_default_under_inbound_on_the_same_server() -> None:
    found = settings().locations()
    assert found["DATA_PROCESSED_DIR"].path == PurePosixPath("/x/in/processed")
    assert found["DATA_REJECTED_DIR"].path == PurePosixPath("/x/in/rejected")
    assert {loc.server for loc in found.values()} == {Server("tracos", "sftp.example", 2222)}


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"data_outbound_dir": "/local/out"}, "must be too"),
        ({"data_outbound_dir": "sftp://other@sftp.example:2222/x/out"}, "on one server"),
        ({"data_outbound_dir": f"{SERVER}/x/in"}, "the same folder"),
        ({"data_outbound_dir": f"{SERVER}/x/in/sub"}, "lies inside"),
        ({"data_processed_dir": f"{SERVER}/x/in/a/b"}, "lies inside"),
    ],
)
def test_folder_sets_that_cannot_work_are_refused(values: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        settings(**values)


def test_a_key_file_or_a_password_is_required() -> None:
    table = {"data_inbound_dir": f"{SERVER}/x/in", "data_outbound_dir": f"{SERVER}/x/out"}
    with pytest.raises(ConfigurationError, match="SFTP_KEY_FILE or SFTP_PASSWORD"):
        connector_settings(SftpFolderSettings, ConnectorConfig(settings=table, where="t"))


def test_an_empty_key_file_means_unset() -> None:
    assert settings(sftp_key_file="", sftp_password="pw").sftp_key_file is None
    with pytest.raises(ConfigurationError, match="SFTP_KEY_FILE or SFTP_PASSWORD"):
        settings(sftp_key_file="")


def test_the_password_is_a_secret_never_shown() -> None:
    found = settings(sftp_password="hunter2")
    assert "hunter2" not in repr(found)
    assert found.secrets() == ["hunter2"]


def test_the_transport_is_chosen_by_the_folders_given() -> None:
    assert folders_on_sftp(ConnectorConfig(settings={"DATA_INBOUND_DIR": f"{SERVER}/in"}))
    assert not folders_on_sftp(ConnectorConfig(settings={"data_inbound_dir": "data/in"}))
