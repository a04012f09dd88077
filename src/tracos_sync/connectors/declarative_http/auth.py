"""Who we are to the ERP, as ``httpx.Auth`` plugins built from the description's ``[auth]``.

Each plugin adds its credentials to a request as the client sends it, so one client serves every
request and nothing else knows how the ERP authenticates. ``basic`` is httpx's own
``BasicAuth``; OAuth 2.0 client credentials are ``oauth2.ClientCredentials``.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx

from .auth_spec import (
    ApiKeyAuth,
    AuthSpec,
    BasicAuth,
    BearerAuth,
    ClientCredentialsAuth,
    NoAuth,
)
from .oauth2 import ClientCredentials
from .query import with_query


class BearerToken(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class ApiKeyHeader(httpx.Auth):
    """The key in a header of its own on every request."""

    def __init__(self, name: str, key: str) -> None:
        self._name = name
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._name] = self._key
        yield request


class ApiKeyQuery(httpx.Auth):
    """The key as a query parameter of every request, added after the request's own query,
    which is kept byte for byte (merging parameters the httpx way would encode an OData
    ``$filter`` again, its spaces as ``+``)."""

    def __init__(self, name: str, key: str) -> None:
        self._pair = (name, key)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = with_query(request.url, [self._pair])
        yield request


def build_auth(spec: AuthSpec, client: httpx.AsyncClient) -> httpx.Auth:
    """The plugin for ``spec``; ``client`` is the connector's one client, which also reaches
    an OAuth 2.0 token endpoint."""
    match spec:
        case NoAuth():
            return httpx.Auth()  # sends the request as it is
        case BearerAuth(token=token):
            return BearerToken(token.get_secret_value())
        case BasicAuth(username=username, password=password):
            return httpx.BasicAuth(username, password.get_secret_value())
        case ApiKeyAuth(name=name, send_in="header", key=key):
            return ApiKeyHeader(name, key.get_secret_value())
        case ApiKeyAuth(name=name, key=key):
            return ApiKeyQuery(name, key.get_secret_value())
        case ClientCredentialsAuth():
            return ClientCredentials(spec, client)
    raise AssertionError(f"unknown auth {spec!r}")  # pragma: no cover - the union is closed
