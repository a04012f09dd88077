"""An ERP's HTTP API described as configuration: where it is, who we are, how its changes are read
and how a work order is written back. Validated at start-up; every error names its key.

    base_url = "http://erp:4004/odata/v4/maintenance"
    auth = { type = "bearer", token = "${ACME_TOKEN}" }
    [read]
    path = "MaintenanceOrder"
    records = "value"
    query = { "$orderby" = "LastChangeDateTime,MaintenanceOrder" }
    since = { "$filter" = "LastChangeDateTime gt {since}" }
    after = { "$filter" = "LastChangeDateTime gt {since} or (LastChangeDateTime eq {since} and MaintenanceOrder gt '{number}')" }
    paging = { style = "keyset", size_param = "$top" }
    [write]
    path = "MaintenanceOrder('{number}')"
    method = "PATCH"
    create = "MaintenanceOrder"
    version = { source = "record", field = "@odata.etag" }
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    model_validator,
)

from tracos_sync.config import validation_problems
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.logs import uri_secrets

from .auth_spec import AuthSpec, HeaderName, NoAuth
from .environment import ProxyUrl, hidden_keys, resolve
from .paging_spec import BodyPath, KeysetPaging, PagingSpec
from .query import placeholders
from .transport_spec import TlsSpec

_MODEL = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

# The secret fields: their values are never shown in an error, whatever their key's name says.
SECRET_FIELDS = frozenset({"token", "password", "key", "client_secret", "key_passphrase", "proxy"})
# The keys that take a secret (``${NAME}``, ``file:/path``, or ``NAME_FILE`` for ``${NAME}``).
SECRET_KEYS = frozenset(
    {"auth.token", "auth.password", "auth.key", "auth.client_secret", "tls.key_passphrase"}
)


def _template(allowed: frozenset[str], required: frozenset[str]) -> AfterValidator:
    def check(template: str) -> str:
        found = placeholders(template)
        if found - allowed:
            unknown = ", ".join(f"{{{name}}}" for name in sorted(found - allowed))
            known = ", ".join(f"{{{name}}}" for name in sorted(allowed)) or "none"
            raise ValueError(f"unknown placeholder {unknown} (known here: {known})")
        if required - found:
            missing = ", ".join(f"{{{name}}}" for name in sorted(required - found))
            raise ValueError(f"must hold {missing}")
        return template

    return AfterValidator(check)


FixedText = Annotated[str, _template(frozenset(), frozenset())]  # no placeholder; {{ is {
SinceTemplate = Annotated[str, _template(frozenset({"since"}), frozenset())]
# Each parameter of read.after may hold either; the table as a whole holds both (ReadSpec).
AfterTemplate = Annotated[str, _template(frozenset({"since", "number"}), frozenset())]
CollectionPath = Annotated[str, Field(min_length=1), _template(frozenset(), frozenset())]
PathTemplate = Annotated[
    str, Field(min_length=1), _template(frozenset({"number"}), frozenset({"number"}))
]


class ReadSpec(BaseModel):
    """``[read]``: the request that lists the records changed since the watermark, page by page."""

    model_config = _MODEL

    path: CollectionPath
    """The collection, relative to `base_url` (`MaintenanceOrder`, `/workorders`)."""
    records: Annotated[str, Field(pattern=r"^([^.\s]+(\.[^.\s]+)*)?$")] = "value"
    """Where the answer holds the page's records (`value`, `d.results`, `items`); `""`: the
    answer is the list itself."""
    query: dict[str, FixedText] = Field(default_factory=dict)
    """Query parameters sent with the first request of a pass (`$orderby`, `$select`), as they
    are; percent-encoded (a space as `%20`, never `+`)."""
    since: dict[str, SinceTemplate] = Field(default_factory=dict)
    """Query parameters that ask for the changes after the watermark, `{since}` its time as the
    mapping formats it (`"$filter" = "LastChangeDateTime gt {since}"`)."""
    after: dict[str, AfterTemplate] = Field(default_factory=dict)
    """Query parameters that ask for the records after the last (time, key) read, `{since}` and
    `{number}`, in one parameter (`LastChangeDateTime gt {since} or (LastChangeDateTime eq
    {since} and MaintenanceOrder gt '{number}')`) or two (`updatedSince = "{since}"`,
    `afterOrderNo = "{number}"`): each page of the `keyset` style, and a pass resumed."""
    filter_first_pass: bool = Field(False, strict=True)
    """`false`: the first pass asks `read.query` alone (every record); `true`: it asks
    `read.after` (or `read.since`) too, from 1970-01-01T00:00:00Z and key 0 as the mapping writes
    them, for an API whose filter parameters are required."""
    watermark_format: Literal["mapping", "iso"] = "mapping"
    """How `{since}` and `{number}` are written: `mapping`, as the mapping writes `updated_at`
    and the key (`updated_at` must then be one field); `iso`, ISO 8601 UTC with milliseconds
    (`2024-05-01T12:00:00.000Z`) and the key as a plain integer, whatever the records' format."""
    page_size: int = Field(100, ge=1, le=10_000, strict=True)
    """Records asked for per page (the API may send fewer)."""
    max_pages: int = Field(1_000, ge=1, le=1_000_000, strict=True)
    """Pages read per pass at most: an API whose paging never ends costs one bounded pass."""
    paging: PagingSpec
    """How the API pages (`style`: `page_number`, `offset`, `cursor`, `link_header`,
    `odata_v4`, `odata_v2`, `keyset`)."""

    @model_validator(mode="after")
    def _consistent(self) -> ReadSpec:
        for name, table in (("since", self.since), ("after", self.after)):
            shared = sorted(set(table) & set(self.query))
            if shared:
                raise ValueError(
                    f"read.{name} and read.query both set {', '.join(shared)}: a parameter is "
                    "sent once"
                )
        if self.after:
            held = set().union(*(placeholders(template) for template in self.after.values()))
            missing = ", ".join(f"{{{name}}}" for name in sorted({"since", "number"} - held))
            if missing:
                raise ValueError(f"read.after must hold {missing} too (in any of its parameters)")
        if isinstance(self.paging, KeysetPaging) and not self.after:
            raise ValueError(
                "read.after is required with paging style keyset: it asks for the records after "
                "the last (time, key) read"
            )
        return self


