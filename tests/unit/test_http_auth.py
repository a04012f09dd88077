"""Auth plugins of the declarative HTTP connector against ``httpx.MockTransport``: what each sends,
and OAuth 2.0 client credentials fetched once, cached, refreshed before expiry and once on 401,
one fetch shared by concurrent requests, its refusals classified and never showing a secret."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from tracos_sync.connectors.declarative_http.auth import build_auth
from tracos_sync.connectors.declarative_http.auth_spec import ClientCredentialsAuth
from tracos_sync.connectors.declarative_http.description import load_description
from tracos_sync.connectors.declarative_http.environment import FromEnvironment
from tracos_sync.connectors.declarative_http.oauth2 import ClientCredentials
from tracos_sync.connectors.declarative_http.query import with_query
from tracos_sync.connectors.declarative_http.requester import CredentialsRefused, ProtocolError
from tracos_sync.connectors.declarative_http.retrying import ApiTransient

SECRET = "client-s3cret-from-env"
ODATA = httpx.URL(
    "http://erp.test/odata/v4/maintenance/MaintenanceOrder",
    query=b"$filter=LastChangeDateTime%20gt%202024-05-01T00:00:00Z",
)
TOKEN_URL = "https://login.test/oauth/token"


def auth_of(table: dict[str, Any]) -> Any:
    described = {"base_url": "http://erp.test", "auth": table}
    described["read"] = {"path": "x", "paging": {"style": "odata_v4"}}
    return load_description(described, "api", {"SECRET": SECRET}).auth


async def sent(table: dict[str, Any], url: httpx.URL = ODATA) -> httpx.Request:
    """The request as it reached the server, with the plugin built from ``table``."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        client.auth = build_auth(auth_of(table), client)
        await client.get(url)
    return seen[0]


async def test_none_sends_no_credentials() -> None:
    request = await sent({"type": "none"})
    assert "Authorization" not in request.headers and request.url == ODATA


async def test_bearer_sends_the_token() -> None:
    request = await sent({"type": "bearer", "token": "${SECRET}"})
    assert request.headers["Authorization"] == f"Bearer {SECRET}"


