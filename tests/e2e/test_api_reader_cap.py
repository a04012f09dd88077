"""Reading SAP's own OData v4 server (CAP) with the ``api`` connector, timed against a bare httpx
loop sending the same requests to the same server (issue 23: inbound at most 1.3x the loop).

The connector reads as the CLI builds it from the example (examples/integrations-api.toml: keyset
pages of 100, records decoded by the S/4 mapping, each asked of the echo guard, since the
example writes back); the loop asks the same URLs (built with the description's own query
functions, pure string work) and takes each page's JSON, nothing more. A whole ``tracos-sync
run`` reading the same orders into TracOS is timed too; its ratio is printed, not checked: it
also starts a process and writes every order to MongoDB, which the loop does not.

``make bench-http`` runs this with ``BENCH_HTTP=1``: 5,000 orders, fails over 1.3x. ``make
test`` reads 500 and checks what was read, not how fast (a timing on a shared machine is no
test)."""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.conftest import Env
from tests.e2e.test_api_connector_cap import (
    COLLECTION,
    EXAMPLE,
    MAPPING,
    counts,
    create_orders,
    integrations,
    orders,
    run,
)
from tests.fakes import InMemoryConnectorStateStore
from tests.support.cap import CapServer
from tracos_sync.connectors.declarative_http.connector import create
from tracos_sync.connectors.declarative_http.description import ApiDescription
from tracos_sync.connectors.declarative_http.incremental import changes_after, changes_since
from tracos_sync.connectors.declarative_http.query import with_query
from tracos_sync.connectors.declarative_http.source import ApiSource
from tracos_sync.domain.ports import ConnectorConfig, ConnectorContext
from tracos_sync.integrations import read_mapping_file

BENCH = os.environ.get("BENCH_HTTP") == "1"
# BENCH_HTTP_ORDERS: fewer, to check that the benchmark runs (its figures are for 5,000; the
# writer's take 500 or a multiple).
MANY = int(os.environ.get("BENCH_HTTP_ORDERS", "5000")) if BENCH else 500
ROUNDS = 5 if BENCH else 1  # each side, taking turns
RATIO = 1.3  # issue 23: inbound through the connector at most 1.3x a bare httpx loop


def example_source(cap: CapServer) -> tuple[ApiSource, ApiDescription]:
    """The example's ``api`` connector, its source as a run opens it (an in-memory state)."""
    settings = tomllib.loads(EXAMPLE.read_text())["integration"][0]["settings"]
    settings = {**settings, "base_url": cap.url}
    mapping = read_mapping_file(MAPPING, str(MAPPING))
    connector = create(ConnectorConfig(settings, mapping, None, "example"))
    context = ConnectorContext(state=InMemoryConnectorStateStore())
    return connector.source(context), connector.api


async def connector_pass(source: ApiSource) -> int:
    """One pass from the start (nothing is completed: the watermark stays), every record read."""
    read = 0
    async for units in source.batches(1_000):
        read += sum(len(unit.records) + unit.echoes for unit in units)
    return read


async def bare_pass(http: httpx.AsyncClient, api: ApiDescription) -> int:
    """The same keyset requests by hand: the first page, then each after the last record's
    (time, key), until an empty page (as the connector ends a pass: never on a short one)."""
    size = [("$top", str(api.read.page_size))]
    url = with_query(changes_since(api, None), size)
    read = 0
    while True:
        response = await http.get(url, headers={"Accept": "application/json"})
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["value"]
        if not records:
            return read
        read += len(records)
        last = records[-1]
        after = changes_after(api, last["LastChangeDateTime"], last["MaintenanceOrder"])
        url = with_query(after, size)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


async def test_orders_are_read_and_timed_against_a_bare_httpx_loop(
    env: Env, cap: CapServer, mongo: MongoClient[Any], http: httpx.AsyncClient
) -> None:
    """Both warmed up first (Node compiles its hot paths in the first requests); then they
    take turns, each going first in every other round, so that a slow spell of the shared
    machine costs both alike."""
    create_orders(cap, range(1, MANY + 1))
    source, api = example_source(cap)
    await source.prepare()
    turns: list[tuple[str, Callable[[], Awaitable[int]]]] = [
        ("bare", lambda: bare_pass(http, api)),
        ("connector", lambda: connector_pass(source)),
    ]
    figures = dict.fromkeys(("bare", "connector"), 0.0)
    try:
        for _, warm in turns:
            assert await warm() == MANY
        for round_ in range(ROUNDS):
            for who, one_pass in turns if round_ % 2 else reversed(turns):
                began = time.perf_counter()
                read = await one_pass()
                figures[who] += time.perf_counter() - began
                assert read == MANY, who
    finally:
        await source.close()
    bare, connector = (figures[who] / ROUNDS for who in ("bare", "connector"))

    began = time.perf_counter()
    whole = counts(run(env, cap, integrations(env), "run", timeout=600))
    cli = time.perf_counter() - began
    assert (whole["inserted"], whole["rejected"], whole["exported"]) == (MANY, 0, 0), whole
    assert len(orders(env, mongo)) == MANY
    assert mongo[env.database][COLLECTION].count_documents({"isSynced": True}) == MANY

    print(
        f"{MANY} orders read from CAP: bare httpx loop {bare:.3f} s, api connector "
        f"{connector:.3f} s ({connector / bare:.2f}x), whole CLI run into TracOS {cli:.2f} s "
        f"({cli / bare:.1f}x; a process started and every order written to MongoDB)"
    )
    if BENCH:
        assert connector <= RATIO * bare, figures
