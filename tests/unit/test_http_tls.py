"""How the ``api`` connector reaches an ERP (issue 26), below the CLI: secrets in mounted files
read again when they change (and kept when a rotation is half done), the ``[tls]`` table checked
at start-up naming its keys and never a passphrase, the transport built again when a certificate
file changes, the certificate's expiry, and log redaction that knows a rotated secret."""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import trustme

from tests.support.tls_api import PrivateCa
from tracos_sync import logs
from tracos_sync.app import AppSettings
from tracos_sync.app.variables import known_variables
from tracos_sync.config import load_settings
from tracos_sync.connectors.declarative_http.auth import build_auth
from tracos_sync.connectors.declarative_http.description import load_description
from tracos_sync.connectors.declarative_http.secret_files import SecretFile
from tracos_sync.connectors.declarative_http.transport import (
    ReloadingTransport,
    check_transport,
)
from tracos_sync.connectors.declarative_http.transport_checks import (
    certificate_expiry,
    transport_checks,
)
from tracos_sync.connectors.declarative_http.transport_spec import TlsSpec
from tracos_sync.domain.errors import ConfigurationError

WHERE = "integrations.toml: integration 'plant': settings"
TABLE: dict[str, Any] = {
    "base_url": "https://erp.test/odata",
    "read": {"path": "MaintenanceOrder", "paging": {"style": "odata_v4"}},
}
PASSPHRASE = "correct-horse-battery"


def described(root: Path, **keys: Any) -> Any:
    table = copy.deepcopy(TABLE) | keys
    return load_description(table, WHERE, {"PASS": PASSPHRASE})


def write(path: Path, text: str) -> Path:
    """Written as a rotation does it: a new file moved in place (a new inode, a new time)."""
    staged = path.with_suffix(".staged")
    staged.write_text(text)
    staged.replace(path)
    return path


def sent_authorization(auth: Any) -> str:
    request = httpx.Request("GET", "https://erp.test/odata")
    next(auth.auth_flow(request))
    return str(request.headers["Authorization"])


@pytest.fixture(autouse=True)
def structlog_as_it_was() -> Iterator[None]:
    """Tests here point the logs at their own stream: the configuration before is put back, so
    that a later test reads the logs where they were written (``capsys``)."""
    before = structlog.get_config()
    yield
    structlog.configure(**before)


# -- secrets in files -----------------------------------------------------------------------


def test_a_token_in_a_file_is_read_again_when_the_file_changes(tmp_path: Path) -> None:
    token = write(tmp_path / "token", "first-token\n")
    api = described(tmp_path, auth={"type": "bearer", "token": f"file:{token}"})
    auth = build_auth(api.auth, client=None)  # type: ignore[arg-type]
    assert sent_authorization(auth) == "Bearer first-token"
    write(token, "second-token")
    assert sent_authorization(auth) == "Bearer second-token"
    assert set(api.secrets()) >= {"first-token", "second-token"}  # both redacted


def test_a_variable_unset_with_its_file_variable_set_is_that_file(tmp_path: Path) -> None:
    token = write(tmp_path / "token", "first-token")
    table = copy.deepcopy(TABLE) | {"auth": {"type": "bearer", "token": "${ERP_TOKEN}"}}
    api = load_description(table, WHERE, {"ERP_TOKEN_FILE": str(token)})
    assert api.auth.token.get_secret_value() == "first-token"
    write(token, "second-token")
    assert api.auth.token.get_secret_value() == "second-token"
    # Only for a secret's key: elsewhere, an unset variable is an error as it always was.
    table["base_url"] = "${ERP_URL}"
    with pytest.raises(ConfigurationError, match=r"\$\{ERP_URL\} is not set"):
        load_description(table, WHERE, {"ERP_TOKEN_FILE": str(token), "ERP_URL_FILE": "x"})


