"""The ``api`` connector built from an integration's settings table: the description and the
connector's own settings side by side, errors naming the key, the mapping checked against the
description, outbound refused while the API is read only, and with a ``[write]`` table the
declarative writer, sharing one echo guard with the reader."""

from __future__ import annotations

import copy
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import InMemoryConnectorStateStore
from tracos_sync.connectors import load
from tracos_sync.connectors.declarative_http.connector import ApiConnector, create, writes_check
from tracos_sync.connectors.declarative_http.description import load_description
from tracos_sync.connectors.declarative_http.sink import DeclarativeSink
from tracos_sync.domain.errors import ConfigurationError, FatalError
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import ConnectorConfig, ConnectorContext

READ = {
    "path": "MaintenanceOrder",
    "since": {"$filter": "LastChangeDateTime gt {since}"},
    "paging": {"style": "odata_v4"},
}


def config(
    settings: dict[str, Any] | None, mapping: dict[str, Any] | None = None
) -> ConnectorConfig:
    return ConnectorConfig(
        settings=settings, mapping=mapping, env_file=None, where="f: integration 's4'"
    )


def table(**extra: Any) -> dict[str, Any]:
    return {"base_url": "http://erp.test/odata/v4/maintenance", "read": dict(READ), **extra}


def test_the_entry_point_api_builds_the_connector_from_its_settings_table() -> None:
    connector = load("api")(config(table(client_api_retry_seconds=5)))
    assert isinstance(connector, ApiConnector)
    assert connector.settings.client_api_retry_seconds == 5
    endpoint = "http://erp.test/odata/v4/maintenance/MaintenanceOrder"
    assert connector.describe() == {"connector": "api", "api": endpoint}
    assert dict(connector.owned().endpoints) == {"base_url": endpoint}


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (table(read={**READ, "pagesize": 10}), "f: integration 's4': settings: read.pagesize"),
        (table(client_api_retry_secs=5), "settings.client_api_retry_secs: unknown setting"),
        ({"read": READ}, "base_url"),
    ],
)
def test_a_wrong_key_is_named(settings: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigurationError, match=said.replace(".", r"\.")):
        create(config(settings))


def test_without_an_integrations_file_the_connector_says_where_it_is_described() -> None:
    with pytest.raises(ConfigurationError, match="integrations file"):
        create(config(None))


def test_a_mapping_whose_records_differ_from_read_records_is_refused() -> None:
    mapping = {**s4_mapping(), "records": "d.results"}
    with pytest.raises(ConfigurationError, match=r"read\.records \('value'\) differ"):
        create(config(table(), mapping))


def test_a_date_and_time_pair_cannot_fill_the_since_filter() -> None:
    mapping = s4_mapping()
    del mapping["order"]
    mapping["fields"]["updated_at"] = {
        "path": "D",
        "format": "%Y%m%d",
        "time": "T",
        "time_format": "%H%M%S",
    }
    with pytest.raises(ConfigurationError, match="updated_at as one field"):
        create(config(table(), mapping))


def s4_mapping() -> dict[str, Any]:
    path = Path(__file__).parents[2] / "examples/mappings/s4-maintenance.toml"
    mapping: dict[str, Any] = tomllib.loads(path.read_text())["mapping"]
    return copy.deepcopy(mapping)


def context() -> ConnectorContext:
    return ConnectorContext(InMemoryConnectorStateStore())


async def test_a_read_only_api_refuses_outbound_at_the_first_order_to_send() -> None:
    sink = create(config(table())).sink(context())
    await sink.prepare()  # nothing wrong until there is something to send
    stamp = datetime(2024, 5, 1, tzinfo=UTC)
    delivery = await sink.deliver([WorkOrder(1, Status.PENDING, "t", stamp, stamp)])
    assert delivery.delivered == []
    assert isinstance(delivery.fatal, FatalError)
    assert "no [write] table" in str(delivery.fatal)


async def test_a_write_table_makes_a_writer_sharing_the_readers_echo_guard() -> None:
    """One guard per run: what the sink writes is what the reader knows for ours, and the
    versions the reader sees are what the sink sends. Another run (context) has its own."""
    connector = create(config(table(write={"path": "MaintenanceOrder('{number}')"})))
    run = context()
    source, sink = connector.source(run), connector.sink(run)
    assert isinstance(sink, DeclarativeSink)
    # The guard is no port of theirs: looked at here only to prove the wiring.
    assert sink._echoes is source._echoes is not None
    assert connector.source(context())._echoes is not source._echoes
    await source.close()
    await sink.close()


def test_a_read_only_api_reads_with_a_guard_of_the_versions_applied() -> None:
    """No writes of ours, but a record dated ahead of our clock is read again every pass: the
    guard remembers the version applied, so that it is not applied twice."""
    assert create(config(table())).source(context())._echoes is not None


WRITE_PATH = "MaintenanceOrder('{number}')"
VERSIONED = {"path": WRITE_PATH, "version": {"source": "record", "field": "@odata.etag"}}
FIRST_PAGE = [{"MaintenanceOrder": "1", "@odata.etag": 'W/"1"'}]


def writes(write: dict[str, Any], records: list[Any]) -> tuple[bool, str]:
    api = load_description({**table(), "write": write}, "test", {})
    [check] = writes_check(api, records)
    return check.ok, check.detail


def test_check_fails_a_write_table_without_a_version_unless_it_says_it_is_meant() -> None:
    ok, said = writes({"path": WRITE_PATH}, FIRST_PAGE)
    assert not ok and "updates go without If-Match" in said and "write.unconditional" in said
    assert writes({"path": WRITE_PATH, "unconditional": True}, FIRST_PAGE)[0]


def test_check_fails_a_version_field_the_records_do_not_hold() -> None:
    misnamed = {**VERSIONED, "version": {"source": "record", "field": "etag"}}
    ok, said = writes(misnamed, FIRST_PAGE)
    assert not ok and "'etag' is in none of the 1 records" in said
    assert writes(VERSIONED, FIRST_PAGE) == (True, "conditional (If-Match)")
    assert writes(misnamed, [])[0]  # nothing read yet: nothing to tell


def test_a_read_only_api_has_no_write_check() -> None:
    assert writes_check(load_description(table(), "test", {}), FIRST_PAGE) == []


async def test_a_run_warns_once_of_unconditional_writes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = create(config(table(write={"path": WRITE_PATH}))).sink(context())
    await sink.prepare()
    await sink.close()
    assert "outbound.unconditional_writes" in capsys.readouterr().out
