"""The pages of one pass, whatever the paging style, with what every style must obey.

- At most ``read.max_pages`` pages a pass: an API whose paging never ends costs one bounded pass
  (``complete`` stays false: the rest is read on the next one).
- A page without records that says more follow is a ``ProtocolError``: nothing would ever move.
- A next page whose URL was asked for already in this pass (a link that does not move, or goes
  round) is a ``ProtocolError``, not a loop.
- A next link to another origin (scheme, host, port) than the service root is a
  ``ProtocolError``: our credentials go to the ERP only.

The size of each answer is the requester's to bound (``CLIENT_API_MAX_RESPONSE_BYTES``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import httpx
import structlog

from .paginators import Page, Paginator
from .requester import ProtocolError

log = structlog.get_logger("tracos_sync.http")

Fetch = Callable[[httpx.URL, Mapping[str, str]], Awaitable[Page]]
"""One page: a ``GET`` of the URL with these headers, the answer classified and its records
selected (the requester's job)."""


def _shown(text: str) -> str:
    return text


class Pages:
    """``async for page in Pages(...)``: one pass. ``complete`` is true once the last page was
    read (for a style that is not keyset-safe, only then may the watermark be committed)."""

    def __init__(
        self,
        paginator: Paginator,
        fetch: Fetch,
        *,
        root: httpx.URL,
        max_pages: int,
        shown: Callable[[str], str] = _shown,
    ) -> None:
        self._paginator = paginator
        self._fetch = fetch
        self._origin = _origin(root)
        self._max_pages = max_pages
        self._shown = shown  # redaction of a URL in a message (a key an ERP echoes in a link)
        self.complete = False
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[Page]:
        paginator = self._paginator
        url = paginator.first()
        asked: set[str] = set()
        while True:
            self._same_origin(url)
            asked.add(str(url))
            page = await self._fetch(url, paginator.headers)
            self.read += 1
            following = paginator.next(page)
            if following is not None and not page.records:
                raise ProtocolError(
                    f"list records: page {self.read} ({self._shown(str(url))}) is an empty page "
                    "that claims more: the API's paging does not move"
                )
            yield page
            if following is None:
                self.complete = True
                return
            if self.read >= self._max_pages:
                log.warning(
                    "inbound.page_limit",
                    pages=self.read,
                    detail="read.max_pages reached; the rest is read on the next pass",
                )
                return
            if str(following) in asked:
                raise ProtocolError(
                    f"list records: the next page after page {self.read} is "
                    f"{self._shown(str(following))}, asked for already in this pass: the API's "
                    "paging does not move"
                )
            url = following

    def _same_origin(self, url: httpx.URL) -> None:
        if _origin(url) != self._origin:
            raise ProtocolError(
                f"list records: the next page after page {self.read} is on another server "
                f"({self._shown(str(url))}); our credentials go to the ERP's base_url only"
            )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default
