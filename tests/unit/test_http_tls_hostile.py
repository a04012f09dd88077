"""What an independent tester found wrong in TLS trust, client certificates, proxies and secrets
from files (issue 26), each below the CLI: the ``http`` connector's secrets and start-up checks,
an encrypted key without a passphrase, a SOCKS proxy, a CA that cannot be loaded, ``NAME`` and
``NAME_FILE`` both set, a secret path that would block, advice by the cause of a verification
failure, a client certificate not valid yet, and the proxy's refusals named as the proxy's."""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import trustme
from cryptography.hazmat.primitives import serialization

from tests.support.tls_api import PrivateCa, tls_api
from tracos_sync.app import AppSettings
from tracos_sync.config import load_settings
from tracos_sync.connectors import load
from tracos_sync.connectors.declarative_http.description import load_description
from tracos_sync.connectors.declarative_http.present_api import PresentApiConnector
from tracos_sync.connectors.declarative_http.requester import (
    ApiUnavailable,
    CredentialsRefused,
    Limits,
    Requester,
)
from tracos_sync.connectors.declarative_http.transport import ReloadingTransport, check_transport
from tracos_sync.connectors.declarative_http.transport_checks import transport_checks
from tracos_sync.connectors.declarative_http.transport_failures import (
    closed_hint,
    proxy_refusal,
    tls_refusal,
)
from tracos_sync.connectors.declarative_http.transport_spec import PRESENT, TlsSpec
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.ports import ConnectorConfig
from tracos_sync.secret_text import MAX_SECRET_BYTES

WHERE = "integrations.toml: integration 'plant': settings"
TABLE: dict[str, Any] = {
    "base_url": "https://erp.test/odata",
    "read": {"path": "MaintenanceOrder", "paging": {"style": "odata_v4"}},
}
PROXY_USERINFO = "svc:pr0xy@S3cret:pa%ss"
PROXY_URL = "http://svc:pr0xy%40S3cret%3Apa%25ss@127.0.0.1:3128"
PASSPHRASE = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def http_connector(**settings: str) -> Any:
    given = {"client_api_url": "https://erp.test/"} | settings
    return load("http")(ConnectorConfig(settings=given, env_file=None))


def encrypted_client_files(ca: PrivateCa, passphrase: bytes) -> tuple[Path, Path]:
    cert, key = ca.client_files()
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
    )
    return cert, key


# -- 1. the http connector's secrets: the environment's proxy credentials too ----------------


async def test_the_http_connector_never_shows_the_environments_proxy_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy's 407 page quoting the ``Proxy-Authorization`` it got: masked, and the message
    names the proxy's settings, not the API token."""
    monkeypatch.setenv("HTTP_PROXY", PROXY_URL)
    connector = http_connector(client_api_token="t0ken-of-the-api")
    assert isinstance(connector, PresentApiConnector)
    assert PROXY_USERINFO in connector.secrets()
    assert "t0ken-of-the-api" in connector.secrets()
    quoted = base64.b64encode(PROXY_USERINFO.encode()).decode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(407, text=f"denied: Proxy-Authorization: Basic {quoted}")

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    limits = Limits(timeout=5, retry_budget=0, max_bytes=1 << 20)
    requester = Requester(client, limits, connector.secrets, connector.names)
    with pytest.raises(CredentialsRefused) as raised:
        await requester.call("read", "GET", "http://erp.test/workorders")
    await requester.close()
    said = str(raised.value)
    assert quoted not in said and quoted[:8] not in said, said
    assert "CLIENT_API_PROXY" in said and "HTTP_PROXY" in said, said
    assert "CLIENT_API_TOKEN" not in said, said


# -- 2. an encrypted key without a passphrase: refused, never prompted for -------------------


def test_an_encrypted_key_without_a_passphrase_is_refused_naming_the_setting(
    tmp_path: Path,
) -> None:
    cert, key = encrypted_client_files(PrivateCa(tmp_path), b"a-passphrase")
    with pytest.raises(ConfigurationError) as raised:
        check_transport(TlsSpec(cert=cert, key=key), None, WHERE)
    assert str(raised.value) == f"{WHERE}: tls.key: the key is encrypted: set tls.key_passphrase"


