"""The first request of a pass, from the watermark: ``read.query`` with ``read.since`` filled in
(or, from a (time, key) watermark and for every ``keyset`` page, ``read.after``).

The time and the key arrive formatted as the API writes them (the mapping's job: an OData
timestamp, a key with its leading zeros); here they are put in their places (``query.fill``: a
``'`` of a value written between single quotes, an OData string literal, is doubled) and the
query encoded (``%20``, never ``+``).
"""

from __future__ import annotations

import httpx

from .description import ApiDescription
from .query import fill, join_path, with_query


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
