"""A private CA's world for tests (``trustme``): an HTTPS API on loopback that requires a client
certificate and a bearer token, certificates the test writes where the connector reads them, and
a CONNECT proxy (``proxy.py``) on loopback.

The API answers every ``GET`` with all its maintenance orders as one OData v4 page (the connector
skips what it read already); it counts the requests that reached it (a handshake refused never
does) and the client certificates it was shown.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import proxy
import trustme

from tests.support.maintenance_order import MAPPING

HOST = "localhost"  # the name in the API's certificate; it resolves to loopback


@dataclass
class ApiState:
    token: str
    orders: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)  # the present API's work orders
    requests: int = 0
    clients: list[str] = field(default_factory=list)  # the client certificates' subjects seen


def order(number: int, changed: str = "2025-03-11T08:30:00.000Z") -> dict[str, Any]:
    return {
        "MaintenanceOrder": f"{number:012d}",
        "MaintenanceOrderDesc": f"order {number}",
        "MaintenanceProcessingPhase": "3",
        "IsMarkedForDeletion": False,
        "CreationDate": "2025-03-10",
        "CreationTime": "14:22:05",
        "LastChangeDateTime": changed,
    }


def _handler(state: ApiState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            state.clients.append(str(peer.get("subject", "")) if peer else "")
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                body = b'{"error": "unauthorized"}'
                self.send_response(401)
            elif self.path.startswith("/workorders"):  # the present API (the http connector)
                body = json.dumps({"items": state.items, "hasMore": False}).encode()
                self.send_response(200)
            else:
                body = json.dumps({"value": state.orders}).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Quiet: the test says what matters."""

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A refused handshake is what some tests want: not a traceback on stderr."""


@dataclass
class PrivateCa:
    """A company's CA, and the files an operator mounts: the CA bundle, our certificate and key."""

    root: Path
    ca: trustme.CA = field(default_factory=trustme.CA)

    @property
    def bundle(self) -> Path:
        path = self.root / "ca.pem"
        if not path.exists():
            self.ca.cert_pem.write_to_path(str(path))
        return path

    def client_files(
        self, name: str = "tracos-sync", not_after: datetime | None = None
    ) -> tuple[Path, Path]:
        """A client certificate and its key, written (key mode 0600), in place of any before."""
        leaf = self.ca.issue_cert(
            f"{name}@integrations.test",
            common_name=name,
            not_after=not_after or datetime.now(UTC) + timedelta(days=365),
        )
        cert, key = self.root / "client.pem", self.root / "client.key"
        for path, blob in ((cert, leaf.cert_chain_pems[0]), (key, leaf.private_key_pem)):
            staged = path.with_suffix(".new")
            blob.write_to_path(str(staged))
            staged.chmod(0o600)
            staged.replace(path)  # as Kubernetes rotates: a new file in one step
        return cert, key


@contextlib.contextmanager
def tls_api(
    ca: PrivateCa, token: str, *, server_not_after: datetime | None = None
) -> Iterator[tuple[str, ApiState]]:
    """The API on a free loopback port, its certificate from ``ca`` (expired when
    ``server_not_after`` is past), requiring a client certificate from ``ca``: its base URL and
    state."""
    leaf = ca.ca.issue_cert(HOST, "127.0.0.1", not_after=server_not_after)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    ca.ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    state = ApiState(token)
    server = _Server(("127.0.0.1", 0), _handler(state))
    # The handshake in the handler's thread, not in the one that accepts.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://{HOST}:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def connect_proxy(password: str) -> Iterator[int]:
    """A CONNECT proxy on a free loopback port that asks for ``user:password``: its port,
    nothing else."""
    with proxy.Proxy(
        [
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--num-workers",
            "1",
            "--num-acceptors",
            "1",
            "--basic-auth",
            f"user:{password}",
        ]
    ) as running:
        yield running.flags.port


def integrations_file(
    root: Path, url: str, tls: dict[str, str], *, token: str, proxy_url: str | None = None
) -> Path:
    """An integrations file for the API: the maintenance orders into ``api_workorders``."""
    lines = [
        "[[integration]]",
        'name = "plant"',
        'connector = "api"',
        'tracos = { collection = "api_workorders" }',
        "",
        "[integration.settings]",
        f'base_url = "{url}"',
        f'auth = {{ type = "bearer", token = "{token}" }}',
        "client_api_retry_seconds = 2",
    ]
    if proxy_url is not None:
        lines.append(f'proxy = "{proxy_url}"')
    lines += [
        'read = { path = "MaintenanceOrder", paging = { style = "odata_v4" } }',
        "",
        "[integration.settings.tls]",
        *(f'{key} = "{value}"' for key, value in tls.items()),
        "",
        "[integration.mapping]",
        *_toml_mapping(),
    ]
    path = root / "integrations.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml_mapping() -> list[str]:
    fields = MAPPING["fields"]
    status = MAPPING["status"]
    created = fields["created_at"]
    return [
        "[integration.mapping.fields]",
        'number = { path = "MaintenanceOrder", width = 12 }',
        'title = "MaintenanceOrderDesc"',
        'deleted = "IsMarkedForDeletion"',
        f'created_at = {{ path = "{created["path"]}", format = "{created["format"]}", '
        f'time = "{created["time"]}", time_format = "{created["time_format"]}" }}',
        'updated_at = "LastChangeDateTime"',
        "[integration.mapping.status]",
        f'field = "{status["field"]}"',
        "values = { " + ", ".join(f'"{k}" = "{v}"' for k, v in status["values"].items()) + " }",
    ]
