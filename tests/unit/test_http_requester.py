"""The requester with an auth plugin on one client (``httpx.MockTransport``): a token endpoint's
transient failure retried within the budget as the API's are, a token fetched at run time never
shown in a message, the superseded statuses as the description says them."""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib
from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest

from tracos_sync.connectors.declarative_http.auth_spec import BasicAuth, ClientCredentialsAuth
from tracos_sync.connectors.declarative_http.environment import FromEnvironment
from tracos_sync.connectors.declarative_http.oauth2 import ClientCredentials
from tracos_sync.connectors.declarative_http.requester import (
    ApiAsksToWait,
    CredentialsRefused,
    Limits,
    ProtocolError,
    Refused,
    Requester,
    SettingNames,
    Superseded,
)
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.logs import redact_text

TOKEN_URL = "https://login.test/token"
TOKEN = "tok-" + "q" * 40
SPEC = ClientCredentialsAuth(
    type="oauth2_client_credentials",
    token_url=TOKEN_URL,  # type: ignore[arg-type]
    client_id="c",
    client_secret=FromEnvironment("client-secret-value"),  # type: ignore[arg-type]
)
LIMITS = Limits(timeout=5, retry_budget=5, max_bytes=1 << 20)
NAMES = SettingNames(retry="retry_seconds", credentials="auth", url="base_url")


def requester(
    handler: Callable[[httpx.Request], httpx.Response], superseded: tuple[int, ...] = (409, 412)
) -> tuple[Requester, ClientCredentials]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    auth = ClientCredentials(SPEC, client)
    client.auth = auth
    return Requester(client, LIMITS, auth.secrets, NAMES, superseded), auth


async def test_a_token_endpoint_that_fails_for_a_while_is_retried_within_the_budget() -> None:
    answers = iter([503, 429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            status = next(answers)
            if status != 200:
                return httpx.Response(status, headers={"Retry-After": "0"})
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 600})
        return httpx.Response(200, json={"value": []})

    api, auth = requester(handler)
    response, body = await api.call("list orders", "GET", "http://erp.test/Orders")
    assert response.status_code == 200 and body == b'{"value":[]}'
    assert auth.fetches == 1
    await api.close()


async def test_a_token_endpoint_asking_to_wait_beyond_the_budget_says_it_was_not_retried() -> None:
    """Not "still failing after retrying for 5s" when nothing was retried: what happened, and
    how long the API asked for (watch mode waits that long, ``ApiAsksToWait.wait``)."""
    api, _ = requester(lambda _: httpx.Response(503, headers={"Retry-After": "60"}))
    with pytest.raises(ApiAsksToWait) as caught:
        await api.call("list orders", "GET", "http://erp.test/Orders")
    message = str(caught.value)
    assert "asks to be called again in 60s (Retry-After), beyond the retry budget of 5s" in message
    assert "not retried in this run" in message and "after retrying" not in message
    assert caught.value.wait == 60
    await api.close()


async def test_an_api_failing_for_the_whole_budget_says_how_long_and_what_it_asked() -> None:
    api, _ = requester(lambda _: httpx.Response(503, headers={"Retry-After": "0.2"}))
    api._limits = Limits(timeout=5, retry_budget=0.5, max_bytes=1 << 20)
    with pytest.raises(
        ApiAsksToWait, match=r"after retrying for 0.5s \(retry_seconds, \d attempts"
    ):
        await api.call("list orders", "GET", "http://erp.test/Orders")
    await api.close()


async def test_a_token_fetched_at_run_time_is_never_shown_in_a_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(200, json={"access_token": TOKEN, "token_type": "Bearer"})
        echoed = request.headers["Authorization"]
        return httpx.Response(400, text=f"malformed request; you sent {echoed}")

    api, _ = requester(handler)
    with pytest.raises(RecordRejected) as caught:
        await api.call("send order 1", "PATCH", "http://erp.test/Orders('1')", content=b"{}")
    message = str(caught.value)
    assert "you sent Bearer ***" in message and TOKEN[:12] not in message
    await api.close()


