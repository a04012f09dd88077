"""How an API description says the ERP pages its answers: the ``[read.paging]`` table, one of
seven styles by ``style``.

Only ``keyset`` restarts each page from the last (time, key) read, so only it lets the watermark
be committed after every page. With every other style a record read and then changed moves to the
end and shifts the rows after it (SAP CAP's ``$skiptoken`` is a row offset): one is skipped, and the
one that moved is read twice. The watermark then moves only after a complete pass that read no key
twice (docs/explanation/http-connector-design.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

_MODEL = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

ParamName = Annotated[str, Field(min_length=1, max_length=128)]
# A dotted path into the answer's JSON (``meta.next``); a key holding a dot cannot be named.
BodyPath = Annotated[str, Field(pattern=r"^[^.\s]+(\.[^.\s]+)*$")]


class PageNumberPaging(BaseModel):
    """``?page=1&page_size=100``, then 2, 3…, until an empty page."""

    model_config = _MODEL

    style: Literal["page_number"]
    """`page_number`: pages asked for by number."""
    page_param: ParamName = "page"
    """The query parameter of the page number."""
    size_param: ParamName = "page_size"
    """The query parameter of the page size."""
    first_page: int = Field(1, ge=0, strict=True)
    """The number of the first page (0 or 1, as the API counts)."""


class OffsetPaging(BaseModel):
    """``?offset=0&limit=100``, then the number of records read so far, until an empty page."""

    model_config = _MODEL

    style: Literal["offset"]
    """`offset`: pages asked for by the number of records to skip."""
    offset_param: ParamName = "offset"
    """The query parameter of the offset (`$skip` in OData)."""
    limit_param: ParamName = "limit"
    """The query parameter of the page size (`$top` in OData)."""


class CursorPaging(BaseModel):
    """A cursor (next token) in the answer's body, sent back as a query parameter; none, null
    or empty ends the pass."""

    model_config = _MODEL

    style: Literal["cursor"]
    """`cursor`: the answer says where the next page starts."""
    cursor_path: BodyPath
    """Where the answer holds the cursor (`next_cursor`, `meta.next_token`)."""
    cursor_param: ParamName = "cursor"
    """The query parameter that sends it back."""
    size_param: ParamName | None = None
    """The query parameter of the page size; unset: the API's own."""


class LinkHeaderPaging(BaseModel):
    """RFC 8288: the answer's ``Link: <…>; rel="next"`` header is the next page's URL (absolute,
    or relative to the page's own URL); no such link ends the pass."""

    model_config = _MODEL

    style: Literal["link_header"]
    """`link_header`: the next page's URL in a `Link` header."""
    size_param: ParamName | None = None
    """The query parameter of the page size on the first request (`per_page`); unset: the
    API's own. The links carry it on."""


class ODataV4Paging(BaseModel):
    """OData v4 server-driven paging: ``@odata.nextLink`` in the answer, relative to the service
    root (the base URL) when it is not absolute. The page size is asked for with
    ``Prefer: odata.maxpagesize`` (a server may send fewer)."""

    model_config = _MODEL

    style: Literal["odata_v4"]
    """`odata_v4`: `@odata.nextLink` (SAP CAP, S/4HANA OData v4 services)."""


class ODataV2Paging(BaseModel):
    """OData v2 server-driven paging: ``d.__next`` in the answer (records in ``d.results``)."""

    model_config = _MODEL

    style: Literal["odata_v2"]
    """`odata_v2`: `d.__next` (S/4HANA OData v2 services)."""


class KeysetPaging(BaseModel):
    """Each page asks again for the records after the last (time, key) read, with
    ``read.after``: no offsets, so no record is skipped when one changes while we page, and the
    watermark may be committed after every page. The API must sort by (time, key)."""

    model_config = _MODEL

    style: Literal["keyset"]
    """`keyset`: every page a new query from the last (time, key) read."""
    size_param: ParamName
    """The query parameter of the page size (`$top` in OData, `pageSize`)."""
    more_path: BodyPath | None = None
    """Where the answer says whether more records follow (`hasMore`); unset: an empty page is
    the last (not a short one: a server may cap the page size below ours)."""


PagingSpec = Annotated[
    PageNumberPaging
    | OffsetPaging
    | CursorPaging
    | LinkHeaderPaging
    | ODataV4Paging
    | ODataV2Paging
    | KeysetPaging,
    Field(discriminator="style"),
]
