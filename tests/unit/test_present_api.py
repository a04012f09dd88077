"""The present HTTP API is one description of the ``api`` connector: the ``http`` connector's
built-in description is the example's, and is filled from the ``CLIENT_API_*`` settings."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import HttpUrl, SecretStr

from tracos_sync.connectors import load
from tracos_sync.connectors.declarative_http.auth_spec import BasicAuth, BearerAuth, NoAuth
from tracos_sync.connectors.declarative_http.present_api import (
    PresentApiConnector,
    description_of,
    present_api,
)
from tracos_sync.connectors.declarative_http.present_settings import HttpSettings
from tracos_sync.connectors.declarative_http.reader import ApiReader
from tracos_sync.connectors.declarative_http.requester import Limits, Requester
from tracos_sync.connectors.declarative_http.watermark import Watermark
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.ports import ConnectorConfig
from tracos_sync.mapping import BUILTIN, load_mapping

EXAMPLE = Path(__file__).parents[2] / "examples" / "integrations-present-api.toml"


def test_the_example_is_the_built_in_description() -> None:
    [integration] = tomllib.loads(EXAMPLE.read_text())["integration"]
    assert integration["connector"] == "api"
    assert integration["settings"] == present_api()


def test_the_description_asks_the_present_api_by_keyset_in_two_parameters() -> None:
    api = description_of(
        HttpSettings(client_api_url=HttpUrl("http://erp.test/api"), client_api_page_size=7)
    )
    read = api.read
    assert read.after == {"updatedSince": "{since}", "afterOrderNo": "{number}"}
    assert (read.path, read.records, read.page_size) == ("workorders", "items", 7)
    assert read.filter_first_pass
    assert api.write is not None and api.write.path == "workorders/{number}"
    assert str(api.base_url) == "http://erp.test/api"


@pytest.mark.parametrize(
    ("url", "token", "auth"),
    [
        ("http://erp.test", "t0ken", BearerAuth),
        ("http://alice:pa%3Ass@erp.test/?apikey=k3y", None, BasicAuth),
        ("http://erp.test", None, NoAuth),
    ],
)
def test_credentials_come_from_the_token_or_the_url(
    url: str, token: str | None, auth: type
) -> None:
    settings = HttpSettings(
        client_api_url=HttpUrl(url), client_api_token=SecretStr(token) if token else None
    )
    api = description_of(settings)
    assert isinstance(api.auth, auth)
    assert "@" not in str(api.base_url) and "?" not in str(api.base_url)
    if isinstance(api.auth, BasicAuth):
        assert (api.auth.username, api.auth.password.get_secret_value()) == ("alice", "pa:ss")


def test_the_http_connector_is_the_api_connector_keyed_as_before() -> None:
    config = ConnectorConfig(
        settings={"client_api_url": "http://erp.test/?apikey=k3y-SeCrEt"}, env_file=None
    )
    connector = load("http")(config)
    assert isinstance(connector, PresentApiConnector)
    assert connector.describe() == {"connector": "http", "api": "http://erp.test/?apikey=***"}
    assert "k3y-SeCrEt" in connector.secrets()


def test_a_mapping_with_a_file_envelope_still_serves_the_http_connector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The present API's records are in ``items`` whatever the mapping says of a file's
    envelope (the ``http`` connector always ignored it); the ``api`` connector refuses the
    mismatch, its ``read.records`` being the user's to write."""
    enveloped = {**BUILTIN, "records": "d.results"}
    config = ConnectorConfig(
        settings={"client_api_url": "http://erp.test/"}, mapping=enveloped, env_file=None
    )
    assert isinstance(load("http")(config), PresentApiConnector)
    monkeypatch.setenv("CLIENT_API_URL", "http://erp.test/")
    monkeypatch.setenv("CLIENT_API_TOKEN", "t0ken")
    described = ConnectorConfig(settings=present_api(), mapping=enveloped, env_file=None)
    with pytest.raises(ConfigurationError, match=r"read\.records"):
        load("api")(described)


def test_the_http_and_an_api_integration_of_one_api_own_the_same_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two integrations over one API would each export into the other's records: refused at
    start-up whether each is ``http`` or the ``api`` connector's description of it."""
    monkeypatch.setenv("CLIENT_API_URL", "http://erp.test/api/")
    monkeypatch.setenv("CLIENT_API_TOKEN", "t0ken")
    http = load("http")(ConnectorConfig(settings={"client_api_url": "http://ERP.test:80/api"}))
    api = load("api")(ConnectorConfig(settings=present_api(), env_file=None))
    assert set(http.owned().endpoints.values()) == set(api.owned().endpoints.values())


async def test_the_watermark_is_sent_as_the_contract_writes_it_whatever_the_mapping() -> None:
    """``updatedSince`` in ISO 8601 and ``afterOrderNo`` an integer, as the ``http`` connector
    always sent them, for a customer whose records write dates their own way."""
    mapping = load_mapping({**BUILTIN, "date_format": "%d/%m/%Y %H:%M"}, where="test")
    asked: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        return httpx.Response(200, json={"items": [], "hasMore": False})

    settings = HttpSettings(client_api_url=HttpUrl("http://erp.test"))
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    requester = Requester(client, Limits(timeout=5, retry_budget=0, max_bytes=1 << 20), list)
    reader = ApiReader(
        description_of(settings),
        mapping,
        requester,
        clock_skew=timedelta(minutes=5),
        clock=lambda: datetime(2024, 6, 1, tzinfo=UTC),
    )
    start = Watermark(datetime(2024, 5, 2, 8, 30, tzinfo=UTC), 7)
    assert [unit async for unit in reader.units(start)] == []
    await reader.close()
    [url] = asked
    assert url.params["updatedSince"] == "2024-05-02T08:30:00.000Z"
    assert url.params["afterOrderNo"] == "7"
