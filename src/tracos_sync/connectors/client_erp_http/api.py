"""The client ERP's HTTP API: ``GET /workorders``, ``PUT /workorders/{orderNo}``, ``GET /health``.

Each request goes through the declarative connector's ``Requester`` (``declarative_http.requester``:
deadline, retry budget with ``Retry-After``, size cap, every answer classified once, messages
redacted), with this connector's settings and their names; what a listing must look like is said
here. The error classes are the requester's, named here too for this connector's modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tracos_sync.domain.errors import RecordRejected

from ..client_erp.codec import ParseError, parse_json
from ..declarative_http.requester import (
    EXCERPT_CHARS,
    EXCERPT_WINDOW,
    ApiUnavailable,
    CredentialsRefused,
    Limits,
    ProtocolError,
    Requester,
    Superseded,
)
from .settings import HttpSettings

__all__ = [
    "EXCERPT_CHARS",
    "EXCERPT_WINDOW",
    "ApiUnavailable",
    "CredentialsRefused",
    "ErpApi",
    "Listing",
    "ProtocolError",
    "Superseded",
]


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
        secrets = settings.secrets()
        limits = Limits(
            timeout=self._timeout,
            retry_budget=settings.client_api_retry_seconds,
            max_bytes=settings.client_api_max_response_bytes,
        )
        self._requester = Requester(self._client, limits, lambda: secrets)
        self._page_size = settings.client_api_page_size

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
        await self._requester.close()

    def excerpt(self, data: bytes | str, limit: int = EXCERPT_CHARS) -> str:
        """The start of an answer on one line, redacted before it is cut (``Requester.excerpt``)."""
        return self._requester.excerpt(data, limit)

    async def _call(
        self, what: str, method: str, url: str, **kwargs: Any
    ) -> tuple[httpx.Response, bytes]:
        return await self._requester.call(what, method, url, **kwargs)
