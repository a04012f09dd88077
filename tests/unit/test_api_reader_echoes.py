"""The reader with the echo guard (a description with ``[write]``): our own writes read back are
neither applied nor anything but a move of the watermark; an ERP change made after our write is
handed on, and the guard forgets our write to that key; what the guard learnt is stored once the
pages are applied. Against a scripted API (``httpx.MockTransport``), no server."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fakes import InMemoryConnectorStateStore
from tests.unit.test_api_reader import (
    FIRST,
    KEYSET,
    NOW,
    SKEW,
    ScriptedApi,
    at,
    key,
    mark,
    numbers,
    record,
)
from tracos_sync.connectors.declarative_http.description import load_description
from tracos_sync.connectors.declarative_http.echoes import Echoes, content_hash
from tracos_sync.connectors.declarative_http.reader import ApiReader
from tracos_sync.connectors.declarative_http.requester import Limits, Requester
from tracos_sync.connectors.declarative_http.source import ApiSource
from tracos_sync.connectors.declarative_http.state import ConnectorState
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import builtin_mapping

MAPPING = builtin_mapping()
URL = "http://erp.test/api"


def reader(api: ScriptedApi, echoes: Echoes) -> ApiReader:
    description = load_description(
        {
            "base_url": URL,
            "read": {
                "path": "workorders",
                "records": "items",
                "since": {"updatedSince": "{since}"},
                "after": {"after": "{since},{number}"},
                "page_size": 2,
                "paging": KEYSET,
            },
            "write": {"path": "workorders/{number}"},
        },
        "test",
        {},
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(api.handle))
    requester = Requester(client, Limits(timeout=5, retry_budget=0, max_bytes=1 << 20), list)
    return ApiReader(
        description, MAPPING, requester, clock_skew=SKEW, clock=lambda: NOW, echoes=echoes
    )


def wrote(echoes: Echoes, item: dict[str, Any], version: str) -> None:
    """What the sink remembers of a write of ``item`` (as the mapping reads it back)."""
    echoes.wrote(str(item["orderNo"]), content_hash(MAPPING.encode, MAPPING.decode(item)), version)


async def one_pass(source: ApiReader) -> list[InboundUnit]:
    return [unit async for unit in source.units(FIRST)]


FIVE = [record(n, at(n)) for n in range(1, 6)]


async def test_our_echoes_are_not_applied_and_move_only_the_watermark() -> None:
    echoes = Echoes(InMemoryConnectorStateStore(), URL)
    for item in FIVE[2:4]:  # orders 3 and 4: the second page, ours alone
        wrote(echoes, item, f"v{item['orderNo']}")
    # Order 5: we wrote it, then the ERP changed it (another title).
    wrote(echoes, record(5, at(5), summary="ours"), "v5")
    source = reader(ScriptedApi(list(FIVE)), echoes)
    units = await one_pass(source)
    assert numbers(units) == [1, 2, 5]
    assert source.echoes == 2
    # The page of echoes alone is handed on, empty, for its watermark.
    assert [mark(u) for u in units] == [key(2, 2), key(4, 4), key(5, 5)]
    assert units[1].records == []
    # The change forgot our write to 5: its version is no longer ours to send.
    assert echoes.version("5") is None and echoes.version("3") == "v3"


async def test_what_the_guard_learnt_is_stored_once_the_pages_are_applied() -> None:
    store = InMemoryConnectorStateStore()
    echoes = Echoes(store, URL)
    wrote(echoes, FIVE[2], "v3")
    wrote(echoes, record(5, at(5), summary="ours"), "v5")
    await echoes.save()
    state = ConnectorState(store, f"{URL}/workorders", scope="declarative_http")
    guard = Echoes(store, URL)  # the run's own, loaded by the source
    source = ApiSource(reader(ScriptedApi(list(FIVE)), guard), state, guard, dry_run=False)
    await source.prepare()
    handed: list[int] = []
    async for batch in source.batches(100):
        handed += numbers(batch)
        await source.complete(batch)
    await source.close()
    assert handed == [1, 2, 4, 5]  # 3 known for ours from the state the source loaded
    restarted = Echoes(store, URL)
    await restarted.load()
    assert restarted.version("3") == "v3"
    assert restarted.version("5") is None  # the ERP's change after ours, stored as such
