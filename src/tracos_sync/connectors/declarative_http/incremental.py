"""The first request of a pass, from the watermark: ``read.query`` with ``read.since`` filled in
(or, from a (time, key) watermark and for every ``keyset`` page, ``read.after``).

The time and the key arrive formatted as the API writes them (the mapping's job: an OData
timestamp, a key with its leading zeros); here they are put in their places (``query.fill``: a
``'`` of a value written between single quotes, an OData string literal, is doubled) and the
query encoded (``%20``, never ``+``). ``PassQueries`` writes a pass's keys as the API's query
writes them (``read.watermark_format``) and asks for its first page and each keyset page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tracos_sync.domain.dates import format_instant
from tracos_sync.mapping import RecordMapping

from .description import ApiDescription
from .query import fill, join_path, with_query
from .watermark import Watermark, with_finer


def client_text(value: Any) -> str:
    """A value of the client's record as it goes in a query (``true`` as JSON writes it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class PassQueries:
    """The requests of a pass, from keys (last update, number) as the mapping reads them."""

    def __init__(self, api: ApiDescription, mapping: RecordMapping) -> None:
        self._api = api
        self._mapping = mapping

    def values(self, stamp: datetime, number: int, finer: str = "") -> tuple[str, str]:
        """The (time, key) as the API's query writes them (``read.watermark_format``), the time
        with the ERP's digits finer than a millisecond (``finer``) kept."""
        if self._api.read.watermark_format == "iso":
            return with_finer(format_instant(stamp), finer), str(number)
        written = self._mapping.client_updated(stamp)[0]
        since = with_finer(written, finer) if isinstance(written, str) else client_text(written)
        return since, client_text(self._mapping.client_key(number))

    def start(self, start: Watermark) -> httpx.URL:
        """A pass's first page, from the watermark ``start``."""
        if start == Watermark() and not self._api.read.filter_first_pass:
            return changes_since(self._api, None)
        since, number = self.values(start.since, start.after, start.finer)
        if self._api.read.after:
            return changes_after(self._api, since, number)
        return changes_since(self._api, since)

    def after(self, stamp: datetime, number: int, finer: str) -> httpx.URL:
        """The keyset page after the key (``stamp``, ``number``, ``finer``)."""
        return changes_after(self._api, *self.values(stamp, number, finer))


def changes_since(api: ApiDescription, since: str | None) -> httpx.URL:
    """The records changed after ``since`` (``None``: every record, the first pass)."""
    read = api.read
    pairs = _fixed(api)
    if since is not None:
        pairs += [(name, fill(template, {"since": since})) for name, template in read.since.items()]
    return with_query(_collection(api), pairs)


def changes_after(api: ApiDescription, since: str, number: str) -> httpx.URL:
    """The records after the key (``since``, ``number``): changed after ``since``, or at it
    with a greater key. ``read.after`` must be set (checked at start-up for ``keyset``)."""
    read = api.read
    values = {"since": since, "number": number}
    pairs = _fixed(api)
    pairs += [(name, fill(template, values)) for name, template in read.after.items()]
    return with_query(_collection(api), pairs)


def _fixed(api: ApiDescription) -> list[tuple[str, str]]:
    return [(name, fill(value, {})) for name, value in api.read.query.items()]  # {{ is {


def _collection(api: ApiDescription) -> httpx.URL:
    return join_path(httpx.URL(str(api.base_url)), fill(api.read.path, {}))
