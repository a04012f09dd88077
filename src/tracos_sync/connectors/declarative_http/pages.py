"""The pages of one pass, whatever the paging style, with what every style must obey.

- At most ``read.max_pages`` pages a pass: an API whose paging never ends costs one bounded pass
  (``complete`` stays false: the rest is read on the next one).
- A page without records that says more follow is followed when the API's link moves (OData
  and cursor APIs may answer an empty page before the next one); keyset paging cannot go on from
  it (``ProtocolError``), and counted pages end on it.
- A page that holds the very records of the page before: with counted pages (``page_number``,
  ``offset``) the server answering past the end with its last page again, so the end of the
  pass (not handed on twice); with a link or cursor, paging that goes round (a ``ProtocolError``
  naming the style), even when the link changes a parameter each time.
- A next page whose URL was asked for already in this pass (a link that does not move, or goes
  round) is a ``ProtocolError``, not a loop.
- A next link to another origin (scheme, host, port) than the service root is a
  ``ProtocolError``: our credentials go to the ERP only.

The size of each answer is the requester's to bound (``CLIENT_API_MAX_RESPONSE_BYTES``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import structlog

from .paginators import Page, Paginator
from .requester import ProtocolError

log = structlog.get_logger("tracos_sync.http")

Fetch = Callable[[httpx.URL, Mapping[str, str], asyncio.Event | None], Awaitable[Page]]
"""One page: a ``GET`` of the URL with these headers, the answer classified and its records
selected (the requester's job); the event, when given, is set once the request is sent."""
# How long a page asked for ahead may take to be sent before this one is handed on anyway (a
# request that waits for a retry, or a connection): the caller is never held up for longer.
SEND_WAIT_SECONDS = 0.05


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

    async def __aiter__(self) -> AsyncGenerator[Page, None]:
        """The pages in order. The next page is asked for as soon as its URL is known, before
        this one is handed on, so that the ERP answers it while the caller decodes and applies
        this one (one page ahead at most; cancelled when the caller stops)."""
        paginator = self._paginator
        url = paginator.first()
        self._same_origin(url)
        asked = {str(url)}
        previous: list[object] | None = None  # the records of the page before
        ahead: asyncio.Future[Page] | None = asyncio.ensure_future(
            self._fetch(url, paginator.headers, None)
        )
        try:
            while ahead is not None:
                page = await ahead
                ahead = None
                self.read += 1
                if page.records and page.records == previous:
                    if paginator.repeat_ends:
                        log.debug(
                            "inbound.last_page_repeated", page=self.read, style=paginator.style
                        )
                        self.complete = True
                        return
                    raise ProtocolError(
                        f"list records: page {self.read} ({self._shown(str(page.url))}) holds "
                        f"the same records as page {self.read - 1}: the API's "
                        f"{paginator.style} paging goes round"
                    )
                previous = page.records
                following = paginator.next(page)
                moves = following is not None and str(following) not in asked
                same = following is not None and _origin(following) == self._origin
                if moves and same and following is not None and self.read < self._max_pages:
                    asked.add(str(following))
                    sent = asyncio.Event()
                    ahead = asyncio.ensure_future(self._fetch(following, paginator.headers, sent))
                    await _on_the_wire(ahead, sent)
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
                self._same_origin(following)
                if not moves:
                    raise ProtocolError(
                        f"list records: the next page after page {self.read} is "
                        f"{self._shown(str(following))}, asked for already in this pass: the "
                        "API's paging does not move"
                    )
        finally:
            if ahead is not None:  # the caller stopped, or this page failed: nobody awaits it
                ahead.cancel()
                ahead.add_done_callback(_retrieved)

    def _same_origin(self, url: httpx.URL) -> None:
        if _origin(url) != self._origin:
            raise ProtocolError(
                f"list records: the next page after page {self.read} is on another server "
                f"({self._shown(str(url))}); our credentials go to the ERP's base_url only"
            )


async def _on_the_wire(ahead: asyncio.Future[Page], sent: asyncio.Event) -> None:
    """Until the page asked for ahead is sent (or done, or ``SEND_WAIT_SECONDS``): decoding the
    page in hand keeps the event loop busy, so a request not yet written would wait for it
    instead of being answered meanwhile."""
    waiter = asyncio.ensure_future(sent.wait())
    either: set[asyncio.Future[Any]] = {ahead, waiter}
    try:
        await asyncio.wait(either, timeout=SEND_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def _retrieved(future: asyncio.Future[Page]) -> None:
    """A page fetched ahead and not wanted: its outcome taken, so that nothing is reported as
    never retrieved."""
    if not future.cancelled():
        future.exception()


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default