@pytest.mark.parametrize(
    ("superseded", "status", "error"),
    [((409, 412), 412, Superseded), ((412,), 409, Refused), ((412,), 412, Superseded)],
)
async def test_the_superseded_statuses_are_the_descriptions(
    superseded: tuple[int, ...], status: int, error: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(200, json={"access_token": TOKEN})
        return httpx.Response(status, json={"error": {"code": str(status)}})

    api, _ = requester(handler, superseded)
    with pytest.raises(error) as caught:
        await api.call("send order 1", "PATCH", "http://erp.test/Orders('1')", content=b"{}")
    assert type(caught.value) is error
    if isinstance(caught.value, Refused):
        assert caught.value.status == status  # what a writer needs to tell a 404 from the rest
    await api.close()


BASIC_PASSWORD = "Tr0ub4dor&3-horse"


def echoed_forms(value: str) -> list[str]:
    """How an ERP may echo the value of an ``Authorization: Basic …`` header: the header, the
    value alone, percent-encoded (a query or a form), unpadded."""
    return [f"Authorization: Basic {value}", value, quote(value, safe=""), value.rstrip("=")]


@pytest.mark.parametrize("form", range(4))
async def test_basic_credentials_echoed_by_the_erp_are_never_shown(form: int) -> None:
    # "svc_tracos:" is 11 bytes: the password's own Base64 does not line up inside the header's.
    auth = BasicAuth(
        type="basic",
        username="svc_tracos",
        password=FromEnvironment(BASIC_PASSWORD),  # type: ignore[arg-type]
    )
    header = base64.b64encode(f"svc_tracos:{BASIC_PASSWORD}".encode()).decode()

    def handler(request: httpx.Request) -> httpx.Response:
        value = request.headers["Authorization"].removeprefix("Basic ")
        return httpx.Response(400, text=f"bad request; you sent {echoed_forms(value)[form]}")

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client.auth = httpx.BasicAuth("svc_tracos", BASIC_PASSWORD)
    api = Requester(client, LIMITS, auth.secrets, NAMES)
    with pytest.raises(Refused) as caught:
        await api.call("list orders", "GET", "http://erp.test/Orders")
    message = str(caught.value)
    assert "you sent" in message
    assert header[:8] not in message and quote(header, safe="")[:8] not in message
    assert header[:8] not in redact_text(
        f"a log line: {echoed_forms(header)[form]}", auth.secrets()
    )
    await api.close()


async def test_oauth2_basic_client_credentials_echoed_by_the_token_endpoint_are_never_shown() -> (
    None
):
    # client_id "c": "c:" is 2 bytes, so the secret's own Base64 does not line up in the header's.
    header = base64.b64encode(b"c:client-secret-value").decode()

    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["Authorization"]
        return httpx.Response(401, text=f"refused: {echoed}")

    api, auth = requester(handler)
    with pytest.raises(CredentialsRefused) as caught:
        await api.call("list orders", "GET", "http://erp.test/Orders")
    assert "refused: Basic" in str(caught.value) and header[:8] not in str(caught.value)
    assert header in auth.secrets()
    await api.close()


def gzip_bomb(inflated: int) -> bytes:
    """``inflated`` zero bytes, gzip-compressed (about a thousandth of that), made a megabyte at
    a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    parts = [packer.compress(zeros) for _ in range(inflated >> 20)]
    return b"".join([*parts, packer.flush()])


async def test_a_gzip_answer_is_refused_at_the_cap_without_being_inflated_past_it() -> None:
    """64 MiB of zeros in 64 KiB of gzip, a 1 MiB cap: refused, and never more than about the
    cap in memory (httpx alone inflates a received chunk whole: 64 MiB at once)."""
    bomb = gzip_bomb(64 << 20)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Accept-Encoding"])
        # As received from a server: streamed, not decoded in memory beforehand.
        stream = httpx.ByteStream(bomb)
        return httpx.Response(200, stream=stream, headers={"Content-Encoding": "gzip"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    api = Requester(client, Limits(timeout=30, retry_budget=0, max_bytes=1 << 20), list, NAMES)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match=r"larger than CLIENT_API_MAX_RESPONSE_BYTES"):
            await api.call("list orders", "GET", "http://erp.test/Orders")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    assert seen == ["gzip, deflate"]  # only what is read bounded is asked for
    await api.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "identity"])
async def test_a_compressed_answer_within_the_cap_is_read_whole(encoding: str) -> None:
    body = b'{"value": [' + b",".join(b'{"n": %d}' % n for n in range(5_000)) + b"]}"
    packed = {
        "gzip": gzip.compress(body),
        "deflate": zlib.compress(body),
        "identity": body,
    }[encoding]

    def handler(request: httpx.Request) -> httpx.Response:
        stream = httpx.ByteStream(packed)
        return httpx.Response(200, stream=stream, headers={"Content-Encoding": encoding})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    api = Requester(client, LIMITS, list, NAMES)
    _, read = await api.call("list orders", "GET", "http://erp.test/Orders")
    assert read == body
    await api.close()
