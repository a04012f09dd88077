"""One contract every client connector passes: the JSON folder and the HTTP API alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
from pydantic import HttpUrl

from tests.builders import client_record, read_json, write_json
from tests.fakes import InMemoryConnectorStateStore
from tracos_sync.connectors.client_erp.files import FolderConnector, FolderSettings
from tracos_sync.connectors.client_erp_http.fake_server import FakeErpState, fake_erp
from tracos_sync.connectors.declarative_http.present_api import (
    PresentApiConnector,
    description_of,
)
from tracos_sync.connectors.declarative_http.present_settings import HttpSettings
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import ClientConnector, ConnectorContext, InboundUnit
from tracos_sync.mapping import BUILTIN, RecordMapping, builtin_mapping, load_mapping


class Harness(Protocol):
    """The client side of a connector, as the tests see it, and the state store the bootstrap
    would hand it."""

    connector: ClientConnector
    state: InMemoryConnectorStateStore
    settings: Any  # what the connector was built with: another mapping builds another

    def context(self, dry_run: bool = False) -> ConnectorContext: ...

    def with_mapping(self, mapping: RecordMapping) -> ClientConnector: ...

    def put(self, records: list[dict[str, Any]]) -> None: ...

    def delivered(self) -> dict[int, dict[str, Any]]: ...

    def quarantined(self) -> int: ...


class StateHarness:
    def __init__(self) -> None:
        self.state = InMemoryConnectorStateStore()

    def context(self, dry_run: bool = False) -> ConnectorContext:
        return ConnectorContext(self.state, dry_run)


class FilesHarness(StateHarness):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.settings = FolderSettings(data_inbound_dir=root / "in", data_outbound_dir=root / "out")
        self.connector = self.with_mapping(builtin_mapping())
        self._n = 0

    def with_mapping(self, mapping: RecordMapping) -> ClientConnector:
        return FolderConnector(self.settings, mapping)

    def put(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self._n += 1
            write_json(self.settings.data_inbound_dir / f"f{self._n}.json", record)

    def delivered(self) -> dict[int, dict[str, Any]]:
        out = self.settings.data_outbound_dir
        return {int(p.stem): read_json(p) for p in out.glob("*.json")} if out.exists() else {}

    def quarantined(self) -> int:
        rejected = self.settings.rejected_dir
        return len(list(rejected.glob("*.error.json"))) if rejected.exists() else 0


class HttpHarness(StateHarness):
    def __init__(self, url: str, erp: FakeErpState):
        super().__init__()
        self.erp = erp
        self.settings = HttpSettings(
            client_api_url=HttpUrl(url), client_api_page_size=3, client_api_retry_seconds=5
        )
        self.connector = self.with_mapping(builtin_mapping())

    def with_mapping(self, mapping: RecordMapping) -> ClientConnector:
        return PresentApiConnector(description_of(self.settings), self.settings, mapping)

    def put(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.erp.put(record)

    def delivered(self) -> dict[int, dict[str, Any]]:
        return {int(r["orderNo"]): r for r in self.erp.received}

    def quarantined(self) -> int:
        return len(self.state.letters)


@pytest.fixture(params=["files", "http"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "files":
        yield FilesHarness(tmp_path)
        return
    with fake_erp() as (url, erp):
        yield HttpHarness(url, erp)


async def offered(
    harness: Harness, dry_run: bool = False, complete: bool = True
) -> list[InboundUnit]:
    source = harness.connector.source(harness.context(dry_run))
    await source.prepare()
    units: list[InboundUnit] = []
    try:
        async for batch in source.batches(100):
            units += batch
            if complete:
                await source.complete(batch)
            else:
                await source.release(batch)
    finally:
        await source.close()
    return units


def numbers(units: list[InboundUnit]) -> list[int]:
    return sorted(r.number for u in units for r in u.records)


def order(number: int, title: str = "t") -> WorkOrder:
    stamp = datetime(2024, 5, 1, 12, tzinfo=UTC)
    return WorkOrder(number, Status.ON_HOLD, title, stamp, stamp)


async def test_inputs_are_offered_once_then_not_again(harness: Harness) -> None:
    harness.put(
        [client_record(n, lastUpdateDate=f"2024-05-0{n}T00:00:00Z") for n in (1, 2, 3)]
        + [client_record(4, lastUpdateDate="2024-05-03T00:00:00Z")]
    )
    first = await offered(harness)
    assert numbers(first) == [1, 2, 3, 4]
    assert all(not u.problems for u in first)
    assert numbers(await offered(harness)) == []


async def test_released_inputs_are_offered_again(harness: Harness) -> None:
    harness.put([client_record(7)])
    assert numbers(await offered(harness, complete=False)) == [7]
    assert numbers(await offered(harness)) == [7]


async def test_bad_records_are_located_and_quarantined(harness: Harness) -> None:
    harness.put([client_record(1), client_record(2, orderNo="two"), client_record(3, isDone=True)])
    units = await offered(harness)
    assert numbers(units) == [1]
    problems = [p for u in units for p in u.problems]
    assert {p.path for p in problems} >= {"$.orderNo", "$"}
    assert all(p.record is not None for p in problems)
    assert sum(u.rejected_records for u in units) == 2
    assert harness.quarantined() == 2
    assert numbers(await offered(harness)) == []


async def test_dry_run_offers_but_changes_nothing(harness: Harness) -> None:
    harness.put([client_record(5)])
    assert numbers(await offered(harness, dry_run=True)) == [5]
    assert numbers(await offered(harness)) == [5], "still there after the dry run"
    sink = harness.connector.sink(harness.context(dry_run=True))
    await sink.prepare()
    delivery = await sink.deliver([order(9)])
    await sink.close()
    assert delivery.delivered == [9]
    assert harness.delivered() == {}


async def test_delivery_is_durable_complete_and_idempotent(harness: Harness) -> None:
    sink = harness.connector.sink(harness.context())
    await sink.prepare()
    try:
        first = await sink.deliver([order(1), order(2)])
        again = await sink.deliver([order(2, "newer")])
    finally:
        await sink.close()
    assert sorted(first.delivered) == [1, 2] and again.delivered == [2]
    assert first.fatal is None and not first.refused
    got = harness.delivered()
    assert set(got) == {1, 2}
    assert got[2]["summary"] == "newer"
    assert got[1] | {"summary": "t"} == {
        "orderNo": 1,
        "isCanceled": False,
        "isDone": False,
        "isOnHold": True,
        "isPending": False,
        "isActive": False,
        "isDeleted": False,
        "isSynced": True,
        "summary": "t",
        "creationDate": "2024-05-01T12:00:00.000Z",
        "lastUpdateDate": "2024-05-01T12:00:00.000Z",
        "deletedDate": None,
    }


@pytest.mark.parametrize("dry_run", [False, True])
async def test_an_order_the_mapping_cannot_write_is_refused_alone(
    harness: Harness, dry_run: bool
) -> None:
    # São Paulo is behind UTC: 0001-01-01T00:00Z is a local time in year 0.
    described = {**BUILTIN, "date_format": "%d/%m/%Y %H:%M", "timezone": "America/Sao_Paulo"}
    mapping = load_mapping(described, where="test")
    connector = harness.with_mapping(mapping)
    poison = WorkOrder(2, Status.PENDING, "t", datetime(1, 1, 1, tzinfo=UTC), order(2).updated_at)
    sink = connector.sink(harness.context(dry_run))
    await sink.prepare()
    try:
        delivery = await sink.deliver([order(1), poison, order(3)])
    finally:
        await sink.close()
    assert sorted(delivery.delivered) == [1, 3] and delivery.fatal is None
    assert [(p.record, p.path, p.reason) for p in delivery.refused] == [
        (
            2,
            "$.creationDate",
            "createdAt 0001-01-01T00:00:00.000Z cannot be written in America/Sao_Paulo as "
            "%d/%m/%Y %H:%M (its local time is outside years 1-9999)",
        )
    ]
    assert set(harness.delivered()) == (set() if dry_run else {1, 3})


async def test_health_reports_checks(harness: Harness) -> None:
    checks = await harness.connector.health(harness.context())
    assert checks and all(c.ok for c in checks), checks


async def test_a_dry_run_keeps_no_state(harness: Harness) -> None:
    harness.put([client_record(1), client_record(2, orderNo="two")])
    units = await offered(harness, dry_run=True)
    assert numbers(units) == [1]
    assert harness.state.states == {} and harness.state.letters == {}
    assert harness.quarantined() == 0


def test_secrets_are_declared(harness: Harness) -> None:
    """What no output may show; the folder connector has none."""
    secrets = harness.connector.secrets()
    assert isinstance(secrets, list) and all(isinstance(s, str) for s in secrets)


def test_what_it_owns_is_declared(harness: Harness) -> None:
    """What no other integration may share: every folder it writes, or the API it talks to."""
    owned = harness.connector.owned()
    assert owned.folders or owned.endpoints
    if isinstance(harness, FilesHarness):
        assert set(owned.folders.values()) >= {
            harness.settings.data_inbound_dir,
            harness.settings.data_outbound_dir,
        }
    for endpoint in owned.endpoints.values():
        assert "@" not in endpoint and "?" not in endpoint  # no credentials, no query