class VersionSpec(BaseModel):
    """``[write.version]``: the ERP's version of a record, sent so that a write never overwrites
    a change we have not read (412/409: counted superseded, not written)."""

    model_config = _MODEL

    source: Literal["record", "response"]
    """`record`: a field of the record as read (an `@odata.etag`, a last-change time);
    `response`: the `ETag` header of the ERP's last answer about that record."""
    field: BodyPath | None = None
    """The record's field that holds the version (with `source = "record"`)."""
    header: HeaderName = "If-Match"
    """The request header that carries it."""
    format: Annotated[str, _template(frozenset({"version"}), frozenset({"version"}))] = "{version}"
    """How it is written there (`W/"{version}"` for a last-change time as a weak ETag)."""

    @model_validator(mode="after")
    def _field_with_record(self) -> VersionSpec:
        if (self.source == "record") != (self.field is not None):
            raise ValueError(
                'write.version.field names the record\'s version field with source = "record", '
                "and only then"
            )
        return self


class WriteSpec(BaseModel):
    """``[write]``: how a work order is sent back to the ERP."""

    model_config = _MODEL

    path: PathTemplate
    """One record's URL relative to `base_url`, `{number}` its key as the mapping formats it
    (`MaintenanceOrder('{number}')`, `/workorders/{number}`)."""
    method: Literal["PUT", "PATCH"] = "PUT"
    """The method that updates a record (`PUT` replaces it, `PATCH` changes the fields sent)."""
    create: CollectionPath | None = None
    """The collection a new record is `POST`ed to (`MaintenanceOrder`); unset: `method` on the
    record's URL creates it too (a `PUT` that upserts)."""
    version: VersionSpec | None = None
    """The ERP's version sent with each update (`If-Match`); unset: writes are not conditional
    (a change made in the ERP since we read it can be overwritten), which `check` reports as a
    failure and a run warns of, unless `unconditional` says it is meant."""
    unconditional: bool = Field(False, strict=True)
    """Updates go without a version on purpose (the ERP compares the record's last update
    itself and answers 409/412, as the present API does, or overwriting its changes is
    accepted): no `check` failure, no warning, for a `[write]` without `version`."""
    # A default, not a factory: the generated reference shows it (the model is frozen).
    superseded: list[Annotated[int, Field(ge=400, le=499, strict=True)]] = Field(
        default=[409, 412], strict=True
    )
    """The answers that mean the ERP holds a newer version: counted superseded, not written,
    never refused."""
    error_path: BodyPath | None = None
    """Where a 2xx answer to a write says it failed (`error`: an ERP that answers
    `200 {"error": …}`); unset: a 2xx is a success. Such an answer is that record's refusal
    (a dead letter, sent again next run)."""


