"""Settings of the ``http`` connector (``CLIENT_API_*``): the present API, where it is and who
we are, from which ``present_api`` builds its description for the ``api`` connector; the
request limits are the ``api`` connector's own (``ApiSettings``). Its watermark and dead letters
are kept by the bootstrap's connector state store (``CLIENT_STATE_COLLECTION``, core settings)."""

from __future__ import annotations

import posixpath
from typing import Annotated
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from pydantic import BeforeValidator, Field, HttpUrl, SecretStr, model_validator

from tracos_sync.logs import MASK, uri_secrets

from .settings import ApiSettings

# RFC 6750's token characters are a subset of these; anything else cannot go in a header.
_VISIBLE_ASCII = frozenset(chr(c) for c in range(0x21, 0x7F))


def _token(value: object) -> object:
    """Whitespace around a token is dropped (a secret mounted from a file ends with a newline);
    an empty one means no token; one with spaces, control or non-ASCII characters inside is
    refused, without showing it."""
    if not isinstance(value, str):
        return value
    token = value.strip()
    if not token:
        return None
    if not set(token) <= _VISIBLE_ASCII:
        raise ValueError(
            "must be printable ASCII without spaces or control characters inside "
            "(the value is not shown)"
        )
    return token


ApiToken = Annotated[SecretStr | None, BeforeValidator(_token)]


class HttpSettings(ApiSettings):
    client_api_url: HttpUrl
    """The ERP API's base URL (required). Credentials in it and the values of its query string (an
    `?apikey=...`) are never printed; the query goes with every request."""
    client_api_token: ApiToken = None
    """Bearer token (refused together with `user:password@` in CLIENT_API_URL, exit 2: only one
    can be sent). Whitespace around it is dropped (the newline of a secret mounted from a file);
    spaces, control or non-ASCII characters inside it are refused (exit 2). Never printed, in any
    form."""
    client_api_page_size: int = Field(100, ge=1, le=10_000)
    """Work orders asked for per page, inbound."""
    client_api_concurrency: int = Field(8, ge=1, le=64)
    """Parallel `PUT`s, outbound."""
    client_api_max_pages: int = Field(1_000, ge=1, le=1_000_000)
    """Pages read per run at most (an API whose paging never ends costs one bounded run); the rest
    is read next run, from where this one stopped (if none of them brought anything new: exit 1,
    the API's paging does not end)."""

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> HttpSettings:
        """A bearer token and ``user:password@`` in the URL cannot both be sent (the HTTP client
        would send the URL's and drop the token without a word)."""
        parts = urlsplit(str(self.client_api_url))
        if self.client_api_token is not None and "@" in parts.netloc:
            raise ValueError(
                "CLIENT_API_TOKEN and credentials in CLIENT_API_URL (user:password@) are both "
                "set: only one can be sent; remove one of them (neither value is shown)"
            )
        return self

    def secrets(self) -> list[str]:
        """The token, any credentials in the URL, and the values of its query string (an API
        key passed as ``?apikey=…``)."""
        token = self.client_api_token
        url = str(self.client_api_url)
        query = [v for _, v in parse_qsl(urlsplit(url).query) if len(v) >= 3]
        query += [quote(v, safe="") for v in query]
        return ([token.get_secret_value()] if token is not None else []) + uri_secrets(url) + query

    def shown_url(self) -> str:
        """The URL as it may be printed: user info and query values masked."""
        parts = urlsplit(str(self.client_api_url))
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{MASK}@{host}" if "@" in parts.netloc else host
        query = "&".join(f"{k}={MASK}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

    def endpoint(self) -> str:
        """Where requests go, as one string for every way of writing it: no credentials or
        query, host in lower case, no default port, no trailing slash (the API client drops it)."""
        url = self.client_api_url
        default = {"http": 80, "https": 443}.get(url.scheme)
        port = "" if url.port in (None, default) else f":{url.port}"
        # As a server reads it: %-escapes decoded, repeated slashes one, dot segments resolved.
        segments = posixpath.normpath(unquote(url.path or "/")).strip("/")
        segments = "" if segments == "." else segments
        path = f"/{segments}" if segments else ""
        return f"{url.scheme}://{(url.host or '').lower()}{port}{path}"

    def state_url(self) -> str:
        """What the connector's state is keyed by: the URL without user info or query (changing
        credentials keeps the watermark)."""
        parts = urlsplit(str(self.client_api_url))
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