# -- 3. the http connector checks its TLS files at start-up, naming CLIENT_API_* -------------


def test_the_http_connector_checks_its_tls_files_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = PrivateCa(tmp_path)
    cert, key = encrypted_client_files(ca, PASSPHRASE.encode())
    with pytest.raises(ConfigurationError) as raised:
        http_connector(client_api_cert=str(cert), client_api_key=str(key))
    assert str(raised.value) == (
        "CLIENT_CONNECTOR=http: settings: CLIENT_API_KEY: the key is encrypted: set "
        "CLIENT_API_KEY_PASSPHRASE"
    )
    with pytest.raises(ConfigurationError) as raised:
        http_connector(
            client_api_cert=str(cert),
            client_api_key=str(key),
            client_api_key_passphrase="not-the-passphrase",
        )
    assert str(raised.value) == (
        "CLIENT_CONNECTOR=http: settings: CLIENT_API_KEY_PASSPHRASE: does not decrypt the key "
        f"{key} (the passphrase is not shown)"
    )
    (tmp_path / "other").mkdir()
    _, stranger = PrivateCa(tmp_path / "other").client_files()
    with pytest.raises(ConfigurationError, match="CLIENT_API_CERT, CLIENT_API_KEY: cannot load"):
        http_connector(client_api_cert=str(cert), client_api_key=str(stranger))
    plain_cert, plain_key = PrivateCa(tmp_path / "other").client_files(name="plain")
    os.chmod(plain_key, 0o644)
    with structlog.testing.capture_logs() as logged:
        http_connector(client_api_cert=str(plain_cert), client_api_key=str(plain_key))
    [warned] = [line for line in logged if line["event"] == "tls.key_readable"]
    assert warned["problem"].startswith("CLIENT_API_KEY: ")


# -- 4. a SOCKS proxy: a configuration error naming where it is given ------------------------


@pytest.mark.parametrize("variable", ["ALL_PROXY", "all_proxy", "HTTPS_PROXY"])
def test_a_socks_proxy_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigurationError) as raised:
        check_transport(TlsSpec(), None, WHERE)
    assert f"{WHERE}: {variable}: a SOCKS proxy is not supported" in str(raised.value)
    with pytest.raises(ConfigurationError, match=f"settings: {variable}: a SOCKS proxy"):
        http_connector()


# -- 5. a CA that cannot be loaded, trusted alone --------------------------------------------


@pytest.mark.parametrize("system_ca", [True, False])
def test_a_ca_that_cannot_be_loaded_is_refused_naming_the_key(
    tmp_path: Path, system_ca: bool
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError, match=rf"^{WHERE}: tls\.ca: cannot load {ca}: "):
        check_transport(TlsSpec(ca=ca, system_ca=system_ca), None, WHERE)


def test_only_the_given_ca_is_trusted_when_the_systems_are_not(tmp_path: Path) -> None:
    ca = PrivateCa(tmp_path)
    transport = ReloadingTransport(TlsSpec(ca=ca.bundle, system_ca=False), None)
    context = transport._pool.client._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert len(context.get_ca_certs()) == 1
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


# -- 6. NAME and NAME_FILE both set for a description's ${NAME} ------------------------------


def test_a_name_and_its_file_variable_both_set_are_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-the-file")
    table = copy.deepcopy(TABLE) | {"auth": {"type": "bearer", "token": "${TOK}"}}
    variables = {"TOK": "stale-value", "TOK_FILE": str(token)}
    with pytest.raises(ConfigurationError) as raised:
        load_description(table, WHERE, variables)
    said = str(raised.value)
    assert said.startswith(f"{WHERE}: auth.token: TOK and TOK_FILE are both set: give one")
    assert "stale-value" not in said and "from-the-file" not in said


# -- 7. a secret path that would block, a secret file too large ------------------------------