async def test_basic_sends_user_and_password() -> None:
    request = await sent({"type": "basic", "username": "svc", "password": "${SECRET}"})
    expected = base64.b64encode(f"svc:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"


async def test_an_api_key_goes_in_its_header() -> None:
    request = await sent({"type": "api_key", "name": "APIKey", "key": "${SECRET}"})
    assert request.headers["APIKey"] == SECRET


async def test_an_api_key_in_the_query_keeps_the_odata_query_as_it_was_encoded() -> None:
    request = await sent(
        {"type": "api_key", "name": "api_key", "send_in": "query", "key": "${SECRET}"}
    )
    assert request.url.query == ODATA.query + f"&api_key={SECRET}".encode()
    assert b"+" not in request.url.query  # CAP answers 400 to a space written as +


def test_query_values_are_percent_encoded_with_odata_literals_kept() -> None:
    url = with_query(httpx.URL("http://erp.test/Orders"), [("$filter", "A eq 'x&y=1+2'")])
    assert url.query == b"$filter=A%20eq%20'x%26y%3D1%2B2'"


# -- OAuth 2.0 client credentials ------------------------------------------------------------


class TokenServer:
    """A token endpoint and an API behind it: tokens ``t1``, ``t2``…; the API accepts only the
    newest, unless ``revoked``."""

    def __init__(self, lifetime: float | None = 3600) -> None:
        self.lifetime = lifetime
        self.issued = 0
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.token_answer: httpx.Response | None = None
        self.revoked: set[str] = set()
        self.gate: asyncio.Event | None = None  # holds token answers back until set
        self.fetching = asyncio.Event()  # set once a token is asked for
        self.api_gate: asyncio.Event | None = None  # holds API answers back until set
        self.api_waiting = asyncio.Event()  # set once ``expected`` API requests arrived
        self.expected = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            self.fetching.set()
            if self.gate is not None:
                await self.gate.wait()
            if self.token_answer is not None:
                return self.token_answer
            self.issued += 1
            body: dict[str, Any] = {"access_token": f"t{self.issued}", "token_type": "bearer"}
            if self.lifetime is not None:
                body["expires_in"] = self.lifetime
            return httpx.Response(200, json=body)
        self.api_requests.append(request)
        if len(self.api_requests) == self.expected:
            self.api_waiting.set()
        if self.api_gate is not None:
            await self.api_gate.wait()
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token != f"t{self.issued}" or token in self.revoked:
            return httpx.Response(401, json={"error": "invalid_token"})
        return httpx.Response(200, json={"value": []})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SPEC = ClientCredentialsAuth(
    type="oauth2_client_credentials",
    token_url=TOKEN_URL,  # type: ignore[arg-type]
    client_id="tracos sync",
    client_secret=FromEnvironment(SECRET),  # type: ignore[arg-type]
    scope="orders.read orders.write",
    refresh_before_seconds=60,
)


@pytest.fixture
async def oauth() -> AsyncIterator[tuple[TokenServer, httpx.AsyncClient, ClientCredentials, Clock]]:
    server, clock = TokenServer(), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        auth = ClientCredentials(SPEC, client, clock=clock)
        client.auth = auth
        yield server, client, auth, clock


async def test_the_token_is_fetched_once_with_our_client_credentials_and_cached(oauth: Any) -> None:
    server, client, auth, _ = oauth
    for _ in range(3):
        assert (await client.get(ODATA)).status_code == 200
    assert auth.fetches == 1 and len(server.token_requests) == 1
    token_request = server.token_requests[0]
    # RFC 6749 §2.3.1: id and secret form-encoded, then HTTP Basic; not in the body.
    expected = base64.b64encode(f"tracos+sync:{SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    form = parse_qs(token_request.content.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["orders.read orders.write"]}
    assert all(r.headers["Authorization"] == "Bearer t1" for r in server.api_requests)


async def test_the_token_is_fetched_again_before_it_expires(oauth: Any) -> None:
    server, client, auth, clock = oauth
    await client.get(ODATA)
    clock.now += 3600 - 61  # just outside the margin: the cached token still serves
    await client.get(ODATA)
    assert auth.fetches == 1
    clock.now += 1  # within refresh_before_seconds of its expiry
    await client.get(ODATA)
    assert auth.fetches == 2
    assert [r.headers["Authorization"] for r in server.api_requests] == ["Bearer t1"] * 2 + [
        "Bearer t2"
    ]


async def test_a_401_fetches_a_new_token_once_and_sends_the_request_again(oauth: Any) -> None:
    server, client, auth, _ = oauth
    await client.get(ODATA)
    server.revoked.add("t1")  # revoked before it expired
    response = await client.get(ODATA)
    assert response.status_code == 200 and auth.fetches == 2
    server.revoked.add("t2")
    server.lifetime = None
    server.token_answer = httpx.Response(200, json={"access_token": "t2", "token_type": "Bearer"})
    response = await client.get(ODATA)  # refused again with a new token: once only, no loop
    assert response.status_code == 401 and auth.fetches == 3
    assert len(server.api_requests) == 5  # 1, 2 (401) + 3, 4 (401) + 5 (401)


async def test_concurrent_requests_share_one_token_fetch(oauth: Any) -> None:
    server, client, auth, _ = oauth
    server.gate = asyncio.Event()
    requests = [asyncio.create_task(client.get(ODATA)) for _ in range(10)]
    await server.fetching.wait()
    for _ in range(100):  # let the others reach the lock (in-process: no wall time involved)
        await asyncio.sleep(0)
    assert len(server.token_requests) == 1
    server.gate.set()
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 10
    assert auth.fetches == 1 and len(server.token_requests) == 1


async def test_concurrent_401s_share_one_new_token(oauth: Any) -> None:
    server, client, auth, _ = oauth
    await client.get(ODATA)
    server.revoked.add("t1")
    # All ten in flight with the revoked token before any 401 comes back.
    server.api_gate, server.expected = asyncio.Event(), 1 + 10
    requests = [asyncio.create_task(client.get(ODATA)) for _ in range(10)]
    await server.api_waiting.wait()
    server.api_gate.set()
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 10
    assert auth.fetches == 2  # one new token for all ten
    assert len(server.api_requests) == 1 + 10 + 10


@pytest.mark.parametrize(
    ("answer", "error", "expected"),
    [
        (
            httpx.Response(401, json={"error": "invalid_client", "echo": SECRET}),
            CredentialsRefused,
            "refuses our client credentials",
        ),
        (
            httpx.Response(400, text=f"bad client {SECRET} " + "x" * 100_000),
            CredentialsRefused,
            "HTTP 400: bad ***",
        ),
        (httpx.Response(503, headers={"Retry-After": "7"}), ApiTransient, "HTTP 503"),
        (httpx.Response(200, text="<html>login</html>"), ProtocolError, "expected {"),
        (
            httpx.Response(200, json={"access_token": "t9", "token_type": "mac"}),
            ProtocolError,
            "expected {",
        ),
        (
            httpx.Response(200, json={"access_token": "a b\r\nX-Evil: 1", "expires_in": 5}),
            ProtocolError,
            "expected {",
        ),
        (httpx.Response(200, text="x" * 70_000), ProtocolError, "larger than max_token_bytes"),
        (httpx.Response(302, headers={"Location": "/login"}), ProtocolError, "unexpected"),
    ],
)
async def test_the_token_endpoints_answers_are_classified_without_showing_a_secret(
    oauth: Any, answer: httpx.Response, error: type[Exception], expected: str
) -> None:
    server, client, auth, _ = oauth
    server.token_answer = answer
    with pytest.raises(error) as caught:
        await client.get(ODATA)
    message = str(caught.value)
    assert expected in message and "\n" not in message and len(message) < 400
    assert not any(secret in message for secret in auth.secrets())
    assert server.api_requests == []  # nothing reached the API without a token
    if isinstance(caught.value, ApiTransient):
        assert caught.value.retry_after == 7


async def test_a_token_echoed_in_a_malformed_answer_is_not_shown(oauth: Any) -> None:
    server, client, _, _ = oauth
    token = "tok-" + "z" * 30
    body = json.dumps({"access_token": token, "token_type": "bearer", "expires_in": "soon"})
    server.token_answer = httpx.Response(200, text=body)
    with pytest.raises(ProtocolError) as caught:
        await client.get(ODATA)
    assert token not in str(caught.value) and token[:12] not in str(caught.value)


async def test_client_credentials_may_go_in_the_form_body() -> None:
    server = TokenServer()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
        spec = SPEC.model_copy(update={"client_auth": "body", "scope": None})
        client.auth = ClientCredentials(spec, client)
        await client.get(ODATA)
    token_request = server.token_requests[0]
    assert "Authorization" not in token_request.headers
    assert parse_qs(token_request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["tracos sync"],
        "client_secret": [SECRET],
    }


def test_the_plugin_refuses_a_sync_client() -> None:
    with httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200))) as client:
        client.auth = ClientCredentials(SPEC, httpx.AsyncClient())
        with pytest.raises(RuntimeError, match="AsyncClient"):
            client.get("http://erp.test/")
