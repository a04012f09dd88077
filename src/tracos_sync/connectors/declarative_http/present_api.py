"""The ``http`` connector: the present HTTP API as one description of the ``api`` connector.

The present API (``GET /workorders?updatedSince=…&afterOrderNo=…&pageSize=…`` answering
``{"items": [...], "hasMore": bool}``, ``PUT /workorders/{orderNo}``, a bearer token) is
``present_api()``, the same table as ``examples/integrations-present-api.toml`` (a test holds
them equal). ``create`` fills it from the ``CLIENT_API_*`` settings and hands it to the ``api``
connector, keeping what those settings always meant:

- ``CLIENT_API_URL`` may hold ``user:password@`` (sent as HTTP Basic) and a query string (sent
  with every request, its values never shown), which a description's ``base_url`` may not;
- messages name ``CLIENT_API_*``, the connector shows itself as ``http`` and its URL masked;
- its watermark and dead letters stay where earlier versions stored them (scope
  ``client_erp_http``, keyed by the URL without credentials or query), in the same shape, so an
  upgrade goes on from the stored watermark: nothing read again, nothing skipped.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from tracos_sync.config import connector_settings
from tracos_sync.domain.ports import ConnectorConfig, Owned
from tracos_sync.mapping import RecordMapping

from ..client_erp.resolve import resolve_mapping
from .connector import ApiConnector, check_mapping
from .description import ApiDescription, load_description
from .present_settings import HttpSettings
from .requester import SettingNames
from .transport import check_transport
from .transport_spec import PRESENT

# Where earlier versions of the ``http`` connector kept its state: kept, so that it is found.
SCOPE = "client_erp_http"
BEARER = {"type": "bearer", "token": "${CLIENT_API_TOKEN}"}


def present_api(
    base_url: str = "${CLIENT_API_URL}",
    auth: Mapping[str, str] = BEARER,
    page_size: int = 100,
    max_pages: int = 1_000,
) -> dict[str, Any]:
    """The present API's description (an integration's settings table), the defaults as in
    ``examples/integrations-present-api.toml``."""
    return {
        "base_url": base_url,
        "auth": dict(auth),
        "read": {
            "path": "workorders",
            "records": "items",
            # Keyset: the records after (lastUpdateDate, orderNo), in two parameters; the API
            # requires them on the first request too (from 1970-01-01, orderNo 0).
            "after": {"updatedSince": "{since}", "afterOrderNo": "{number}"},
            "filter_first_pass": True,
            # The contract's ISO 8601 and integer orderNo, whatever format a mapping gives records.
            "watermark_format": "iso",
            "page_size": page_size,
            "max_pages": max_pages,
            "paging": {"style": "keyset", "size_param": "pageSize", "more_path": "hasMore"},
        },
        # Conditional by contract: the ERP answers 409 (or 412) when it holds a newer version.
        "write": {"path": "workorders/{number}", "method": "PUT", "unconditional": True},
    }


class WithQuery(httpx.Auth):
    """The query of ``CLIENT_API_URL`` (an ``?apikey=…``) on every request, after the request's
    own, then ``inner``'s credentials."""

    def __init__(self, inner: httpx.Auth, query: bytes) -> None:
        self._inner = inner
        self._query = query

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        own = request.url.query
        request.url = request.url.copy_with(query=own + b"&" + self._query if own else self._query)
        yield from self._inner.auth_flow(request)


class PresentApiConnector(ApiConnector):
    """The ``api`` connector over the present API, shown and keyed as the ``http`` connector."""

    scope = SCOPE
    names = SettingNames()  # CLIENT_API_*

    def __init__(
        self,
        api: ApiDescription,
        settings: HttpSettings,
        mapping: RecordMapping,
        where: str = "CLIENT_CONNECTOR=http",
    ) -> None:
        super().__init__(api, settings, mapping, where)
        self.present = settings
        self.concurrency = settings.client_api_concurrency

    def describe(self) -> dict[str, str]:
        return {"connector": "http", "api": self.present.shown_url()}

    def _settings_secrets(self) -> list[str]:
        return self.present.secrets()

    def owned(self) -> Owned:
        # Its watermark and versions are the ERP's: two integrations on one API would each
        # export into the other's records; the collection as the ``api`` connector names it,
        # so that an ``api`` integration of the same API is refused beside it too.
        path = self.api.read.path.lstrip("/")
        return Owned(endpoints={"CLIENT_API_URL": f"{self.present.endpoint()}/{path}"})

    def _sent_with(self, auth: httpx.Auth) -> httpx.Auth:
        query = urlsplit(str(self.present.client_api_url)).query
        return WithQuery(auth, query.encode("ascii")) if query else auth

    def _state_key(self) -> str:
        return self.present.state_url()


def description_of(settings: HttpSettings) -> ApiDescription:
    """``present_api()`` filled from the settings: the URL without its credentials and query,
    the token (or the URL's ``user:password@``), the page size and the page limit."""
    parts = urlsplit(str(settings.client_api_url))
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = settings.client_api_token
    variables = {
        "CLIENT_API_URL": urlunsplit((parts.scheme, host, parts.path, "", "")),
        "CLIENT_API_TOKEN": token.get_secret_value() if token is not None else "",
        "CLIENT_API_USER": unquote(user),
        "CLIENT_API_PASSWORD": unquote(password),
    }
    auth: Mapping[str, str] = {"type": "none"}
    if token is not None:
        auth = BEARER
    elif userinfo:
        auth = {
            "type": "basic",
            "username": "${CLIENT_API_USER}",
            "password": "${CLIENT_API_PASSWORD}",
        }
    table = present_api(
        auth=auth,
        page_size=settings.client_api_page_size,
        max_pages=settings.client_api_max_pages,
    )
    table["tls"] = _tls_of(settings, variables)
    if settings.client_api_proxy is not None:
        variables["CLIENT_API_PROXY"] = str(settings.client_api_proxy)
        table["proxy"] = "${CLIENT_API_PROXY}"
    return load_description(table, "CLIENT_CONNECTOR=http", variables)


def _tls_of(settings: HttpSettings, variables: dict[str, str]) -> dict[str, Any]:
    """The description's ``[tls]`` from ``CLIENT_API_CA``, ``_CERT``, ``_KEY`` and
    ``_KEY_PASSPHRASE``."""
    tls: dict[str, Any] = {
        "system_ca": settings.client_api_system_ca,
        "cert_warning_days": settings.client_api_cert_warning_days,
    }
    for key, path in (
        ("ca", settings.client_api_ca),
        ("cert", settings.client_api_cert),
        ("key", settings.client_api_key),
    ):
        if path is not None:
            tls[key] = str(path)
    if settings.client_api_key_passphrase is not None:
        variables["CLIENT_API_KEY_PASSPHRASE"] = (
            settings.client_api_key_passphrase.get_secret_value()
        )
        tls["key_passphrase"] = "${CLIENT_API_KEY_PASSPHRASE}"
    return tls


def create(config: ConnectorConfig) -> PresentApiConnector:
    """The ``http`` connector factory (entry point ``tracos_sync.connectors:http``)."""
    settings = connector_settings(HttpSettings, config)
    api = description_of(settings)
    mapping = resolve_mapping(config)
    where = config.where or "CLIENT_CONNECTOR=http"
    check_mapping(api, mapping, where, envelope_read=False)
    proxy = None if api.proxy is None else str(api.proxy)
    check_transport(api.tls, proxy, f"{where}: settings", PRESENT)
    return PresentApiConnector(api, settings, mapping, where)
