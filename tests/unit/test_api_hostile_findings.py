"""The ``api`` connector both ways, run after run, against an S/4-like ERP in memory
(``httpx.MockTransport``) and TracOS in memory: what a hostile tester found (issue 23), each
case a whole ``run`` (inbound, then outbound) as the CLI makes it, with its own echo guard
loaded from the state store as a new process would.

- an ERP edit that puts back a value we wrote earlier is a change, not our echo;
- a write the ERP normalises converges in two runs (TracOS takes the ERP's form, nothing
  bounces back);
- an ERP clock ahead of ours: a record applied and read again (the watermark stays before it)
  is not applied over a later TracOS edit, which goes out;
- an ERP clock behind ours: an ERP edit made after our write is applied, not counted stale;
- a record the mapping refused is taken again once the mapping reads it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.builders import tracos_doc
from tests.fakes import InMemoryConnectorStateStore, InMemoryWorkOrderRepository
from tests.support.maintenance_order import MAPPING, WRITE, maintenance_order_mapping, number
from tests.unit.test_http_sink import RECORD_URL, FakeErp
from tracos_sync.connectors.declarative_http.description import load_description
from tracos_sync.connectors.declarative_http.echoes import Echoes
from tracos_sync.connectors.declarative_http.reader import ApiReader
from tracos_sync.connectors.declarative_http.readings import Readings
from tracos_sync.connectors.declarative_http.refused_again import RefusedRecords
from tracos_sync.connectors.declarative_http.requester import Limits, Requester
from tracos_sync.connectors.declarative_http.sink import DeclarativeSink
from tracos_sync.connectors.declarative_http.source import ApiSource
from tracos_sync.connectors.declarative_http.state import ConnectorState
from tracos_sync.connectors.declarative_http.versions import ErpVersions
from tracos_sync.domain.dates import parse_instant
from tracos_sync.domain.ports import ConnectorContext
from tracos_sync.mapping import RecordMapping, load_mapping
from tracos_sync.pipeline import RunStats, sync_inbound, sync_outbound

BASE = "http://erp.test/odata"
SKEW = timedelta(minutes=5)
ERP_START = datetime(2026, 6, 1, tzinfo=UTC)
# The ERP's clock a second behind the moment a run asks (its stamps step 1 ms a write): what it
# stamped is not "ahead of our clock" unless the test says so.
_LAG = timedelta(seconds=1)
READ = {
    "path": "MaintenanceOrder",
    "records": "value",
    "since": {"since": "{since}"},
    "after": {"after": "{since},{number}"},
    "page_size": 50,
    "paging": {"style": "keyset", "size_param": "$top"},
}


@dataclass
class ListingErp(FakeErp):
    """``FakeErp`` (CAP's writes) that also lists its records by (last change, key) after
    ``after=time,key``, and may normalise what is written (as S/4 collapses spaces)."""

    normalise: Callable[[str], str] | None = None
    unconditional: bool = False  # takes an update without If-Match (compares nothing)
    lists: int = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/MaintenanceOrder"):
            return self._list(request)
        if self.unconditional and request.method == "PATCH" and "If-Match" not in request.headers:
            found = RECORD_URL.search(request.url.path)
            assert found is not None
            headers = {**request.headers, "If-Match": self.etag(found.group(1))}
            request = httpx.Request("PATCH", request.url, headers=headers, content=request.content)
        if self.normalise is not None and request.method in ("POST", "PATCH"):
            body = json.loads(request.content)
            body["MaintenanceOrderDesc"] = self.normalise(body["MaintenanceOrderDesc"])
            request = httpx.Request(request.method, request.url, headers=request.headers, json=body)
        return await super().__call__(request)

    def _list(self, request: httpx.Request) -> httpx.Response:
        self.lists += 1
        params = dict(request.url.params)

        def key(r: dict[str, Any]) -> tuple[datetime, str]:
            return parse_instant(r["LastChangeDateTime"]), r["MaintenanceOrder"]

        chosen = sorted(self.orders.values(), key=key)
        if "after" in params:
            since, _, after = params["after"].partition(",")
            chosen = [r for r in chosen if key(r) > (parse_instant(since), after)]
        elif "since" in params:
            chosen = [r for r in chosen if key(r)[0] > parse_instant(params["since"])]
        page = [{"@odata.etag": self.etag(r["MaintenanceOrder"]), **r} for r in chosen]
        return httpx.Response(200, json={"value": page[: int(params["$top"])]})


@dataclass
class World:
    """TracOS, the ERP, the state store, and our clock (the ERP keeps its own)."""

    erp: ListingErp
    now: datetime
    erp_ahead: timedelta  # the ERP's clock against ours
    # The description's write.version; False: unconditional PATCHes, no versions, no create.
    versions: bool = True
    mapping: RecordMapping = field(default_factory=maintenance_order_mapping)
    tracos: InMemoryWorkOrderRepository = field(default_factory=InMemoryWorkOrderRepository)
    store: InMemoryConnectorStateStore = field(default_factory=InMemoryConnectorStateStore)

    def requester(self) -> Requester:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.erp))
        return Requester(client, Limits(timeout=5, retry_budget=5, max_bytes=1 << 20), list)

    async def run(self) -> RunStats:
        """``tracos-sync run``: inbound, then outbound, a process of its own."""
        write = WRITE
        if not self.versions:  # no create either: a key we hold no version of is PATCHed
            kept = {k: v for k, v in WRITE.items() if k not in ("version", "create")}
            write = {**kept, "unconditional": True}
        api = load_description({"base_url": BASE, "read": READ, "write": write}, "test", {})
        echoes = Echoes(self.store, BASE)
        mapping = self.mapping
        seen = ErpVersions(mapping)
        clock = lambda: self.now  # noqa: E731 - the run's clock, as the test moves it
        reader = ApiReader(
            api, mapping, self.requester(), clock_skew=SKEW, clock=clock, echoes=echoes, seen=seen
        )
        state = ConnectorState(self.store, f"{BASE}/MaintenanceOrder", scope="declarative_http")
        refused = RefusedRecords(self.store, BASE, mapping)
        source = ApiSource(reader, state, echoes, dry_run=False, refused=refused)
        context = ConnectorContext(state=self.store, dry_run=False)
        sink = DeclarativeSink(api, mapping, self.requester(), echoes, context, seen=seen)
        stats = RunStats()
        await source.prepare()
        await sync_inbound(source, self.tracos, stats, 100, clock=clock, clock_skew=SKEW)
        await source.close()
        await sink.prepare()
        await sync_outbound(self.tracos, sink, stats, 100, clock=clock, clock_skew=SKEW)
        await sink.close()
        return stats

    def tick(self, elapsed: timedelta) -> None:
        """Time passes, on both clocks."""
        self.now += elapsed
        self.erp.clock = max(self.erp.clock, self.now + self.erp_ahead - _LAG)

    def tracos_edit(self, n: int, **fields: Any) -> None:
        """A TracOS user's edit, now by our clock: unsynced."""
        doc = self.tracos.by_number(n)
        assert doc is not None
        doc.update(fields, updatedAt=self.now)
        doc.pop("isSynced", None)

    def tracos_title(self, n: int) -> str:
        doc = self.tracos.by_number(n)
        assert doc is not None
        return str(doc["title"])


def counts(stats: RunStats) -> dict[str, int]:
    return {name: value for name, value in stats.counts().items() if value}


def world(erp_ahead: timedelta = timedelta(0), *, versions: bool = True, **erp: Any) -> World:
    """Our clock an hour into the ERP's day, the ERP's ``erp_ahead`` of ours; ``versions``:
    the description sends and compares the ERP's versions (else unconditional writes)."""
    now = ERP_START + timedelta(hours=1)
    listing = ListingErp(clock=now + erp_ahead - _LAG, unconditional=not versions, **erp)
    return World(listing, now, erp_ahead, versions=versions)


def put(w: World, n: int, title: str, phase: str = "0") -> None:
    """An order created in the ERP, stamped now by its clock."""
    w.erp.orders[number(n)] = {
        "MaintenanceOrder": number(n),
        "MaintenanceOrderDesc": title,
        "MaintenanceProcessingPhase": phase,
        "IsMarkedForDeletion": False,
        "CreationDate": "2026-05-01",
        "CreationTime": "08:00:00",
        "LastChangeDateTime": w.erp.stamp(),
    }


async def created(w: World, n: int, title: str) -> str:
    """A TracOS order, created in the ERP and read back (our echo): its ERP key."""
    w.tracos.insert_raw(tracos_doc(n, title=title, updatedAt=w.now))
    assert counts(await w.run()) == {"exported": 1}
    # Our create read back: not applied, counted as our echo.
    assert counts(await w.run()) == {"files": 1, "echoes": 1}
    return number(n)


async def test_an_erp_edit_that_puts_back_what_we_wrote_earlier_is_applied() -> None:
    w = world()
    key = await created(w, 500, "Pump seal")
    w.tick(timedelta(minutes=1))
    w.tracos_edit(500, status="completed")
    assert counts(await w.run()) == {"exported": 1}
    assert w.erp.orders[key]["MaintenanceProcessingPhase"] == "5"
    # An ERP user re-opens it: the phase of our first write, a version of its own.
    w.erp.edit(key, MaintenanceProcessingPhase="0")
    w.tick(timedelta(minutes=1))
    assert counts(await w.run()) == {"files": 1, "updated": 1}
    doc = w.tracos.by_number(500)
    assert doc is not None and doc["status"] == "pending" and doc["isSynced"] is True


async def test_a_write_the_erp_normalises_converges_in_two_runs() -> None:
    w = world(normalise=lambda text: " ".join(text.split())[:40])
    w.tracos.insert_raw(tracos_doc(850, title="Replace  seal;   then check the bearing housing"))
    assert counts(await w.run()) == {"exported": 1}
    # Our write read back as the ERP keeps it: a change, TracOS takes the ERP's form.
    assert counts(await w.run()) == {"files": 1, "updated": 1}
    assert w.tracos_title(850) == w.erp.orders[number(850)]["MaintenanceOrderDesc"]
    assert w.tracos_title(850) == "Replace seal; then check the bearing hou"
    # Nothing bounces: no write back, nothing read as new.
    posts = len(w.erp.log)
    assert counts(await w.run()) == {}
    assert len(w.erp.log) == posts


async def test_with_the_erp_clock_ahead_a_record_read_again_is_not_applied_over_a_tracos_edit() -> (
    None
):
    w = world(erp_ahead=timedelta(seconds=60))
    put(w, 800, "Compressor")  # dated a minute ahead of our clock
    assert counts(await w.run()) == {"files": 1, "inserted": 1}
    w.tick(timedelta(seconds=2))
    w.tracos_edit(800, status="completed")
    # Read again (the watermark stays before it): the version applied already, counted stale;
    # the TracOS edit goes out, conditional on it.
    shown = w.erp.etag(number(800))
    assert counts(await w.run()) == {"files": 1, "stale": 1, "exported": 1}
    assert w.erp.log[-1] == ("PATCH", number(800), shown)
    assert w.erp.orders[number(800)]["MaintenanceProcessingPhase"] == "5"
    doc = w.tracos.by_number(800)
    assert doc is not None and doc["status"] == "completed" and doc["isSynced"] is True
    # Our write read back, again and again until our clock catches up: ours every time.
    assert counts(await w.run()) == {"files": 1, "echoes": 1}
    w.tick(timedelta(minutes=2))
    assert counts(await w.run()) == {"files": 1, "echoes": 1}
    assert counts(await w.run()) == {}


@pytest.mark.parametrize("versions", [True, False], ids=["versions", "no versions"])
async def test_a_record_read_again_once_our_clock_passed_it_is_not_applied_over_a_tracos_edit(
    versions: bool,
) -> None:
    """The ERP's clock a minute ahead; a TracOS edit made while the record applied was still
    ahead of our clock, and no run until our clock passed it: read again (the watermark is still
    before it), it is what was applied, counted stale, and the TracOS edit goes out. Without
    versions the guard compares its content: hashed when applied (a record to remember) and
    when read again (a key remembered, though no write of ours is)."""
    w = world(erp_ahead=timedelta(seconds=60), versions=versions)
    put(w, 830, "Boiler")  # dated a minute ahead of our clock
    assert counts(await w.run()) == {"files": 1, "inserted": 1}
    w.tick(timedelta(seconds=2))
    w.tracos_edit(830, status="completed")
    w.tick(timedelta(minutes=2))  # our clock is past the ERP's stamp now
    assert counts(await w.run()) == {"files": 1, "stale": 1, "exported": 1}
    doc = w.tracos.by_number(830)
    assert doc is not None and doc["status"] == "completed" and doc["isSynced"] is True
    assert w.erp.orders[number(830)]["MaintenanceProcessingPhase"] == "5"


async def test_with_the_erp_clock_behind_an_erp_edit_after_our_write_is_applied() -> None:
    w = world(erp_ahead=-timedelta(seconds=60))
    key = await created(w, 820, "Chiller")
    w.tick(timedelta(minutes=1))
    w.tracos_edit(820, status="completed")
    assert counts(await w.run()) == {"exported": 1}
    # An ERP user retitles it 5 s after our write; the ERP's clock stamps it before our edit.
    w.tick(timedelta(seconds=5))
    w.erp.edit(key, MaintenanceOrderDesc="Chiller - replace filter too")
    assert parse_instant(w.erp.orders[key]["LastChangeDateTime"]) < w.now - timedelta(seconds=5)
    assert counts(await w.run()) == {"files": 1, "updated": 1}
    assert w.tracos_title(820) == "Chiller - replace filter too"
    doc = w.tracos.by_number(820)
    assert doc is not None and doc["status"] == "completed" and doc["isSynced"] is True
    assert counts(await w.run()) == {}


async def test_with_the_erp_clock_behind_a_tracos_edit_after_our_write_decides_by_the_stamps() -> (
    None
):
    """TracOS changed again after our write: the ERP's change is raised to just after the copy
    we wrote, not past the TracOS edit; the later stamp wins, here TracOS's."""
    w = world(erp_ahead=-timedelta(seconds=60))
    key = await created(w, 821, "Chiller")
    w.tick(timedelta(minutes=1))
    w.tracos_edit(821, title="Chiller (TracOS)")
    assert counts(await w.run()) == {"exported": 1}
    w.tick(timedelta(seconds=5))
    w.erp.edit(key, MaintenanceOrderDesc="Chiller (ERP)")
    w.tick(timedelta(seconds=5))
    w.tracos_edit(821, title="Chiller (TracOS, later)")
    stats = await w.run()
    assert counts(stats) == {"files": 1, "stale": 1, "exported": 1}
    assert w.erp.orders[key]["MaintenanceOrderDesc"] == "Chiller (TracOS, later)"


async def test_a_record_the_mapping_refused_is_taken_again_once_the_mapping_reads_it() -> None:
    w = world()
    put(w, 101, "order 101")
    put(w, 102, "order 102", phase="7")  # a phase the customer started using
    put(w, 103, "order 103")
    assert counts(await w.run()) == {"files": 1, "inserted": 2, "rejected": 1}
    assert len(w.store.letters) == 1
    # The watermark is past it; the mapping still refuses it: nothing to say again.
    assert counts(await w.run()) == {}
    values = {**MAPPING["status"]["values"], "7": "completed"}
    status = {**MAPPING["status"], "values": values, "write": {"completed": "5"}}
    fixed = {**MAPPING, "status": status}
    w.mapping = load_mapping(fixed, where="the fixed mapping")
    assert counts(await w.run()) == {"files": 1, "inserted": 1}
    doc = w.tracos.by_number(102)
    assert doc is not None and doc["status"] == "completed" and doc["isSynced"] is True
    assert counts(await w.run()) == {}


def test_records_read_without_the_version_field_are_said_once_a_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    w = world()
    put(w, 910, "Fan")
    put(w, 911, "Fan 2")
    readings = Readings(Echoes(w.store, BASE), w.mapping, "etag")  # the records say @odata.etag
    for item in w.erp.orders.values():
        assert readings.of(w.mapping.decode(item), item).applied_as.startswith("#")
    assert capsys.readouterr().out.count("inbound.version_missing") == 1
