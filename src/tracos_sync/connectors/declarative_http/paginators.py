"""One paginator per paging style: ``first()`` is the first page's URL, ``next(page)`` the next
one's, or ``None`` when the page was the last. A paginator serves one pass and keeps its place.

They only say where the next page is; what every style must obey (a bounded number of pages, a
page answered twice, a next link that does not move or leaves the API) is checked once, for all,
by ``pages.Pages``. ``keyset_safe`` says whether the watermark may be committed after
every page (only when each page restarts from the last (time, key) read: ``keyset``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from .paging_spec import (
    CursorPaging,
    KeysetPaging,
    LinkHeaderPaging,
    ODataV2Paging,
    ODataV4Paging,
    OffsetPaging,
    PageNumberPaging,
    PagingSpec,
)
from .query import with_query
from .requester import ProtocolError
from .selector import MISSING, value_at


@dataclass(frozen=True, slots=True)
class Page:
    """One answer: the URL we asked for (before auth added anything), the answer (its
    headers), its JSON document and the records in it."""

    url: httpx.URL
    response: httpx.Response
    document: Any
    records: list[Any]


class Paginator(Protocol):
    keyset_safe: bool
    headers: Mapping[str, str]  # sent with every page's request
    style: str  # as ``read.paging.style`` says it, for messages
    # Whether a page that holds what the previous one held is the server answering past the end
    # with its last page again (pages counted by us), rather than paging that goes round.
    repeat_ends: bool

    def first(self) -> httpx.URL: ...

    def next(self, page: Page) -> httpx.URL | None: ...


# A page shorter than asked for does not end a pass: a server may cap the page size below ours
# (SAP CAP answers at most 100 whatever $top asks); only an empty page, or the API saying so, does.


class PageNumberPaginator:
    """Page numbers count in the server's page size: one that caps ours answers a short first
    page and then goes on, and the records between are never read. That is a ``ProtocolError``
    naming the size to ask for, not a silent gap. A short page after full ones is not a cap
    (the last page, answered again past the end, is ``Pages``' to tell): no size is advised."""

    keyset_safe = False
    headers: Mapping[str, str] = {}
    style = "page_number"
    repeat_ends = True

    def __init__(self, start: httpx.URL, spec: PageNumberPaging, size: int) -> None:
        self._start, self._spec, self._size = start, spec, size
        self._number = spec.first_page
        self._short: int | None = None  # the size of a short page read, if any

    def _url(self) -> httpx.URL:
        spec = self._spec
        return with_query(
            self._start, [(spec.page_param, str(self._number)), (spec.size_param, str(self._size))]
        )

    def first(self) -> httpx.URL:
        self._number, self._short = self._spec.first_page, None
        return self._url()

    def next(self, page: Page) -> httpx.URL | None:
        if not page.records:
            return None
        if self._short is not None:
            said = (
                f"page {self._number - 1} held {self._short} records where {self._size} were "
                f"asked for, and page {self._number} more"
            )
            if self._number - 1 == self._spec.first_page:
                raise ProtocolError(
                    f"{said}: the server caps the page size, and the records between were "
                    f"skipped; set read.page_size to {self._short}"
                )
            raise ProtocolError(
                f"{said}: the server's pages are not of one size, so page numbers do not say "
                "where records are (records may have been skipped); page_number paging cannot "
                "read this API exactly (keyset paging can, if it filters by read.after)"
            )
        if len(page.records) < self._size:
            self._short = len(page.records)
        self._number += 1
        return self._url()


class OffsetPaginator:
    keyset_safe = False
    headers: Mapping[str, str] = {}
    style = "offset"
    repeat_ends = True

    def __init__(self, start: httpx.URL, spec: OffsetPaging, size: int) -> None:
        self._start, self._spec, self._size = start, spec, size
        self._offset = 0

    def _url(self) -> httpx.URL:
        spec = self._spec
        return with_query(
            self._start,
            [(spec.offset_param, str(self._offset)), (spec.limit_param, str(self._size))],
        )

    def first(self) -> httpx.URL:
        self._offset = 0
        return self._url()

    def next(self, page: Page) -> httpx.URL | None:
        if not page.records:
            return None
        self._offset += len(page.records)  # what was read, not what was asked for
        return self._url()


class CursorPaginator:
    keyset_safe = False
    headers: Mapping[str, str] = {}
    style = "cursor"
    repeat_ends = False

    def __init__(self, start: httpx.URL, spec: CursorPaging, size: int) -> None:
        self._spec = spec
        sized = [(spec.size_param, str(size))] if spec.size_param else []
        self._start = with_query(start, sized)

    def first(self) -> httpx.URL:
        return self._start

    def next(self, page: Page) -> httpx.URL | None:
        cursor = value_at(page.document, self._spec.cursor_path)
        if cursor is MISSING or cursor is None or cursor == "":
            return None
        if isinstance(cursor, bool) or not isinstance(cursor, str | int):
            raise ProtocolError(
                f"{self._spec.cursor_path} is a {type(cursor).__name__}, not a cursor (text or "
                "a number)"
            )
        return with_query(self._start, [(self._spec.cursor_param, str(cursor))])


class LinkHeaderPaginator:
    keyset_safe = False
    headers: Mapping[str, str] = {}
    style = "link_header"
    repeat_ends = False

    def __init__(self, start: httpx.URL, spec: LinkHeaderPaging, size: int) -> None:
        sized = [(spec.size_param, str(size))] if spec.size_param else []
        self._start = with_query(start, sized)

    def first(self) -> httpx.URL:
        return self._start

    def next(self, page: Page) -> httpx.URL | None:
        link = next_link(page.response)
        return page.url.join(link) if link else None  # RFC 8288: relative to the page's URL


def next_link(response: httpx.Response) -> str | None:
    """The target of the ``Link`` whose relations include ``next``. A ``rel`` is a
    space-separated list of relation types, compared case-insensitively (RFC 8288 §3.3):
    ``rel="next last"`` and ``rel="Next"`` are next links too (httpx keys ``links`` on the
    whole ``rel`` text)."""
    for link in response.links.values():
        if "next" in link.get("rel", "").lower().split():
            return link.get("url") or None
    return None


class ODataPaginator:
    """``@odata.nextLink`` (v4) or ``d.__next`` (v2), resolved under the service root: OData's
    relative URLs are relative to it (SAP CAP answers ``MaintenanceOrder?$skiptoken=…``)."""

    keyset_safe = False
    repeat_ends = False

    def __init__(
        self,
        start: httpx.URL,
        root: httpx.URL,
        link_path: tuple[str, ...],
        size: int,
        style: str,
    ) -> None:
        self.style = style
        self._start, self._link_path = start, link_path
        self._root = root.copy_with(path=root.path.rstrip("/") + "/", query=None, fragment=None)
        self.headers: Mapping[str, str] = {"Prefer": f"odata.maxpagesize={size}"}

    def first(self) -> httpx.URL:
        return self._start

    def next(self, page: Page) -> httpx.URL | None:
        link = value_at(page.document, self._link_path)
        if link is MISSING or link is None:
            return None
        if not isinstance(link, str) or not link:
            where = ".".join(self._link_path)
            raise ProtocolError(f"{where} is not a URL: {str(link)[:80]!r}")
        return self._root.join(link)


class KeysetPaginator:
    """Each page a new query for the records after the last one read (``after(record)``, built
    from ``read.after`` and the record's time and key as the mapping reads them)."""

    keyset_safe = True
    headers: Mapping[str, str] = {}
    style = "keyset"
    repeat_ends = False

    def __init__(
        self,
        start: httpx.URL,
        spec: KeysetPaging,
        size: int,
        after: Callable[[Any], httpx.URL],
    ) -> None:
        self._spec, self._size, self._after = spec, size, after
        self._sized = [(spec.size_param, str(size))]
        self._start = with_query(start, self._sized)

    def first(self) -> httpx.URL:
        return self._start

    def next(self, page: Page) -> httpx.URL | None:
        more_path = self._spec.more_path
        if more_path is None:
            more = bool(page.records)
        else:
            more = value_at(page.document, more_path)
            if not isinstance(more, bool):
                raise ProtocolError(f"{more_path} is not true or false: {str(more)[:80]!r}")
        if not more:
            return None
        if not page.records:  # nothing to go on from
            raise ProtocolError(
                f"list records: an empty page that claims more ({more_path} is true): keyset "
                "paging cannot go on from it"
            )
        return with_query(self._after(page.records[-1]), self._sized)


def paginator(
    spec: PagingSpec,
    start: httpx.URL,
    root: httpx.URL,
    size: int,
    after: Callable[[Any], httpx.URL],
) -> Paginator:
    """The paginator of one pass: ``start`` is the first request without paging parameters,
    ``root`` the service root, ``after`` the keyset query after a record."""
    match spec:
        case PageNumberPaging():
            return PageNumberPaginator(start, spec, size)
        case OffsetPaging():
            return OffsetPaginator(start, spec, size)
        case CursorPaging():
            return CursorPaginator(start, spec, size)
        case LinkHeaderPaging():
            return LinkHeaderPaginator(start, spec, size)
        case ODataV4Paging():
            return ODataPaginator(start, root, ("@odata.nextLink",), size, "odata_v4")
        case ODataV2Paging():
            return ODataPaginator(start, root, ("d", "__next"), size, "odata_v2")
        case KeysetPaging():
            return KeysetPaginator(start, spec, size, after)
    raise AssertionError(f"unknown paging {spec!r}")  # pragma: no cover - the union is closed
