"""Who we are to the ERP, as ``httpx.Auth`` plugins built from the description's ``[auth]``.

Each plugin adds its credentials to a request as the client sends it, so one client serves every
request and nothing else knows how the ERP authenticates. ``basic`` is httpx's own
``BasicAuth``; OAuth 2.0 client credentials are ``oauth2.ClientCredentials``.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx
from pydantic import SecretStr

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

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request


class BasicCredentials(httpx.Auth):
    """HTTP Basic (httpx's ``BasicAuth``) with the password of the moment."""

    def __init__(self, username: str, password: SecretStr) -> None:
        self._username = username
        self._password = password

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        basic = httpx.BasicAuth(self._username, self._password.get_secret_value())
        yield from basic.auth_flow(request)


class ApiKeyHeader(httpx.Auth):
    """The key in a header of its own on every request."""

    def __init__(self, name: str, key: SecretStr) -> None:
        self._name = name
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._name] = self._key.get_secret_value()
        yield request


class ApiKeyQuery(httpx.Auth):
    """The key as a query parameter of every request, added after the request's own query,
    which is kept byte for byte (merging parameters the httpx way would encode an OData
    ``$filter`` again, its spaces as ``+``)."""

    def __init__(self, name: str, key: SecretStr) -> None:
        self._name = name
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = with_query(request.url, [(self._name, self._key.get_secret_value())])
        yield request


def build_auth(spec: AuthSpec, client: httpx.AsyncClient) -> httpx.Auth:
    """The plugin for ``spec``; ``client`` is the connector's one client, which also reaches
    an OAuth 2.0 token endpoint."""
    match spec:
        case NoAuth():
            return httpx.Auth()  # sends the request as it is
        case BearerAuth(token=token):
            return BearerToken(token)
        case BasicAuth(username=username, password=password):
            return BasicCredentials(username, password)
        case ApiKeyAuth(name=name, send_in="header", key=key):
            return ApiKeyHeader(name, key)
        case ApiKeyAuth(name=name, key=key):
            return ApiKeyQuery(name, key)
        case ClientCredentialsAuth():
            return ClientCredentials(spec, client)
    raise AssertionError(f"unknown auth {spec!r}")  # pragma: no cover - the union is closed
