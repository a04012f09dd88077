"""A fake client ERP speaking the HTTP API, for tests and ``tracos-sync fake-erp``.

The standard library's threading HTTP server is enough for a test double on loopback, and keeps
the connector free of a server dependency (as httpx ships its mock transport).

API:
- ``GET /workorders?updatedSince=ISO&page=N&pageSize=M`` -> ``{"items": [...], "hasMore": bool}``,
  records with ``lastUpdateDate >= updatedSince`` ordered by (lastUpdateDate, orderNo).
- ``PUT /workorders/{orderNo}`` with a work-order object -> 200, or 422 if it is not one.
- ``GET /health`` -> 200.
Every request needs ``Authorization: Bearer <token>`` when a token is set. ``fail_next`` makes
the next requests answer an error status (with ``Retry-After``), for fault tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson


@dataclass
class FakeErpState:
    # Keyed by orderNo as text: a fake ERP may hold broken records too (they test the connector).
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    token: str | None = None
    failures: list[tuple[int, float | None]] = field(default_factory=list)
    refuse: set[int] = field(default_factory=set)
    # Called after each listing request (tests use it to change data between pages).
    after_list: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        with self.lock:
            self.failures.extend([(status, retry_after)] * times)

    def put(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.records[str(record.get("orderNo"))] = record


def _instant(text: object) -> datetime:
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _handler(state: FakeErpState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read state, not logs."""

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _gate(self) -> bool:
            """Auth and injected failures; True when the request may proceed."""
            with state.lock:
                state.requests.append(f"{self.command} {self.path}")
                failure = state.failures.pop(0) if state.failures else None
            if state.token and self.headers.get("Authorization") != f"Bearer {state.token}":
                self._send(401, {"error": "unauthorized"})
                return False
            if failure is not None:
                status, retry_after = failure
                headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
                self._send(status, {"error": "injected"}, headers)
                return False
            return True

        def do_GET(self) -> None:
            if not self._gate():
                return
            url = urlsplit(self.path)
            if url.path == "/health":
                self._send(200, {"status": "ok"})
                return
            if url.path != "/workorders":
                self._send(404, {"error": "not found"})
                return
            query = parse_qs(url.query)
            page = int(query.get("page", ["1"])[0])
            size = int(query.get("pageSize", ["100"])[0])
            since = query.get("updatedSince", [None])[0]
            with state.lock:
                items = list(state.records.values())
            if since:
                floor = _instant(since)
                items = [r for r in items if _instant(r.get("lastUpdateDate")) >= floor]
            items.sort(key=lambda r: (_instant(r.get("lastUpdateDate")), str(r.get("orderNo"))))
            chunk = items[(page - 1) * size : page * size]
            self._send(200, {"items": chunk, "page": page, "hasMore": page * size < len(items)})
            for hook in list(state.after_list):
                hook(state)

        def do_PUT(self) -> None:
            if not self._gate():
                return
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) != 2 or parts[0] != "workorders" or not parts[1].isdigit():
                self._send(404, {"error": "not found"})
                return
            number = int(parts[1])
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = orjson.loads(self.rfile.read(length))
            except orjson.JSONDecodeError:
                self._send(400, {"error": "body is not JSON"})
                return
            if not isinstance(body, dict) or body.get("orderNo") != number:
                self._send(422, {"error": "orderNo in the body must match the path"})
                return
            if number in state.refuse:
                self._send(422, {"error": f"work order {number} is locked in the ERP"})
                return
            with state.lock:
                state.received.append(body)
                state.records[str(number)] = body
            self._send(200, {"orderNo": number})

    return Handler


@contextmanager
def fake_erp(
    host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> Iterator[tuple[str, FakeErpState]]:
    """Run the fake ERP in a background thread; yields its base URL and its state."""
    state = FakeErpState(token=token)
    server = ThreadingHTTPServer((host, port), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
