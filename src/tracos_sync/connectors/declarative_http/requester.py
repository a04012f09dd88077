"""One request to an ERP's HTTP API, retried, bounded and its answer classified once, here.

- 2xx: the answer (read whole, up to ``max_bytes``).
- 408, 425, 429, 5xx, network failures, no complete answer within ``timeout``: transient,
  retried with backoff and jitter, never sooner than the server's ``Retry-After``, within the
  retry budget; a ``Retry-After`` beyond what is left of that budget gives up at once rather
  than hang.
- 401, 403, 407: our credentials are refused; fatal for the run.
- the ``superseded`` statuses (409, 412): the ERP holds a newer version (``Superseded``): not
  written, not refused.
- other 4xx: this one request is refused (``RecordRejected``): a record to quarantine.
- 3xx, an answer too large: ``ProtocolError``, fatal for the run.
- a TLS handshake that fails on a certificate (the API's not verified, ours refused), a proxy
  that refuses our credentials: ``CredentialsRefused``, fatal for the run (``transport``'s
  ``tls_refusal`` and ``proxy_refusal`` name the setting).

Every message is redacted (the secrets as they are now: a token fetched at run time included;
URL credentials) before it is cut short. The connector's one ``httpx.AsyncClient`` is given, with
its auth plugin; messages name the settings that change each limit (``SettingNames``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from tenacity import RetryCallState

from tracos_sync.budgeted_retry import retry_within
from tracos_sync.domain.errors import (
    DestinationBusy,
    DestinationRefusesCredentials,
    DestinationUnwritable,
    FatalError,
    RecordRejected,
)
from tracos_sync.domain.model import Problem
from tracos_sync.logs import MIN_SHOWN, redact_text

from .bounded_body import ACCEPT_ENCODING, UnreadableBody, read_bounded
from .retrying import ApiTransient, WaitHonouringRetryAfter, retry_after
from .transport_failures import (
    closed_hint,
    proxy_credentials_refused,
    proxy_hint,
    proxy_refusal,
    tls_refusal,
)
from .transport_spec import PRESENT, TlsNames

log = structlog.get_logger("tracos_sync.http")

EXCERPT_CHARS = 120
EXCERPT_WINDOW = 65_536
ERROR_BODY_BYTES = 4_096  # of an error answer, only what an excerpt needs is read


# The three below are failures of the client side (``DestinationUnwritable``): watch mode tells
# them from a database outage.


class ApiUnavailable(DestinationUnwritable):
    """The API kept failing for the whole retry budget (or asked to wait beyond it)."""


class ApiAsksToWait(ApiUnavailable, DestinationBusy):
    """The API's last answer asked to be called again after ``wait`` seconds (``Retry-After``),
    beyond what was left of the retry budget: watch mode waits for it, across sweeps."""


class ProtocolError(DestinationUnwritable):
    """The API answered something its contract does not allow: not JSON, the wrong shape, an
    empty page that claims more, paging that never ends, a redirect, an answer too large."""


class CredentialsRefused(DestinationRefusesCredentials):
    """401/403/407: nothing will work until the credentials (or URL) are fixed."""


class Superseded(RecordRejected):
    """409/412 to a conditional write: the ERP holds a newer version of the work order."""


class Refused(RecordRejected):
    """Another 4xx: this one request is refused. ``status`` is the answer's (a 404 to a
    ``GET`` of one record says the ERP does not hold it)."""

    def __init__(self, problems: list[Problem], status: int) -> None:
        super().__init__(problems)
        self.status = status


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float  # one whole request, from sending it to the last byte of the answer
    retry_budget: float  # seconds of retrying transient failures
    max_bytes: int  # of a successful answer


@dataclass(frozen=True, slots=True)
class SettingNames:
    """How messages name what the operator can change."""

    retry: str = "CLIENT_API_RETRY_SECONDS"
    max_bytes: str = "CLIENT_API_MAX_RESPONSE_BYTES"
    credentials: str = "CLIENT_API_TOKEN"
    url: str = "CLIENT_API_URL"
    max_pages: str = "CLIENT_API_MAX_PAGES"
    records: str = ""  # what says where a page's records are ("": nothing the user sets)
    transport: TlsNames = PRESENT  # the TLS files and the proxy


class Requester:
    """Requests through ``client`` (its auth plugin, no default query parameters: they would
    re-encode an OData query), each retried and classified."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        limits: Limits,
        secrets: Callable[[], Sequence[str]],
        names: SettingNames = SettingNames(),
        superseded: Collection[int] = (409, 412),
        *,
        proxy_of: Callable[[httpx.URL], str | None] = lambda _url: None,
    ) -> None:
        self._client = client
        self._limits = limits
        self._secrets = secrets
        self._names = names
        self.names = names  # for the messages of the requester's callers
        self._superseded = frozenset(superseded)
        self._proxy_of = proxy_of  # the proxy a URL is reached through, for messages

    async def call(
        self, what: str, method: str, url: str | httpx.URL, **kwargs: Any
    ) -> tuple[httpx.Response, bytes]:
        """One request, retried within the budget: its answer and body, or the error its answer
        is classified as. ``what`` begins every message."""

        attempts = 0

        async def attempt() -> tuple[httpx.Response, bytes]:
            nonlocal attempts
            attempts += 1
            return await self._attempt(what, method, url, **kwargs)

        budget = self._limits.retry_budget
        try:
            return await retry_within(
                attempt,
                budget_seconds=budget,
                transient=lambda exc: isinstance(exc, ApiTransient),
                wait=WaitHonouringRetryAfter(),
                before_sleep=self._log_retry(what),
                sleep_past_budget=False,
            )
        except ApiTransient as exc:
            asked = exc.retry_after
            if asked is None:
                raise ApiUnavailable(
                    f"{what}: the client API is still failing after retrying for "
                    f"{budget:g}s ({self._names.retry}): {exc}"
                ) from exc
            if attempts == 1:  # given up at once: say so, not "after retrying"
                raise ApiAsksToWait(
                    f"{what}: the client API asks to be called again in {asked:g}s "
                    f"(Retry-After), beyond the retry budget of {budget:g}s "
                    f"({self._names.retry}): not retried in this run: {exc}",
                    asked,
                ) from exc
            raise ApiAsksToWait(
                f"{what}: the client API is still failing after retrying for {budget:g}s "
                f"({self._names.retry}, {attempts} attempts); it asks to retry after "
                f"{asked:g}s: {exc}",
                asked,
            ) from exc

    async def close(self) -> None:
        await self._client.aclose()

    def excerpt(self, data: bytes | str, limit: int = EXCERPT_CHARS) -> str:
        """The start of an answer on one line: redacted before it is cut. Only the first
        ``EXCERPT_WINDOW`` characters are read; what a secret cut at that edge may leave, too
        short to be recognised, is dropped."""
        window = data[:EXCERPT_WINDOW]
        text = window.decode("utf-8", "replace") if isinstance(window, bytes) else window
        text = redact_text(text, self._secrets())
        if len(data) > EXCERPT_WINDOW:
            text = text[:-MIN_SHOWN] + "…"
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    async def _attempt(
        self, what: str, method: str, url: str | httpx.URL, **kwargs: Any
    ) -> tuple[httpx.Response, bytes]:
        """One request, answer read whole, within the deadline; classified."""
        timeout = self._limits.timeout
        request: httpx.Request | None = None
        try:
            async with asyncio.timeout(timeout):
                request = self._client.build_request(method, url, **kwargs)
                request.headers["Accept-Encoding"] = ACCEPT_ENCODING  # what read_bounded reads
                response = await self._client.send(request, stream=True)
                try:
                    body = await self._read(what, response)
                finally:
                    await response.aclose()
        except TimeoutError:
            said = f"no complete answer within {timeout:g}s"
            raise ApiTransient(said + self._through_proxy(request)) from None
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise FatalError(f"{what}: the request cannot be sent: {self._text(exc)}") from None
        except (httpx.DecodingError, UnreadableBody) as exc:
            raise ProtocolError(
                f"{what}: the answer cannot be decoded: {self._text(exc)}"
            ) from None
        except httpx.TransportError as exc:
            names = self._names.transport
            refusal = tls_refusal(exc, names) or proxy_refusal(exc, names)
            if refusal is not None:  # not worth retrying: a setting must change
                raise CredentialsRefused(f"{what}: {refusal}") from None
            said = self._text(exc) if str(exc) else "no answer"
            hint = closed_hint(exc, names)
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError):
                said += self._through_proxy(request)
            raise ApiTransient(
                f"{type(exc).__name__}: {said}" + (f"; {hint}" if hint else "")
            ) from None
        self._classify(what, response, body)
        return response, body

    async def _read(self, what: str, response: httpx.Response) -> bytes:
        ok = response.is_success
        limit = self._limits.max_bytes if ok else ERROR_BODY_BYTES
        declared = response.headers.get("Content-Length", "")
        if ok and declared.isdigit() and int(declared) > limit:
            raise ProtocolError(f"{what}: {self._too_large(int(declared))}")
        # Counted decoded, as it streams: a compressed answer is never inflated past the cap.
        body, cut = await read_bounded(response, limit)
        if cut and ok:
            raise ProtocolError(f"{what}: {self._too_large(limit + 1)}")
        return body  # an error answer: its start is enough for a message

    def _classify(self, what: str, response: httpx.Response, body: bytes) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        said = f"HTTP {status}: {self.excerpt(body)}"
        if status in (408, 425, 429) or status >= 500:
            raise ApiTransient(said, retry_after(response.headers))
        if status == 407:  # a plain-HTTP request's proxy: the API never saw it
            raise CredentialsRefused(
                f"{what}: {proxy_credentials_refused(self._names.transport)}: {said}"
            )
        if status in (401, 403):
            raise CredentialsRefused(
                f"{what}: the client API refuses our credentials (check "
                f"{self._names.credentials}): {said}"
            )
        if status in self._superseded:
            raise Superseded([Problem("$", said)])
        if 400 <= status < 500:
            raise Refused([Problem("$", said)], status)
        location = self.excerpt(response.headers.get("Location", "none"))
        raise ProtocolError(
            f"{what}: HTTP {status} (redirect to {location}): set {self._names.url} to the final "
            "address"
            if 300 <= status < 400
            else f"{what}: unexpected answer {said}"
        )

    def _through_proxy(self, request: httpx.Request | None) -> str:
        """``; through the proxy …`` when ``request`` went through one, else nothing."""
        proxy = None if request is None else self._proxy_of(request.url)
        return "" if proxy is None else f"; {proxy_hint(proxy, self._names.transport)}"

    def _too_large(self, size: int) -> str:
        return (
            f"the answer is larger than {self._names.max_bytes} ({self._limits.max_bytes}): "
            f"{size} bytes or more"
        )

    def _text(self, exc: BaseException) -> str:
        return self.excerpt(str(exc) or type(exc).__name__, 300)

    def _log_retry(self, what: str) -> Callable[[RetryCallState], None]:
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
