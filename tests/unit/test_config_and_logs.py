from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import structlog

from tracos_sync import logs
from tracos_sync.app import AppSettings, check_mongo_uri
from tracos_sync.config import load_settings
from tracos_sync.connectors.client_erp.files import FolderSettings
from tracos_sync.domain.errors import ConfigurationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "MONGO_URI",
        "BATCH_SIZE",
        "LOG_LEVEL",
        "DATA_INBOUND_DIR",
        "DATA_PROCESSED_DIR",
        "DATA_REJECTED_DIR",
        "CLIENT_TIMEZONE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_spec() -> None:
    core = load_settings(AppSettings, None)
    assert (core.mongo_uri, core.mongo_database, core.mongo_collection) == (
        "mongodb://localhost:27017",
        "tractian",
        "workorders",
    )
    assert (core.mongo_retry_seconds, core.batch_size, core.log_level, core.log_format) == (
        30,
        1000,
        "INFO",
        "text",
    )
    files = load_settings(FolderSettings, None)
    assert files.data_inbound_dir == Path("data/inbound")
    assert files.data_outbound_dir == Path("data/outbound")
    assert files.processed_dir == Path("data/inbound/processed")
    assert files.rejected_dir == Path("data/inbound/rejected")
    assert files.client_timezone == "UTC"


def test_archive_folders_follow_the_inbound_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_INBOUND_DIR", "/srv/in")
    files = load_settings(FolderSettings, None)
    assert files.processed_dir == Path("/srv/in/processed")


def test_lowercase_levels_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert load_settings(AppSettings, None).log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BATCH_SIZE", "-1"), ("MONGO_RETRY_SECONDS", "x"), ("LOG_LEVEL", "LOUD")],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(AppSettings, None)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "MONGO_DATABASE",
            "a.b",
            'a database name cannot hold any of / \\ . space " $ NUL (found .)',
        ),
        ("MONGO_DATABASE", "a b$", "(found space, $)"),
        ("MONGO_COLLECTION", "a$b", "a collection name cannot hold $ or NUL (found $)"),
        ("MONGO_COLLECTION", "a..b", "cannot start or end with a dot, nor hold two dots in a row"),
        ("MONGO_COLLECTION", "system.x", "system.* collections are MongoDB's own"),
        ("CLIENT_STATE_COLLECTION", ".state", "cannot start or end with a dot"),
        ("CLIENT_DEAD_LETTER_COLLECTION", "dead$", "(found $)"),
    ],
)
def test_names_mongodb_refuses_are_said_in_words(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(AppSettings, None)
    message = str(caught.value)
    assert f"{variable}: " in message and said in message, message
    assert "pattern" not in message and "Value error" not in message, message


@pytest.mark.parametrize(
    "variable", ["WATCH_INTERVAL", "MONGO_TIMEOUT_SECONDS", "LOCK_TIMEOUT_SECONDS"]
)
def test_intervals_and_timeouts_have_a_floor(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "1e-9")  # an idle watch sweeping at this pace burns a core
    with pytest.raises(ConfigurationError, match=f"{variable}: .*greater than or equal to 0.1"):
        load_settings(AppSettings, None)
    monkeypatch.setenv(variable, "0.1")
    assert getattr(load_settings(AppSettings, None), variable.lower()) == 0.1


def test_bad_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_TIMEZONE", "Nowhere/Special")
    with pytest.raises(ConfigurationError, match=r"CLIENT_TIMEZONE.*unknown time zone"):
        load_settings(FolderSettings, None)


def test_bad_uri_is_a_configuration_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError, match="MONGO_URI") as caught:
        check_mongo_uri("mongodb://admin:hunter2@")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://admin:hunter2@db.example:27017/?authSource=admin",
        "mongodb+srv://admin:hunter2@cluster.example/tractian",
        "mongodb://admin:hunter%32@db.example",
    ],
)
def test_redaction(uri: str) -> None:
    secrets = logs.uri_secrets(uri)
    out = io.StringIO()
    logs.configure("INFO", "json", secrets, stream=out)
    structlog.get_logger("t").error(
        "boom", uri=uri, message=f"failed to reach {uri}", raw="hunter2"
    )
    line = out.getvalue()
    assert "hunter2" not in line and "admin:" not in line
    assert json.loads(line)["event"] == "boom"


SECRET = "pä$$/w+rd=\n"  # escapes, encodes and cuts differently in every form