class ApiDescription(BaseModel):
    """An ERP's HTTP API: the ``[api]`` table of an integration."""

    model_config = _MODEL

    base_url: HttpUrl
    """The service root (`http://erp:4004/odata/v4/maintenance`): paths and relative links are
    resolved under it. No credentials or query in it: those go in `auth`."""
    auth: AuthSpec = Field(default_factory=NoAuth)
    """Who we are (`type`: `none`, `bearer`, `basic`, `api_key`, `oauth2_client_credentials`)."""
    read: ReadSpec
    """How the ERP's changes are read."""
    write: WriteSpec | None = None
    """How work orders are written back; unset: the API is read only."""
    tls: TlsSpec = Field(default_factory=TlsSpec)
    """Whom we trust and who we are over HTTPS (`ca`, `cert`, `key`): see `[tls]`."""
    proxy: ProxyUrl | None = None
    """The proxy every request goes through (`http://proxy:3128`; credentials as
    `http://user:${PROXY_PASSWORD}@proxy:3128`, never printed); unset: `HTTPS_PROXY`,
    `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` from the environment."""

    @model_validator(mode="after")
    def _plain_base_url(self) -> ApiDescription:
        url = self.base_url
        if url.username or url.password or url.query or url.fragment:
            raise ValueError(
                "base_url holds credentials, a query or a fragment: give credentials in auth, "
                "parameters in read.query (the value is not shown)"
            )
        return self

    def secrets(self) -> list[str]:
        """Every secret of the description, for redaction (tokens fetched later are the auth
        plugin's own: ``ClientCredentials.secrets()``)."""
        found = [*self.auth.secrets(), *self.tls.secrets()]
        return found if self.proxy is None else [*found, *uri_secrets(str(self.proxy))]


def load_description(
    table: Mapping[str, Any], where: str, variables: Mapping[str, str]
) -> ApiDescription:
    """The description in ``table`` with ``${NAME}`` replaced from ``variables`` at any depth, or
    ``ConfigurationError`` beginning with ``where`` and naming each wrong key (never showing a
    value that came from the environment)."""
    resolved = resolve(dict(table), where, variables, secrets=SECRET_KEYS)
    try:
        return ApiDescription.model_validate(resolved)
    except ValidationError as exc:
        # A whole table is not shown either: the auth table holds secrets, the others are long.
        hidden = hidden_keys(resolved) | SECRET_FIELDS | TABLES
        problems = validation_problems(exc, locate=_without_tags, hidden=hidden)
        raise ConfigurationError(f"{where}: " + "; ".join(problems)) from None


TABLES = frozenset({"auth", "read", "write", "paging", "version", "query", "since", "after", "tls"})
_UNIONS = frozenset({"auth", "paging"})


def _without_tags(loc: tuple[int | str, ...]) -> str:
    """``auth.bearer.token`` as the file writes it, ``auth.token``: pydantic names the member
    of a tagged union (by its ``type`` or ``style``) in the error's location."""
    kept = [part for at, part in enumerate(loc) if not (at and loc[at - 1] in _UNIONS)]
    return ".".join(str(part) for part in kept)