@pytest.mark.timeout(20)
def test_a_secret_path_that_is_not_a_regular_file_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    table = copy.deepcopy(TABLE) | {"auth": {"type": "bearer", "token": f"file:{fifo}"}}
    with pytest.raises(ConfigurationError, match=r"auth\.token: .*not a regular file"):
        load_description(table, WHERE, {})
    monkeypatch.delenv("MONGO_URI", raising=False)
    monkeypatch.setenv("MONGO_URI_FILE", str(fifo))
    with pytest.raises(ConfigurationError, match=r"MONGO_URI_FILE: .* is not a regular file"):
        load_settings(AppSettings, None)


def test_a_file_variable_is_refused_when_its_file_is_larger_than_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    large = tmp_path / "mongo-uri"
    large.write_text("mongodb://db:27017/" + "x" * MAX_SECRET_BYTES)
    monkeypatch.delenv("MONGO_URI", raising=False)
    monkeypatch.setenv("MONGO_URI_FILE", str(large))
    with pytest.raises(ConfigurationError, match=r"MONGO_URI_FILE: .* is larger than 65536"):
        load_settings(AppSettings, None)


# -- 8. advice by the cause of a verification failure, names by connector --------------------


async def refusal_of(url: str, tls: TlsSpec) -> str | None:
    transport = ReloadingTransport(tls, None, PRESENT)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.TransportError) as raised:
            await client.get(url)
    return tls_refusal(raised.value, PRESENT)


