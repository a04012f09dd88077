"""How an API description says who we are: the ``[auth]`` table, one of five kinds by ``type``.

Every secret (token, password, key, client secret) is ``${NAME}`` in the file, taken from the
environment, or ``file:/path``, a mounted file read again when it changes (``EnvSecret``);
``secrets()`` lists them for redaction.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote_plus

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from tracos_sync.logs import base64_form

from .environment import EnvSecret, HeaderSecret
from .secret_files import secret_values

_MODEL = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

# A header or query-parameter name: an RFC 9110 token.
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]


class NoAuth(BaseModel):
    """Nothing sent (an API on a private network, or one that authenticates the connection)."""

    model_config = _MODEL

    type: Literal["none"] = "none"
    """`none`: no credentials are sent."""

    def secrets(self) -> list[str]:
        return []


class BearerAuth(BaseModel):
    """A fixed token: ``Authorization: Bearer <token>``."""

    model_config = _MODEL

    type: Literal["bearer"]
    """`bearer`: a token the ERP issued, sent as `Authorization: Bearer …`."""
    token: HeaderSecret
    """The token, as `${NAME}` (from the environment) or `file:/path` (a mounted file, read
    again when it changes); never printed: printable ASCII without
    spaces."""

    def secrets(self) -> list[str]:
        return secret_values(self.token)


class BasicAuth(BaseModel):
    """RFC 7617: ``Authorization: Basic base64(user:password)``."""

    model_config = _MODEL

    type: Literal["basic"]
    """`basic`: a user name and password (HTTP Basic)."""
    username: str = Field(pattern=r"^[^:]+$")
    """The user name (may be `${NAME}`); it must not hold `:`."""
    password: EnvSecret
    """The password, as `${NAME}` (from the environment) or `file:/path` (a mounted file, read
    again when it changes); never printed."""

    def secrets(self) -> list[str]:
        # The header value too: an ERP that echoes it shows base64(user:password), in which the
        # password's own Base64 forms do not appear (their alignment differs).
        passwords = secret_values(self.password)
        return [*passwords, *(basic_credentials(self.username, p) for p in passwords)]


class ApiKeyAuth(BaseModel):
    """A key in a header (``APIKey: …``) or in the query string (``?api_key=…``)."""

    model_config = _MODEL

    type: Literal["api_key"]
    """`api_key`: a key sent with every request."""
    name: HeaderName
    """The header or query parameter that carries it (`APIKey`, `x-api-key`, `api_key`)."""
    send_in: Literal["header", "query"] = "header"
    """Where it goes: a header, or a query parameter (percent-encoded, added to every URL)."""
    key: HeaderSecret
    """The key, as `${NAME}` (from the environment) or `file:/path` (a mounted file, read again
    when it changes); never printed: printable ASCII without
    spaces (percent-encoded in a query)."""

    def secrets(self) -> list[str]:
        return secret_values(self.key)


class ClientCredentialsAuth(BaseModel):
    """OAuth 2.0 client credentials (RFC 6749 §4.4): a token fetched from ``token_url``, cached,
    fetched again before it expires and once when the API answers 401."""

    model_config = _MODEL

    type: Literal["oauth2_client_credentials"]
    """`oauth2_client_credentials`: a token from an authorisation server."""
    token_url: HttpUrl
    """The authorisation server's token endpoint (absolute)."""
    client_id: str = Field(min_length=1)
    """Our client id there (may be `${NAME}`)."""
    client_secret: EnvSecret
    """Our client secret, as `${NAME}` (from the environment) or `file:/path` (a mounted file,
    read again when it changes); never printed."""
    scope: str | None = None
    """The scopes asked for, space-separated; unset: the server's default."""
    client_auth: Literal["basic", "body"] = "basic"
    """How the client authenticates to the token endpoint: HTTP Basic (RFC 6749 §2.3.1, the
    default every server must accept) or `client_id`/`client_secret` in the form body."""
    refresh_before_seconds: float = Field(60.0, ge=0, le=3_600, strict=True)
    """A token is fetched again this long before it expires (so that no request goes out with a
    token that expires on the way); at most half its lifetime before (a warning says so once),
    so that a token living shorter than this is not fetched again for every request."""
    max_token_bytes: int = Field(65_536, ge=1_024, le=16 * 1024 * 1024, strict=True)
    """A token endpoint answer larger than this is refused (fatal for the run)."""

    def secrets(self) -> list[str]:
        secrets = secret_values(self.client_secret)  # a file's values read lately too
        if self.client_auth == "body":
            return secrets
        pairs = (basic_credentials(quote_plus(self.client_id), quote_plus(s)) for s in secrets)
        return [*secrets, *pairs]

    def basic_pair(self) -> tuple[str, str]:
        """The id and secret as HTTP Basic sends them to the token endpoint: each form-encoded
        first (RFC 6749 §2.3.1)."""
        return quote_plus(self.client_id), quote_plus(self.client_secret.get_secret_value())


def basic_credentials(username: str, password: str) -> str:
    """The value of ``Authorization: Basic …`` (RFC 7617, UTF-8 as httpx encodes it): a secret
    of its own, since the password does not show in it as any of its own forms."""
    return base64_form(f"{username}:{password}".encode())


AuthSpec = Annotated[
    NoAuth | BearerAuth | BasicAuth | ApiKeyAuth | ClientCredentialsAuth,
    Field(discriminator="type"),
]