def test_a_rotation_half_done_keeps_the_value_read_before_and_says_so(tmp_path: Path) -> None:
    token = write(tmp_path / "token", "first-token")
    secret = SecretFile(token)
    with structlog.testing.capture_logs() as said:
        token.unlink()
        assert secret.get_secret_value() == "first-token"
        assert secret.get_secret_value() == "first-token"
        write(token, "")  # emptied
        assert secret.get_secret_value() == "first-token"
        write(token, "third-token")
        assert secret.get_secret_value() == "third-token"
    warnings = [line for line in said if line["event"] == "secret.unreadable"]
    assert len(warnings) == 2, said  # once per state of the file, not once per request
    assert all("first-token" not in str(line) for line in said)


def test_a_rotated_header_secret_is_checked_as_the_first_was(tmp_path: Path) -> None:
    token = write(tmp_path / "token", "good-token")
    api = described(tmp_path, auth={"type": "bearer", "token": f"file:{token}"})
    write(token, "has a space")  # cannot go in a header: the last good value is kept
    assert api.auth.token.get_secret_value() == "good-token"


@pytest.mark.parametrize(
    ("content", "said"),
    [(None, "cannot read file:"), ("", "is empty"), ("with space", "printable ASCII")],
)
def test_a_secret_file_that_cannot_serve_is_refused_at_start_up_naming_the_key(
    tmp_path: Path, content: str | None, said: str
) -> None:
    token = tmp_path / "token"
    if content is not None:
        write(token, content)
    with pytest.raises(ConfigurationError, match=f"auth.token: .*{said}") as raised:
        described(tmp_path, auth={"type": "bearer", "token": f"file:{token}"})
    assert str(raised.value).startswith(WHERE)


# -- the [tls] table ----------------------------------------------------------------------