async def test_a_host_name_the_certificate_is_not_for_is_told_as_such(tmp_path: Path) -> None:
    ca = PrivateCa(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.ca.issue_cert("erp.test").configure_cert(context)  # not 127.0.0.1, where it is reached
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        said = await refusal_of(f"https://127.0.0.1:{port}/", TlsSpec(ca=ca.bundle))
    assert said is not None and "not issued for the host in CLIENT_API_URL" in said, said
    assert "give the CA" not in said


async def test_an_intermediate_alone_is_told_to_reach_a_root(tmp_path: Path) -> None:
    """The API's certificate signed by an intermediate CA; the bundle given holds only that
    intermediate (OpenSSL needs a chain that ends at a trusted root)."""
    root = PrivateCa(tmp_path)
    intermediate = PrivateCa(tmp_path, root.ca.create_child_ca())
    cert, key = intermediate.client_files()
    with tls_api(intermediate, "t0ken") as (url, _):
        said = await refusal_of(
            url, TlsSpec(ca=intermediate.bundle, system_ca=False, cert=cert, key=key)
        )
    assert said is not None and "as CLIENT_API_CA: a bundle that reaches a root" in said, said
    assert "tls." not in said


def test_a_closed_connection_names_the_connectors_certificate_settings() -> None:
    request = httpx.Request("GET", "https://erp.test/workorders")
    closed = httpx.ReadError("closed", request=request)
    closed.__cause__ = ConnectionResetError()
    hint = closed_hint(closed, PRESENT)
    assert "(CLIENT_API_CERT, CLIENT_API_KEY)" in hint and "tls." not in hint


# -- 9. a client certificate not valid yet ---------------------------------------------------


def test_check_fails_on_a_client_certificate_not_valid_yet(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    leaf = trustme.CA().issue_cert(
        "later@integrations.test",
        not_before=now + timedelta(days=2),
        not_after=now + timedelta(days=400),
    )
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    checks = {c.name: c for c in transport_checks(TlsSpec(cert=cert, key=key), None, now, PRESENT)}
    found = checks["client certificate"]
    assert not found.ok and found.detail.startswith("CLIENT_API_CERT: "), found
    assert "not valid before" in found.detail


# -- 10. the proxy's refusals, named as the proxy's ------------------------------------------


def test_a_proxy_refusing_to_connect_is_not_retried_and_named() -> None:
    refused = httpx.ProxyError("403 Forbidden")
    said = proxy_refusal(refused, PRESENT)
    assert said is not None and "403" in said and "CLIENT_API_PROXY" in said
    assert proxy_refusal(httpx.ProxyError("502 Bad Gateway"), PRESENT) is None


def a_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_proxy_that_is_down_is_named_and_one_bypassed_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://svc:pr0xy-Secret@127.0.0.1:{a_closed_port()}")
    connector = http_connector(client_api_retry_seconds="0")
    requester = connector._requester()
    with pytest.raises(ApiUnavailable) as raised:
        await requester.call("read", "GET", "https://erp.test/workorders")
    await requester.close()
    said = str(raised.value)
    assert "ConnectError" in said and "through the proxy http://***@127.0.0.1:" in said, said
    assert "(CLIENT_API_PROXY, or HTTPS_PROXY" in said and "pr0xy-Secret" not in said, said

    monkeypatch.setenv("NO_PROXY", "localhost")  # the API reached directly: no proxy to blame
    direct = f"https://localhost:{a_closed_port()}/"
    requester = http_connector(client_api_retry_seconds="0", client_api_url=direct)._requester()
    with pytest.raises(ApiUnavailable) as raised:
        await requester.call("read", "GET", f"{direct}workorders")
    await requester.close()
    assert "ConnectError" in str(raised.value) and "proxy" not in str(raised.value)


# -- the smaller findings --------------------------------------------------------------------


def test_a_literal_proxy_password_in_the_file_is_refused(tmp_path: Path) -> None:
    literal = copy.deepcopy(TABLE) | {"proxy": "http://svc:Written-In-The-File@proxy:3128"}
    with pytest.raises(ConfigurationError, match=r"proxy: a proxy's password must be") as raised:
        load_description(literal, WHERE, {})
    assert "Written-In-The-File" not in str(raised.value)
    given = copy.deepcopy(TABLE) | {"proxy": "http://svc:${PROXY_PASSWORD}@proxy:3128"}
    api = load_description(given, WHERE, {"PROXY_PASSWORD": "from-the-environment"})
    assert "from-the-environment" in api.secrets()
    unauthenticated = copy.deepcopy(TABLE) | {"proxy": "http://proxy:3128"}
    assert load_description(unauthenticated, WHERE, {}).proxy is not None
    # As the integrations file hands it over: ``${NAME}`` at the top level already replaced,
    # the key said to come from the environment.
    filled = copy.deepcopy(TABLE) | {"proxy": "http://svc:from-the-environment@proxy:3128"}
    assert load("api")(ConnectorConfig(settings=filled, env_file=None, hidden=frozenset({"proxy"})))
    with pytest.raises(ConfigurationError, match=r"proxy: a proxy's password must be"):
        load("api")(ConnectorConfig(settings=filled, env_file=None))


def test_a_ca_bundle_holding_a_private_key_is_warned_about(tmp_path: Path) -> None:
    ca = PrivateCa(tmp_path)
    bundle = tmp_path / "bundle-with-key.pem"
    bundle.write_bytes(ca.bundle.read_bytes() + ca.ca.private_key_pem.bytes())
    with structlog.testing.capture_logs() as logged:
        check_transport(TlsSpec(ca=ca.bundle), None, WHERE)
        check_transport(TlsSpec(ca=bundle), None, WHERE)
    [warned] = [line for line in logged if line["event"] == "tls.ca_holds_a_key"]
    assert warned["problem"].startswith(f"tls.ca: {bundle} holds a private key")


def test_a_secret_too_short_to_recognise_is_not_masked_inside_words() -> None:
    connector = http_connector(client_api_token="e")
    assert "e" not in connector.secrets()


async def test_an_answer_that_never_comes_through_a_proxy_names_the_proxy() -> None:
    """An ``https://`` address given for a proxy that does not speak TLS: the handshake waits
    for the whole timeout; the failure says which proxy it went through."""

    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    client = httpx.AsyncClient(transport=httpx.MockTransport(never))
    limits = Limits(timeout=0.05, retry_budget=0, max_bytes=1 << 20)
    requester = Requester(
        client, limits, list, proxy_of=lambda url: "https://svc:Pr0xy-Secret@proxy:3128"
    )
    with pytest.raises(ApiUnavailable) as raised:
        await requester.call("read", "GET", "https://erp.test/workorders")
    await requester.close()
    said = str(raised.value)
    assert "no complete answer within 0.05s; through the proxy https://***@proxy:3128" in said
    assert "http:// for a proxy that does not speak TLS" in said and "Pr0xy" not in said
