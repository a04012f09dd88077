"""The ``api`` connector reaching an ERP the way enterprises expose one (issue 26), through the CLI
and a real MongoDB: an HTTPS API on loopback whose certificate a private CA signs (``trustme``)
and that requires a client certificate from it, a CONNECT proxy that asks for a password
(``proxy.py``), and secrets in mounted files.

Refused without the CA, refused without the client certificate, refused with an expired server
certificate, each in one clear line naming the integration and the setting; accepted with both,
through the proxy, with the proxy's password nowhere in the output; a token and a client
certificate rotated under a running ``watch`` picked up without a restart; ``check`` warning of a
certificate about to expire and of a key others may read.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from pymongo import MongoClient

from tests.builders import client_record
from tests.conftest import Env, Result
from tests.support.tls_api import (
    ApiState,
    PrivateCa,
    connect_proxy,
    integrations_file,
    order,
    tls_api,
)
from tests.support.watching import metrics_or_empty, stop, wait_until, watch_with_metrics

TOKEN = "tok3n/for+the=ERP"
PROXY_PASSWORD = "pr0xy-Secret+pass"
WRONG_PASSWORD = "wr0ng-proxy-pass"
COLLECTION = "api_workorders"


@pytest.fixture
def ca(tmp_path: Path) -> PrivateCa:
    return PrivateCa(tmp_path)


@pytest.fixture
def api(ca: PrivateCa) -> Iterator[tuple[str, ApiState]]:
    with tls_api(ca, TOKEN) as (url, state):
        state.orders += [order(1), order(2)]
        yield url, state


def token_file(root: Path, token: str = TOKEN) -> Path:
    path = root / "token"
    staged = root / "token.new"
    staged.write_text(token + "\n")
    staged.replace(path)
    return path


def full_tls(ca: PrivateCa) -> dict[str, str]:
    cert, key = ca.client_files()
    return {"ca": str(ca.bundle), "cert": str(cert), "key": str(key)}


def run(env: Env, path: Path, *args: str, **variables: str) -> Result:
    return env.cli("--integrations", str(path), *args, "run", **variables)


def stored(env: Env, mongo: MongoClient[Any]) -> set[int]:
    return {doc["number"] for doc in mongo[env.database][COLLECTION].find()}


def assert_refused(result: Result, *phrases: str) -> None:
    """Exit 1, in one ``run.failed`` line naming the integration and ``phrases``; no secret."""
    assert result.code == 1, result.output
    failed = [line for line in result.output.splitlines() if "run.failed" in line]
    assert len(failed) == 1, result.output
    assert "integration=plant" in failed[0], failed[0]
    for phrase in phrases:
        assert phrase in failed[0], failed[0]
    assert_no_secret(result.output)


def assert_no_secret(text: str) -> None:
    for secret in (TOKEN, PROXY_PASSWORD, WRONG_PASSWORD):
        for start in range(len(secret) - 7):
            assert secret[start : start + 8] not in text, text


def test_refused_without_the_private_ca(env: Env, ca: PrivateCa, api: tuple[str, ApiState]) -> None:
    url, state = api
    tls = full_tls(ca)
    del tls["ca"]
    path = integrations_file(env.root, url, tls, token=f"file:{token_file(env.root)}")
    result = run(env, path)
    assert_refused(result, "certificate cannot be verified", "tls.ca")
    assert state.requests == 0


def test_refused_without_the_client_certificate(
    env: Env, ca: PrivateCa, api: tuple[str, ApiState]
) -> None:
    url, state = api
    tls = {"ca": str(ca.bundle)}
    path = integrations_file(env.root, url, tls, token=f"file:{token_file(env.root)}")
    result = run(env, path)
    # The server's alert (TLS 1.3: after the handshake) may be lost to its reset; either way
    # the line says which setting to look at, and nothing reached the API.
    assert_refused(result, "tls.cert")
    assert state.requests == 0


def test_refused_when_the_api_certificate_has_expired(
    env: Env, ca: PrivateCa, mongo: MongoClient[Any]
) -> None:
    expired = datetime.now(UTC) - timedelta(days=1)
    with tls_api(ca, TOKEN, server_not_after=expired) as (url, state):
        state.orders.append(order(1))
        path = integrations_file(env.root, url, full_tls(ca), token=f"file:{token_file(env.root)}")
        result = run(env, path)
    assert_refused(result, "certificate has expired", "the API must renew it")
    assert state.requests == 0
    assert stored(env, mongo) == set()


def test_accepted_with_the_ca_and_client_certificate_through_the_proxy(
    env: Env, ca: PrivateCa, api: tuple[str, ApiState], mongo: MongoClient[Any]
) -> None:
    url, state = api
    with connect_proxy(PROXY_PASSWORD) as port:
        path = integrations_file(
            env.root,
            url,
            full_tls(ca),
            token=f"file:{token_file(env.root)}",
            proxy_url=f"http://user:${{PROXY_PASSWORD}}@127.0.0.1:{port}",
        )
        # The proxy is in the way: with a wrong password, nothing reaches the API.
        wrong = run(env, path, PROXY_PASSWORD=WRONG_PASSWORD)
        assert_refused(wrong, "proxy refuses our credentials (407)")
        assert state.requests == 0

        result = run(env, path, PROXY_PASSWORD=PROXY_PASSWORD)
        assert result.code == 0, result.output
        assert stored(env, mongo) == {1, 2}
        assert state.clients and all("tracos-sync" in seen for seen in state.clients)

        checked = env.cli("--integrations", str(path), "check", PROXY_PASSWORD=PROXY_PASSWORD)
    assert "client proxy" in checked.output and f"127.0.0.1:{port}" in checked.output
    assert_no_secret(result.output + checked.output)


def test_the_environment_proxy_is_used_and_a_wrong_password_refused(
    env: Env, ca: PrivateCa, api: tuple[str, ApiState], mongo: MongoClient[Any]
) -> None:
    url, state = api
    path = integrations_file(env.root, url, full_tls(ca), token=f"file:{token_file(env.root)}")
    with connect_proxy(PROXY_PASSWORD) as port:
        wrong = run(env, path, HTTPS_PROXY=f"http://user:{WRONG_PASSWORD}@127.0.0.1:{port}")
        assert_refused(wrong, "HTTPS_PROXY")  # the wrong password shown nowhere either
        assert state.requests == 0  # the proxy refused to tunnel: it was in the way

        # A password with a "/" not percent-encoded: not an address, said before anything runs.
        unreadable = run(env, path, HTTPS_PROXY=f"http://user:{TOKEN}@127.0.0.1:{port}")
        assert unreadable.code == 2, unreadable.output
        assert "HTTPS_PROXY" in unreadable.output and "integration 'plant'" in unreadable.output
        assert_no_secret(unreadable.output)

        result = run(env, path, HTTPS_PROXY=f"http://user:{PROXY_PASSWORD}@127.0.0.1:{port}")
    assert result.code == 0, result.output
    assert stored(env, mongo) == {1, 2}
    assert_no_secret(result.output)


def test_a_rotated_token_and_certificate_are_picked_up_by_a_running_watch(
    env: Env, ca: PrivateCa, api: tuple[str, ApiState], mongo: MongoClient[Any]
) -> None:
    url, state = api
    # The token as a variable of its own, given as a file by the _FILE convention.
    path = integrations_file(env.root, url, full_tls(ca), token="${ERP_TOKEN}")
    proc, port = watch_with_metrics(
        env,
        "--integrations",
        str(path),
        WATCH_INTERVAL="0.2",
        ERP_TOKEN_FILE=str(token_file(env.root)),
    )
    try:
        wait_until(lambda: stored(env, mongo) == {1, 2}, proc, 60)
        wait_until(
            lambda: "tracos_sync_client_certificate_expiring{" in metrics_or_empty(port),
            proc,
            30,
        )

        # The ERP's token rotated, and ours with it (the file rewritten, as Kubernetes does).
        state.token = "r0tated-token-value"
        token_file(env.root, state.token)
        state.orders.append(order(3, changed="2025-03-12T08:30:00.000Z"))
        wait_until(lambda: 3 in stored(env, mongo), proc, 30)

        # Our certificate renewed under a new name: the next handshake presents it.
        ca.client_files(name="renewed")
        state.orders.append(order(4, changed="2025-03-13T08:30:00.000Z"))
        wait_until(lambda: 4 in stored(env, mongo), proc, 30)
        assert "renewed" in state.clients[-1]
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "r0tated-token-value" not in result.output


def test_check_warns_of_a_certificate_about_to_expire_and_a_key_others_read(
    env: Env, ca: PrivateCa, api: tuple[str, ApiState]
) -> None:
    url, _ = api
    cert, key = ca.client_files(not_after=datetime.now(UTC) + timedelta(days=5))
    key.chmod(0o644)
    tls = {"ca": str(ca.bundle), "cert": str(cert), "key": str(key)}
    path = integrations_file(env.root, url, tls, token=f"file:{token_file(env.root)}")
    result = env.cli("--integrations", str(path), "check")
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    expiring = [line for line in lines if "plant: client certificate" in line]
    assert len(expiring) == 1 and expiring[0].startswith("WARN"), result.output
    assert "tls.cert_warning_days" in expiring[0]
    readable = [line for line in lines if "plant: client key" in line]
    assert len(readable) == 1 and readable[0].startswith("WARN"), result.output
    assert "mode 0644" in readable[0]
    assert "tls.key_readable" in result.stderr  # and said by every run, in its log


def test_the_http_connector_reaches_the_present_api_the_same_way(
    env: Env, ca: PrivateCa, api: tuple[str, ApiState], mongo: MongoClient[Any]
) -> None:
    """``CLIENT_CONNECTOR=http`` is a description of the ``api`` connector: its ``CLIENT_API_CA``,
    ``_CERT``, ``_KEY`` and ``_PROXY`` are the description's ``[tls]`` and ``proxy``, the
    passphrase and the proxy's password never shown."""
    url, state = api
    state.items += [client_record(1), client_record(2)]
    cert, key = ca.client_files()
    with connect_proxy(PROXY_PASSWORD) as port:
        base = {
            "CLIENT_CONNECTOR": "http",
            "CLIENT_API_URL": url,
            "CLIENT_API_TOKEN": TOKEN,
            "CLIENT_API_PROXY": f"http://user:{PROXY_PASSWORD}@127.0.0.1:{port}",
        }
        without_ca = env.cli("run", **base, CLIENT_API_CERT=str(cert), CLIENT_API_KEY=str(key))
        assert without_ca.code == 1 and "certificate" in without_ca.output, without_ca.output
        assert state.requests == 0
        with_both = {
            **base,
            "CLIENT_API_CA": str(ca.bundle),
            "CLIENT_API_CERT": str(cert),
            "CLIENT_API_KEY": str(key),
        }
        result = env.cli("run", **with_both)
        checked = env.cli("check", **with_both)
    assert result.code == 0, result.output
    assert {doc["number"] for doc in mongo[env.database]["workorders"].find()} == {1, 2}
    assert state.clients and all("tracos-sync" in seen for seen in state.clients)
    assert "client proxy" in checked.output, checked.output
    assert_no_secret(without_ca.output + result.output + checked.output)