def test_tls_files_are_checked_at_start_up_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"tls\.ca: .*does not exist"):
        described(tmp_path, tls={"ca": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigurationError, match="system_ca = false trusts nothing"):
        described(tmp_path, tls={"system_ca": False})


def test_a_wrong_passphrase_is_refused_at_start_up_without_showing_it(tmp_path: Path) -> None:
    ca = PrivateCa(tmp_path)
    cert, _ = ca.client_files()
    leaf = ca.ca.issue_cert("encrypted@integrations.test")
    key = tmp_path / "encrypted.key"
    key.write_bytes(_encrypted(leaf, b"another-passphrase"))
    key.chmod(0o600)
    cert.write_bytes(leaf.cert_chain_pems[0].bytes())
    api = described(tmp_path, tls={"cert": str(cert), "key": str(key), "key_passphrase": "${PASS}"})
    with pytest.raises(ConfigurationError, match=r"tls\.key_passphrase") as raised:
        check_transport(api.tls, None, WHERE)
    assert PASSPHRASE not in str(raised.value)
    assert PASSPHRASE in api.secrets()


def _encrypted(leaf: trustme.LeafCert, passphrase: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


async def test_the_transport_is_built_again_when_a_certificate_file_changes(
    tmp_path: Path,
) -> None:
    ca = PrivateCa(tmp_path)
    cert, key = ca.client_files()
    transport = ReloadingTransport(TlsSpec(ca=ca.bundle, cert=cert, key=key), None)
    try:
        assert await transport._current() is await transport._current()
        assert transport.builds == 1
        ca.client_files(name="renewed")
        await transport._current()
        assert transport.builds == 2
        # A certificate whose key does not match (half rotated): the last good one is kept.
        (tmp_path / "other").mkdir()
        stranger, _ = PrivateCa(tmp_path / "other").client_files()
        write(cert, stranger.read_text())
        with structlog.testing.capture_logs() as said:
            await transport._current()
            await transport._current()
        assert transport.builds == 2
        assert [line["event"] for line in said] == ["tls.reload_failed"]
    finally:
        await transport.aclose()


def test_the_certificate_expiry_and_the_warning_period(tmp_path: Path) -> None:
    ca = PrivateCa(tmp_path)
    now = datetime.now(UTC)
    cert, key = ca.client_files(not_after=now + timedelta(days=10))
    expiry = certificate_expiry(TlsSpec(cert=cert, key=key, cert_warning_days=30), now)
    assert expiry is not None and expiry.expiring
    assert 9 * 86_400 < expiry.seconds_left <= 10 * 86_400
    expiry = certificate_expiry(TlsSpec(cert=cert, key=key, cert_warning_days=7), now)
    assert expiry is not None and not expiry.expiring
    assert certificate_expiry(TlsSpec(), now) is None


def test_a_key_others_may_read_is_warned_about_at_start_up(tmp_path: Path) -> None:
    ca = PrivateCa(tmp_path)
    cert, key = ca.client_files()
    with structlog.testing.capture_logs() as said:
        check_transport(TlsSpec(cert=cert, key=key), None, WHERE)
        os.chmod(key, 0o640)  # the group may read: Kubernetes' fsGroup
        check_transport(TlsSpec(cert=cert, key=key), None, WHERE)
        os.chmod(key, 0o644)
        check_transport(TlsSpec(cert=cert, key=key), None, WHERE)
    assert [line["event"] for line in said] == ["tls.key_readable"]
    assert "mode 0644" in said[0]["problem"]


# -- redaction of what is read later --------------------------------------------------------


def test_log_lines_redact_the_secrets_of_the_moment() -> None:
    secrets = ["first-Qw3rtyUiop"]
    out = io.StringIO()
    logs.configure("INFO", "json", lambda: secrets, stream=out)
    structlog.get_logger("t").info("one", said="first-Qw3rtyUiop")
    secrets.append("Zx9Cv8Bn7Ml6Kj5")  # nothing in common with the first
    structlog.get_logger("t").info("two", said="Zx9Cv8Bn7Ml6Kj5")
    text = out.getvalue()
    assert "Qw3rtyUiop" not in text and "Zx9Cv8Bn7" not in text, text


# -- NAME_FILE for a secret setting of the environment ------------------------------------


def test_a_secret_setting_is_read_from_the_file_its_file_variable_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MONGO_URI", raising=False)
    uri = write(tmp_path / "mongo-uri", "mongodb://svc:s3cret-pass@db.acme:27017\n")
    monkeypatch.setenv("MONGO_URI_FILE", str(uri))
    assert load_settings(AppSettings, None).mongo_uri == "mongodb://svc:s3cret-pass@db.acme:27017"
    assert "MONGO_URI_FILE" in known_variables([AppSettings])
    assert "MONGO_DATABASE_FILE" not in known_variables([AppSettings])  # not a secret

    monkeypatch.setenv("MONGO_URI", "mongodb://other:27017")
    with pytest.raises(ConfigurationError, match="MONGO_URI and MONGO_URI_FILE are both set"):
        load_settings(AppSettings, None)
    monkeypatch.delenv("MONGO_URI")
    write(uri, "  \n")
    with pytest.raises(ConfigurationError, match=r"MONGO_URI_FILE: .* is empty"):
        load_settings(AppSettings, None)


def test_check_fails_on_an_expired_client_certificate_and_shows_no_proxy_password(
    tmp_path: Path,
) -> None:
    ca = PrivateCa(tmp_path)
    now = datetime.now(UTC)
    cert, key = ca.client_files(not_after=now - timedelta(hours=1))
    checks = transport_checks(
        TlsSpec(ca=ca.bundle, cert=cert, key=key), "http://svc:Pr0xyPassw0rd@proxy:3128", now
    )
    by_name = {check.name: check for check in checks}
    expired = by_name["client certificate"]
    assert not expired.ok and "expired, replace it" in expired.detail
    assert "Pr0xyPassw0rd" not in str(checks) and "proxy:3128" in by_name["client proxy"].detail
