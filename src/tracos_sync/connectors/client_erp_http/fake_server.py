"""A fake client ERP speaking the HTTP API, for tests, ``make demo-http`` and ``tracos-sync
fake-erp``.

The standard library's threading HTTP server is enough for a test double on loopback, and keeps
the connector free of a server dependency (as httpx ships its mock transport).

API:
- ``GET /workorders?updatedSince=ISO&afterOrderNo=N&pageSize=M`` -> ``{"items": [...],
  "hasMore": bool}``: the records whose (lastUpdateDate, orderNo) is after (updatedSince, N),
  ordered by that key (keyset paging; ``afterOrderNo`` 0 or absent: at or after updatedSince).
- ``PUT /workorders/{orderNo}`` with a work-order object -> 200; 409 if the ERP holds a newer
  ``lastUpdateDate`` for it (the write is conditional; equal is accepted); 422 if it is not one.
- ``GET /health`` -> 200.
Every request needs ``Authorization: Bearer <token>`` when a token is set.

Switches on ``FakeErpState``, one per way an ERP has been seen to misbehave:
- ``put_future(record)``: a record whose ``lastUpdateDate`` is in 2099 (a clock gone wrong);
- ``empty_pages_claim_more``: every listing is ``{"items": [], "hasMore": true}``;
- ``endless``: listings ignore ``afterOrderNo`` and always claim more (paging that never ends);
- ``drip_seconds``: every answer is sent one byte at a time, this many seconds apart;
- ``listing_answer`` (``html()``): listings answer this status, content type and body instead;
- ``echo_credentials``: every request answers 400 with our ``Authorization`` header in the
  body, as is, escaped, URL-encoded, and its credential without its first 3 characters (an
  error page that shows the request);
- ``fail_next(status, times, retry_after)``: the next requests fail (an error storm);
- ``refuse``: orderNos whose ``PUT`` is refused with 422;
- ``unconditional_puts``: ``PUT`` overwrites whatever it holds (an ERP ignoring the contract).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson

FAR_FUTURE = "2099-01-01T00:00:00.000Z"
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>Maintenance</h1><p>Back soon.</p></body></html>"


@dataclass
class FakeErpState:
    # Keyed by orderNo as text: a fake ERP may hold broken records too (they test the connector).
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)  # time.monotonic() of each
    token: str | None = None
    failures: list[tuple[int, float | None]] = field(default_factory=list)
    refuse: set[int] = field(default_factory=set)
    empty_pages_claim_more: bool = False
    endless: bool = False
    drip_seconds: float = 0.0
    listing_answer: tuple[int, str, bytes] | None = None
    echo_credentials: bool = False
    unconditional_puts: bool = False
    # Called once each listing is chosen, before it is sent (tests change data between pages).
    after_list: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        with self.lock:
            self.failures.extend([(status, retry_after)] * times)

    def put(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.records[str(record.get("orderNo"))] = record

    def put_future(self, record: dict[str, Any]) -> None:
        """``record`` as an ERP with a wrong clock stores it: updated in 2099."""
        self.put({**record, "lastUpdateDate": FAR_FUTURE})

    def html(self, status: int = 200) -> None:
        """Listings answer an HTML page (a proxy's or a maintenance page)."""
        self.listing_answer = (status, "text/html; charset=utf-8", HTML_PAGE)


def _instant(text: object) -> datetime:
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _key(record: dict[str, Any]) -> tuple[datetime, int]:
    """Records are ordered by (lastUpdateDate, orderNo); a broken one sorts as it can."""
    number = record.get("orderNo")
    return _instant(record.get("lastUpdateDate")), number if isinstance(number, int) else 0


def _handler(state: FakeErpState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read state, not logs."""

        def _send(
            self,
            status: int,
            body: Any,
            headers: dict[str, str] | None = None,
            content_type: str = "application/json",
        ) -> None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if state.drip_seconds <= 0:
                self.wfile.write(data)
                return
            for index in range(len(data)):  # a slow drip: one byte at a time
                if state.stopping.wait(state.drip_seconds):
                    return
                try:
                    self.wfile.write(data[index : index + 1])
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up

        def _gate(self) -> bool:
            """Auth and injected failures; True when the request may proceed."""
            with state.lock:
                state.requests.append(f"{self.command} {self.path}")
                state.request_times.append(time.monotonic())
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
            if self._echo():
                return
            url = urlsplit(self.path)
            if url.path == "/health":
                self._send(200, {"status": "ok"})
                return
            if url.path != "/workorders":
                self._send(404, {"error": "not found"})
                return
            if self._misbehave():
                return
            query = parse_qs(url.query)
            size = int(query.get("pageSize", ["100"])[0])
            floor = _instant(query.get("updatedSince", ["0001-01-01T00:00:00Z"])[0])
            after = 0 if state.endless else int(query.get("afterOrderNo", ["0"])[0])
            with state.lock:
                items = sorted(state.records.values(), key=_key)
            chunk = [r for r in items if _key(r) > (floor, after)][:size]
            more = state.endless or (bool(chunk) and _key(chunk[-1]) < _key(items[-1]))
            for hook in list(state.after_list):  # before answering: no race with the next page
                hook(state)
            self._send(200, {"items": chunk, "hasMore": more})

        def _echo(self) -> bool:
            """``echo_credentials``: answer 400 showing our credentials; True when it did."""
            if not state.echo_credentials:
                return False
            header = self.headers.get("Authorization", "")
            tail = header.partition(" ")[2][3:]
            shown = f"Authorization {header} | {header!r} | {quote(header, safe='')} | {tail}"
            self._send(400, f"bad request with {shown}".encode(), {}, "text/plain")
            return True

        def _misbehave(self) -> bool:
            """The listing switches that replace the answer; True when one did."""
            if state.empty_pages_claim_more:
                self._send(200, {"items": [], "hasMore": True})
            elif state.listing_answer is not None:
                status, content_type, body = state.listing_answer
                self._send(status, body, content_type=content_type)
            else:
                return False
            return True

        def do_PUT(self) -> None:
            if not self._gate() or self._echo():
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
                held = None if state.unconditional_puts else state.records.get(str(number))
                stamp = _instant(body.get("lastUpdateDate"))
                if held is not None and _instant(held.get("lastUpdateDate")) > stamp:
                    conflict = {"error": "the ERP holds a newer version", "current": held}
                else:
                    conflict = None
                    state.received.append(body)
                    state.records[str(number)] = body
            if conflict is not None:
                self._send(409, conflict)
                return
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
        state.stopping.set()
        server.shutdown()
        server.server_close()
