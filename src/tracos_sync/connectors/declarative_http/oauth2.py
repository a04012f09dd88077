"""OAuth 2.0 client credentials (RFC 6749 §4.4) as an ``httpx.Auth`` plugin: a token fetched from
the token endpoint, cached, fetched again ``refresh_before_seconds`` before it expires, and once
more when the API answers 401 (revoked early). Requests that find the token stale at the same time
share one fetch: a lock, and a request refused with a token that another has replaced already
just uses the new one.

The token endpoint's answer is classified here, as the requester classifies the API's: 400, 401,
403 (our client credentials are refused: RFC 6749 §5.2 answers 400 ``invalid_client``) are
``CredentialsRefused``; 408, 429, 5xx are ``ApiTransient`` (the requester retries the whole
request within its budget); anything else, or an answer that is not a bearer token, or is larger
than ``max_token_bytes``, is a ``ProtocolError``. The client secret and every token fetched are
listed by ``secrets()``, and no message shows them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any
from urllib.parse import quote_plus

import httpx

from tracos_sync.logs import base64_form, redact_text

from ..client_erp.codec import ParseError, parse_json
from .auth_spec import ClientCredentialsAuth
from .requester import CredentialsRefused, ProtocolError
from .retrying import ApiTransient, retry_after

_VISIBLE_ASCII = frozenset(chr(c) for c in range(0x21, 0x7F))
EXCERPT_CHARS = 200
REMEMBERED_TOKENS = 8  # for redaction: a token may still show in a late log line


class ClientCredentials(httpx.Auth):
    """``Authorization: Bearer <token>``, the token fetched with our client credentials."""

    def __init__(
        self,
        spec: ClientCredentialsAuth,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spec = spec
        self._client = client  # the connector's; the token request is sent without this plugin
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires = -math.inf
        self._issued: deque[str] = deque(maxlen=REMEMBERED_TOKENS)
        self.fetches = 0  # tokens fetched, for tests and a log line

    def secrets(self) -> list[str]:
        """The client secret and the tokens fetched lately: never to be shown."""
        return [self._spec.client_secret.get_secret_value(), *self._issued]

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        raise RuntimeError("OAuth 2.0 client credentials need an httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._valid_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:  # revoked before it expired: one new token, once
            token = await self._valid_token(refused=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    async def _valid_token(self, refused: str | None = None) -> str:
        """The cached token unless it expires within the margin or the API refused it; then a
        new one, fetched by whichever request gets here first."""
        async with self._lock:
            margin = self._spec.refresh_before_seconds
            if (
                self._token is None
                or self._token == refused
                or self._clock() >= self._expires - margin
            ):
                self._token, lifetime = await self._fetch()
                self._expires = self._clock() + lifetime
                self._issued.append(self._token)
                self.fetches += 1
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        """A new token and its lifetime in seconds (infinite when the server does not say)."""
        spec = self._spec
        form = {"grant_type": "client_credentials"}
        if spec.scope:
            form["scope"] = spec.scope
        secret = spec.client_secret.get_secret_value()
        headers = {"Accept": "application/json"}
        if spec.client_auth == "basic":
            # RFC 6749 §2.3.1: id and secret form-encoded, then HTTP Basic.
            pair = f"{quote_plus(spec.client_id)}:{quote_plus(secret)}".encode()
            headers["Authorization"] = f"Basic {base64_form(pair)}"
        else:
            form |= {"client_id": spec.client_id, "client_secret": secret}
        request = httpx.Request("POST", str(spec.token_url), data=form, headers=headers)
        response = await self._client.send(request, auth=None, stream=True)
        try:
            body = await self._read(response)
        finally:
            await response.aclose()
        return self._token_in(response, body)

    async def _read(self, response: httpx.Response) -> bytes:
        limit = self._spec.max_token_bytes
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if response.is_success:
                    raise ProtocolError(
                        f"token endpoint: the answer is larger than max_token_bytes ({limit})"
                    )
                break  # an error answer: its start is enough for a message
        return b"".join(chunks)

    def _token_in(self, response: httpx.Response, body: bytes) -> tuple[str, float]:
        status = response.status_code
        said = f"HTTP {status}: {self._excerpt(body)}"
        if status in (400, 401, 403):
            raise CredentialsRefused(
                f"token endpoint {self._spec.token_url} refuses our client credentials "
                f"(check client_id and client_secret): {said}"
            )
        if status in (408, 429) or status >= 500:
            raise ApiTransient(f"token endpoint: {said}", retry_after(response.headers))
        if status != 200:
            raise ProtocolError(f"token endpoint: unexpected answer {said}")
        try:
            document = parse_json(body)
        except ParseError:
            document = None
        token = document.get("access_token") if isinstance(document, dict) else None
        kind = document.get("token_type", "bearer") if isinstance(document, dict) else None
        lifetime = document.get("expires_in") if isinstance(document, dict) else None
        if (
            not isinstance(token, str)
            or not token
            or not set(token) <= _VISIBLE_ASCII
            or not isinstance(kind, str)
            or kind.lower() != "bearer"
            or not (lifetime is None or _is_seconds(lifetime))
        ):
            raise ProtocolError(
                'token endpoint: expected {"access_token": "…", "token_type": "Bearer", '
                f'"expires_in": seconds}}, got {self._excerpt(body, token)}'
            )
        return token, math.inf if lifetime is None else float(lifetime)

    def _excerpt(self, body: bytes, token: object = None) -> str:
        """The answer's start on one line, redacted (and without a token it may carry) before
        it is cut."""
        extra = [token] if isinstance(token, str) and token else []
        text = redact_text(body.decode("utf-8", "replace"), [*self.secrets(), *extra])
        text = " ".join(text.split())
        return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