def test_an_encrypted_key_without_its_passphrase_never_waits_at_a_prompt(
    env: Env, ca: PrivateCa
) -> None:
    """With a terminal attached (an operator's shell, ``docker run -t``), OpenSSL would ask
    ``Enter PEM pass phrase:`` there and wait for ever: exit 2 naming the setting instead."""
    cert, key = ca.client_files()
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"the-passphrase"),
        )
    )
    tls = {"ca": str(ca.bundle), "cert": str(cert), "key": str(key)}
    token = f"file:{token_file(env.root)}"
    path = integrations_file(env.root, "https://localhost:9", tls, token=token)
    controller, terminal = pty.openpty()

    def with_the_terminal_as_its_own() -> None:  # a session whose controlling terminal it is
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "tracos_sync", "--integrations", str(path), "check"],
        cwd=env.root,
        env=env.environ(),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        preexec_fn=with_the_terminal_as_its_own,  # noqa: PLW1509 (a test, no threads started)
    )
    os.close(terminal)
    said = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # read as it comes: a full terminal would block it
            if select.select([controller], [], [], 0.5)[0]:
                try:
                    chunk = os.read(controller, 65_536)
                except OSError:  # EIO: the terminal closed with the process
                    break
                if not chunk:
                    break
                said += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        os.close(controller)
    output = said.decode("utf-8", "replace")
    assert "pass phrase" not in output, output
    assert code == 2, output
    assert "tls.key: the key is encrypted: set tls.key_passphrase" in output, output