@pytest.mark.parametrize(
    "shown",
    [
        SECRET,
        repr(SECRET),
        repr(SECRET.encode()),
        json.dumps(SECRET),
        json.dumps(repr(SECRET)),
        SECRET.encode("unicode_escape").decode(),
        quote(SECRET, safe=""),
        quote(SECRET, safe="").lower(),
        quote_plus(SECRET),
        f"Illegal header value b'Bearer {SECRET}'",
        f"cut short: {repr(SECRET)[:8]}",
        f"{quote(SECRET, safe='')[:9]}… and more",
    ],
    ids=[
        "raw",
        "repr",
        "bytes-repr",
        "json",
        "json-of-repr",
        "unicode-escape",
        "url",
        "url-lower-hex",
        "url-plus",
        "header",
        "cut-repr",
        "cut-url",
    ],
)
def test_secrets_are_redacted_in_every_form(shown: str) -> None:
    text = logs.redact_text(f"before {shown} after", [SECRET])
    assert (text.startswith("before ") and text.endswith(" after")) or "…" in text
    assert "***" in text
    assert "w+rd" not in text and "w%2Brd" not in text.replace("%2b", "%2B")
    assert "p\\xc3\\xa4$$" not in text and "pä$$" not in text and "p\\u00e4$$" not in text


def test_redaction_leaves_other_text_and_short_fragments_alone() -> None:
    assert logs.redact_text("nothing to hide here", ["hunter2-long"]) == "nothing to hide here"
    assert logs.redact_text("hunter", ["hunter2-long"]) == "***", "a cut secret is masked"
    assert logs.redact_text("hunte", ["hunter2-long"]) == "hunte", "too short to tell"


def test_log_values_are_redacted_inside_structures_and_objects() -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", ["hunter2-long"], stream=out)
    structlog.get_logger("t").error(
        "boom",
        problems=[{"reason": "saw hunter2-long"}],
        error=ValueError("token hunter2-long refused"),
        count=3,
    )
    line = json.loads(out.getvalue())
    assert "hunter2" not in out.getvalue()
    assert line["problems"] == [{"reason": "saw ***"}]
    assert line["error"] == "token *** refused" and line["count"] == 3


def test_a_url_in_a_configuration_error_is_shown_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tracos_sync.connectors.declarative_http.present_settings import HttpSettings

    password = "s3cr3t/" * 30  # far past the 80 characters shown, and with a slash in it
    monkeypatch.setenv("CLIENT_API_URL", f"https://erp:{password}@erp.example:99999999/api")
    with pytest.raises(ConfigurationError, match="CLIENT_API_URL") as caught:
        load_settings(HttpSettings, None)
    assert "s3cr3t" not in str(caught.value)
    assert "https://***@erp.example:99999999/api" in str(caught.value)


@pytest.mark.parametrize(
    ("given", "token"),
    [
        ("abc.DEF-123_~+/=", "abc.DEF-123_~+/="),
        (" tok\n", "tok"),
        ("\ttok \r\n", "tok"),
        ("  ", None),
    ],
)
def test_whitespace_around_a_token_is_dropped(
    monkeypatch: pytest.MonkeyPatch, given: str, token: str | None
) -> None:
    from tracos_sync.connectors.declarative_http.present_settings import HttpSettings

    monkeypatch.setenv("CLIENT_API_URL", "http://erp.example")
    monkeypatch.setenv("CLIENT_API_TOKEN", given)
    settings = load_settings(HttpSettings, None)
    got = settings.client_api_token
    assert (got.get_secret_value() if got is not None else None) == token


@pytest.mark.parametrize("given", ["to ken", "to\nken", "tök€n", "tok\x7fen"])
def test_a_token_with_odd_characters_inside_is_refused_unseen(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    from tracos_sync.connectors.declarative_http.present_settings import HttpSettings

    monkeypatch.setenv("CLIENT_API_URL", "http://erp.example")
    monkeypatch.setenv("CLIENT_API_TOKEN", given)
    with pytest.raises(ConfigurationError, match="CLIENT_API_TOKEN") as caught:
        load_settings(HttpSettings, None)
    assert "ken" not in str(caught.value) and "to" not in str(caught.value).split(":", 1)[1]


def test_the_connection_pool_grows_with_the_integrations_unless_the_uri_says() -> None:
    """Each integration of watch mode holds a change stream: 140 of them starved the driver's
    default pool of 100 (found by a hostile tester)."""
    from tracos_sync.app import AppSettings, mongo_client

    settings = AppSettings.model_validate({})
    sizes = [
        mongo_client(uri, settings, count).options.pool_options.max_pool_size
        for uri, count in (
            ("mongodb://127.0.0.1:1", 1),
            ("mongodb://127.0.0.1:1", 140),
            ("mongodb://127.0.0.1:1/?maxPoolSize=7", 140),
        )
    ]
    assert sizes == [100, 560, 7]
