"""Reading the integrations file: tables, names, variables, mapping files, located errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.integrations import read_integrations


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_each_integration_with_its_settings_target_and_mapping(tmp_path: Path) -> None:
    path = write(
        tmp_path / "i.toml",
        """
[[integration]]
name = "acme"

[[integration]]
name = "globex"
connector = "http"
tracos = { database = "customers", collection = "globex" }
[integration.settings]
client_api_url = "https://erp.example/api"
[integration.mapping]
timezone = "America/Sao_Paulo"
""",
    )
    acme, globex = read_integrations(path, env_file=None)
    assert (acme.name, acme.connector, dict(acme.settings), acme.mapping) == (
        "acme",
        "files",
        {},
        None,
    )
    assert acme.tracos.collection is None  # the deployment's MONGO_COLLECTION
    assert globex.connector == "http"
    assert (globex.tracos.database, globex.tracos.collection) == ("customers", "globex")
    assert globex.settings == {"client_api_url": "https://erp.example/api"}
    assert globex.mapping == {"timezone": "America/Sao_Paulo"}
    assert globex.where == f"{path}: integration 'globex'"


def test_variables_come_from_the_environment_then_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = write(tmp_path / ".env", "ACME_TOKEN=from-file\nACME_ROOT=/file\n")
    monkeypatch.setenv("ACME_ROOT", "/env")
    path = write(
        tmp_path / "i.toml",
        """
[[integration]]
name = "acme"
[integration.settings]
token = "${ACME_TOKEN}"
root = "${ACME_ROOT}/in"
price = "$5 and $HOME stay as they are"
[integration.mapping]
constant = "${ACME_TOKEN}"
""",
    )
    (acme,) = read_integrations(path, env_file=str(env_file))
    assert acme.settings["token"] == "from-file"
    assert acme.settings["root"] == "/env/in"
    assert acme.settings["price"] == "$5 and $HOME stay as they are"
    # Only settings are filled in: a mapping says what the customer's records hold.
    assert acme.mapping == {"constant": "${ACME_TOKEN}"}


def test_a_mapping_file_is_read_from_its_mapping_table(tmp_path: Path) -> None:
    write(tmp_path / "m.toml", '[mapping]\ntimezone = "UTC"\n')
    write(tmp_path / "empty.toml", 'timezone = "UTC"\n')
    path = write(
        tmp_path / "i.toml",
        f'[[integration]]\nname = "acme"\nmapping = "{tmp_path / "m.toml"}"\n'
        f'[[integration]]\nname = "globex"\nmapping = "{tmp_path / "empty.toml"}"\n',
    )
    with pytest.raises(
        ConfigurationError,
        match=r"integration 'globex': mapping: .* must hold one \[mapping\] table",
    ):
        read_integrations(path, env_file=None)
    path.write_text(path.read_text().split('[[integration]]\nname = "globex"')[0])
    (acme,) = read_integrations(path, env_file=None)
    assert acme.mapping == {"timezone": "UTC"}
    assert "mapping file" in acme.where


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "integration: Field required"),
        ("integration = []", "integration: List should have at least 1 item"),
        ('[[integration]]\nname = "a"\nconector = "x"', "integration 'a': conector: unknown key"),
        ("[[integration]]\nconnector = 'files'", "integration[0]: name: Field required"),
        (
            '[[integration]]\nname = "-a"',
            "integration '-a': name: an integration's name is lower-case letters",
        ),
        ('[[integration]]\nname = "a"\ntracos = { database = "a.b" }', "tracos.database"),
        ('[[integration]]\nname = "a"\ntracos = { collection = "system.x" }', "system.*"),
        ('[[integration]]\nname = "a"\n[[integration]]\nname = "a"', "'a' is defined twice"),
        ("[[integration]\n", "not valid TOML"),
        ('[[integration]]\nname = "a"\nmapping = "/nonexistent.toml"', "cannot read"),
        ('[[integration]]\nname = "a"\nsettings = { x = "${UNSET_FOR_TEST}" }', "is not set"),
    ],
)
def test_errors_name_the_file_the_integration_and_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path / "i.toml", text)
    with pytest.raises(ConfigurationError) as caught:
        read_integrations(path, env_file=None)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_a_file_that_is_not_text_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "i.toml"
    path.write_bytes(b"\xff\xfe[[integration]]")
    with pytest.raises(ConfigurationError, match="is not UTF-8 text"):
        read_integrations(path, env_file=None)


def test_a_mapping_file_holds_its_table_and_nothing_else(tmp_path: Path) -> None:
    """A key written above the first header belongs to no table: silently ignoring it would
    read every naive time in the wrong zone (found by a hostile tester)."""
    write(tmp_path / "m.toml", 'timezone = "America/Sao_Paulo"\n[mapping.fields]\nnumber = "id"\n')
    path = write(
        tmp_path / "i.toml", f'[[integration]]\nname = "a"\nmapping = "{tmp_path}/m.toml"\n'
    )
    with pytest.raises(ConfigurationError, match="holds timezone outside it"):
        read_integrations(path, env_file=None)


def test_a_fifo_or_a_device_is_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        read_integrations(fifo, env_file=None)
    path = write(tmp_path / "i.toml", '[[integration]]\nname = "a"\nmapping = "/dev/zero"\n')
    with pytest.raises(ConfigurationError, match="not a regular file"):
        read_integrations(path, env_file=None)


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "i.toml"
    path.write_bytes(b'\xef\xbb\xbf[[integration]]\nname = "a"\n')
    assert [entry.name for entry in read_integrations(path, env_file=None)] == ["a"]


def test_references_that_are_not_variable_names_are_errors_and_dollars_escape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X", "Y")
    path = write(
        tmp_path / "i.toml",
        '[[integration]]\nname = "a"\n[integration.settings]\nliteral = "$${X} and ${X}"\n',
    )
    (entry,) = read_integrations(path, env_file=None)
    assert entry.settings["literal"] == "${X} and Y"
    assert entry.hidden == {"literal"}
    for bad in ("${acme-token}", "${ X }", "${}", "${${X}}"):
        path.write_text(f'[[integration]]\nname = "a"\nsettings = {{ t = "{bad}" }}\n')
        with pytest.raises(ConfigurationError, match="is not a variable name"):
            read_integrations(path, env_file=None)
