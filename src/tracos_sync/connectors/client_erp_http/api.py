"""The client ERP's HTTP API: every answer classified once, here.

- 2xx: the answer (read whole, up to ``CLIENT_API_MAX_RESPONSE_BYTES``).
- 408, 425, 429, 5xx, network failures, no complete answer within ``CLIENT_API_TIMEOUT_SECONDS``:
  transient, retried with backoff and jitter, never sooner than the server's ``Retry-After``,
  within ``CLIENT_API_RETRY_SECONDS``; a ``Retry-After`` beyond what is left of that budget gives
  up at once rather than hang.
- 401, 403, 407: our credentials are refused; fatal for the run.
- 409, 412 to a ``PUT``: the ERP holds a newer version (``Superseded``): not written, not refused.
- other 4xx: this one request is refused (``RecordRejected``): a record to quarantine.
- 3xx, an answer that is not the expected JSON, too large: ``ProtocolError``, fatal for the run.

Every message is redacted (token, URL credentials) before it is cut short.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog
from tenacity import RetryCallState

from tracos_sync.budgeted_retry import retry_within
from tracos_sync.domain.errors import (
    DestinationUnwritable,
    FatalError,
    RecordRejected,
)
from tracos_sync.domain.model import Problem
from tracos_sync.logs import MIN_SHOWN, redact_text

from ..client_erp.codec import ParseError, parse_json
from .retrying import ApiTransient, WaitHonouringRetryAfter, retry_after
from .settings import HttpSettings

log = structlog.get_logger("tracos_sync.http")

EXCERPT_CHARS = 120
EXCERPT_WINDOW = 65_536
ERROR_BODY_BYTES = 4_096  # of an error answer, only what an excerpt needs is read


# The three below are failures of the client side (``DestinationUnwritable``): watch mode tells
# them from a database outage.


class ApiUnavailable(DestinationUnwritable):
    """The API kept failing for the whole retry budget (or asked to wait beyond it)."""


class ProtocolError(DestinationUnwritable):
    """The API answered something its contract does not allow: not JSON, the wrong shape, an
    empty page that claims more, paging that never ends, a redirect, an answer too large."""


class CredentialsRefused(DestinationUnwritable):
    """401/403/407: nothing will work until the token (or URL) is fixed."""


class Superseded(RecordRejected):
    """409/412 to a conditional ``PUT``: the ERP holds a newer version of the work order."""


@dataclass(frozen=True, slots=True)
class Listing:
    items: list[Any]
    has_more: bool


class ErpApi:
    """``GET /workorders``, ``PUT /workorders/{orderNo}``, ``GET /health``."""

    def __init__(self, settings: HttpSettings) -> None:
        headers = {"Accept": "application/json", "User-Agent": "tracos-sync"}
        if settings.client_api_token is not None:
            headers["Authorization"] = f"Bearer {settings.client_api_token.get_secret_value()}"
        self._timeout = settings.client_api_timeout_seconds
        url = urlsplit(str(settings.client_api_url))  # its query goes with every request
        self._client = httpx.AsyncClient(
            base_url=urlunsplit((url.scheme, url.netloc, url.path.rstrip("/"), "", "")),
            params=httpx.QueryParams(url.query),
            headers=headers,
            timeout=self._timeout,
            follow_redirects=False,
        )
        self._secrets = settings.secrets()
        self._budget = settings.client_api_retry_seconds
        self._page_size = settings.client_api_page_size
        self._max_bytes = settings.client_api_max_response_bytes

    # -- the API -------------------------------------------------------------------------------

    async def list_page(self, since: str, after: int) -> Listing:
        """One page of work orders after the key (``since``, ``after``): changed after
        ``since``, or at it with an ``orderNo`` above ``after``. Refusals and answers that are
        not ``{"items": [...], "hasMore": bool}`` raise ``FatalError``."""
        what = f"list work orders (updatedSince={since} afterOrderNo={after})"
        params = {"updatedSince": since, "afterOrderNo": after, "pageSize": self._page_size}
        try:
            response, body = await self._call(what, "GET", "/workorders", params=params)
        except RecordRejected as exc:
            raise ProtocolError(f"{what}: refused: {exc}") from None
        try:
            document = parse_json(body) if body.strip() else None
        except ParseError as exc:
            raise ProtocolError(
                f"{what}: the answer is not JSON ({exc}; Content-Type "
                f"{response.headers.get('Content-Type', 'none')!r}, "
                f"begins {self.excerpt(body)!r})"
            ) from None
        items = document.get("items") if isinstance(document, dict) else None
        has_more = document.get("hasMore", False) if isinstance(document, dict) else None
        if not isinstance(items, list) or not isinstance(has_more, bool):
            raise ProtocolError(
                f'{what}: expected {{"items": [...], "hasMore": true|false}}, '
                f"got {self.excerpt(body)!r}"
            )
        return Listing(items, has_more)

    async def put(self, number: int, body: bytes) -> None:
        """Send one work order. A refusal of it raises ``RecordRejected``."""
        await self._call(
            f"send work order {number}",
            "PUT",
            f"/workorders/{number}",
            content=body,
            headers={"Content-Type": "application/json"},
        )

    async def health(self) -> None:
        await self._call("health", "GET", "/health")

    async def close(self) -> None:
        await self._client.aclose()

    def excerpt(self, data: bytes | str, limit: int = EXCERPT_CHARS) -> str:
        """The start of an answer on one line: redacted before it is cut. Only the first
        ``EXCERPT_WINDOW`` characters are read; what a secret cut at that edge may leave, too
        short to be recognised, is dropped."""
        window = data[:EXCERPT_WINDOW]
        text = window.decode("utf-8", "replace") if isinstance(window, bytes) else window
        text = redact_text(text, self._secrets)
        if len(data) > EXCERPT_WINDOW:
            text = text[:-MIN_SHOWN] + "…"
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    # -- one request, retried ------------------------------------------------------------------

    async def _call(
        self, what: str, method: str, url: str, **kwargs: Any
    ) -> tuple[httpx.Response, bytes]:
        async def attempt() -> tuple[httpx.Response, bytes]:
            return await self._attempt(what, method, url, **kwargs)

        try:
            return await retry_within(
                attempt,
                budget_seconds=self._budget,
                transient=lambda exc: isinstance(exc, ApiTransient),
                wait=WaitHonouringRetryAfter(),
                before_sleep=self._log_retry(what),
                sleep_past_budget=False,
            )
        except ApiTransient as exc:
            asked = exc.retry_after
            hint = "" if asked is None else f"; it asks to retry after {asked:g}s"
            raise ApiUnavailable(
                f"{what}: the client API is still failing after retrying for "
                f"{self._budget:g}s (CLIENT_API_RETRY_SECONDS){hint}: {exc}"
            ) from exc

    async def _attempt(
        self, what: str, method: str, url: str, **kwargs: Any
    ) -> tuple[httpx.Response, bytes]:
        """One request, answer read whole, within the deadline; classified."""
        try:
            async with asyncio.timeout(self._timeout):
                request = self._client.build_request(method, url, **kwargs)
                response = await self._client.send(request, stream=True)
                try:
                    body = await self._read(what, response)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise ApiTransient(f"no complete answer within {self._timeout:g}s") from None
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise FatalError(f"{what}: the request cannot be sent: {self._text(exc)}") from None
        except httpx.DecodingError as exc:
            raise ProtocolError(
                f"{what}: the answer cannot be decoded: {self._text(exc)}"
            ) from None
        except httpx.TransportError as exc:
            raise ApiTransient(f"{type(exc).__name__}: {self._text(exc)}") from None
        self._classify(what, response, body)
        return response, body

    async def _read(self, what: str, response: httpx.Response) -> bytes:
        ok = response.is_success
        limit = self._max_bytes if ok else ERROR_BODY_BYTES
        declared = response.headers.get("Content-Length", "")
        if ok and declared.isdigit() and int(declared) > limit:
            raise ProtocolError(f"{what}: {self._too_large(int(declared))}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if ok:
                    raise ProtocolError(f"{what}: {self._too_large(size)}")
                break
        return b"".join(chunks)

    def _classify(self, what: str, response: httpx.Response, body: bytes) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        said = f"HTTP {status}: {self.excerpt(body)}"
        if status in (408, 425, 429) or status >= 500:
            raise ApiTransient(said, retry_after(response.headers))
        if status in (401, 403, 407):
            raise CredentialsRefused(
                f"{what}: the client API refuses our credentials (check CLIENT_API_TOKEN): {said}"
            )
        if status in (409, 412):
            raise Superseded([Problem("$", said)])
        if 400 <= status < 500:
            raise RecordRejected([Problem("$", said)])
        location = self.excerpt(response.headers.get("Location", "none"))
        raise ProtocolError(
            f"{what}: HTTP {status} (redirect to {location}): set CLIENT_API_URL to the final "
            "address"
            if 300 <= status < 400
            else f"{what}: unexpected answer {said}"
        )

    def _too_large(self, size: int) -> str:
        return (
            f"the answer is larger than CLIENT_API_MAX_RESPONSE_BYTES ({self._max_bytes}): "
            f"{size} bytes or more"
        )

    def _text(self, exc: BaseException) -> str:
        return self.excerpt(str(exc) or type(exc).__name__, 300)

    def _log_retry(self, what: str) -> Any:
        def report(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "http.retrying",
                operation=what,
                attempt=state.attempt_number,
                wait=round(state.upcoming_sleep, 2),
                error=str(exc) if exc else "",
            )

        return report
