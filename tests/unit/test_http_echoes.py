"""The echo guard (``declarative_http/echoes.py``): our own write, stamped by the ERP, is known
for ours when a read brings it back; a client edit made right after it is not; both of two writes
of ours are; and what we wrote survives a restart (kept through the connector state store)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.fakes import InMemoryConnectorStateStore
from tests.support.maintenance_order import maintenance_order_mapping
from tracos_sync.connectors.declarative_http.echoes import Echoes, content_hash
from tracos_sync.domain.model import Status, WorkOrder

API = "http://erp.test/odata"
KEY = "000004000123"
MAPPING = maintenance_order_mapping()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def order(title: str, updated: datetime = T0) -> WorkOrder:
    return WorkOrder(4_000_123, Status.PENDING, title, T0, updated)


def digest(title: str, updated: datetime = T0) -> str:
    return content_hash(MAPPING.encode, order(title, updated))


async def guard(store: InMemoryConnectorStateStore | None = None) -> Echoes:
    echoes = Echoes(store or InMemoryConnectorStateStore(), API)
    await echoes.load()
    return echoes


def test_the_hash_leaves_out_the_last_update_the_erp_stamps_its_own() -> None:
    later = datetime(2026, 3, 2, tzinfo=UTC)
    assert digest("pump") == digest("pump", later)
    assert digest("pump") != digest("valve")


async def test_our_write_read_back_with_the_version_it_got_is_our_echo() -> None:
    echoes = await guard()
    echoes.wrote(KEY, digest("pump"), 'W/"v1"')
    # The ERP may change what we wrote (CAP stamps its own creation date): the version says
    # nothing changed since our write.
    assert echoes.is_echo(KEY, digest("pump, as the ERP keeps it"), 'W/"v1"')
    # Read again (a pass from the same watermark): still ours.
    assert echoes.is_echo(KEY, digest("pump"), 'W/"v1"')


async def test_our_write_read_back_as_we_wrote_it_is_our_echo_whatever_its_version() -> None:
    echoes = await guard()
    echoes.wrote(KEY, digest("pump"), None)  # the ERP answered no version
    assert echoes.is_echo(KEY, digest("pump"), 'W/"v9"')


async def test_a_client_edit_right_after_our_write_is_a_change_and_its_version_is_sent_next() -> (
    None
):
    echoes = await guard()
    echoes.wrote(KEY, digest("pump"), 'W/"v1"')
    assert echoes.version(KEY) == 'W/"v1"'
    # Edited in the ERP before our next read: a new version, another content.
    assert not echoes.is_echo(KEY, digest("pump, fixed by the client"), 'W/"v2"')
    assert echoes.version(KEY) == 'W/"v2"'
    # What we wrote is forgotten: the ERP has moved past it; read again, it is still a change.
    assert not echoes.is_echo(KEY, digest("pump"), 'W/"v1"')


async def test_either_of_two_writes_of_ours_is_ours_when_read() -> None:
    echoes = await guard()
    echoes.wrote(KEY, digest("first"), 'W/"v1"')
    echoes.wrote(KEY, digest("second"), 'W/"v2"')
    assert echoes.version(KEY) == 'W/"v2"'
    # A read that began before our second write shows the first.
    assert echoes.is_echo(KEY, digest("first"), 'W/"v1"')
    assert echoes.is_echo(KEY, digest("second"), 'W/"v2"')


async def test_what_we_wrote_survives_a_restart_between_the_write_and_the_read() -> None:
    store = InMemoryConnectorStateStore()
    before = await guard(store)
    before.wrote(KEY, digest("pump"), 'W/"v1"')
    await before.save()
    after = await guard(store)  # a new process
    assert after.version(KEY) == 'W/"v1"'
    assert after.is_echo(KEY, digest("pump"), 'W/"v1"')
    assert not after.is_echo("000004000124", digest("pump"), 'W/"v1"')


async def test_a_change_read_is_saved_so_that_a_restart_does_not_call_it_ours() -> None:
    store = InMemoryConnectorStateStore()
    before = await guard(store)
    before.wrote(KEY, digest("pump"), 'W/"v1"')
    await before.save()
    reader = await guard(store)
    assert not reader.is_echo(KEY, digest("edited"), 'W/"v2"')
    await reader.save()
    assert (await guard(store)).version(KEY) is None


async def test_the_oldest_write_is_dropped_beyond_the_limit() -> None:
    store = InMemoryConnectorStateStore()
    echoes = Echoes(store, API, max_entries=2)
    await echoes.load()
    for n in range(3):
        echoes.wrote(f"k{n}", digest("pump"), f"v{n}")
    await echoes.save()
    again = await guard(store)
    assert [again.version(f"k{n}") for n in range(3)] == [None, "v1", "v2"]


async def test_a_superseded_write_forgets_the_version() -> None:
    echoes = await guard()
    echoes.wrote(KEY, digest("pump"), 'W/"v1"')
    echoes.superseded(KEY)
    assert echoes.version(KEY) is None


async def test_only_a_key_we_wrote_to_is_worth_comparing() -> None:
    """The reader hashes a record only where we wrote (``wrote_to``); a change read there
    forgets the write."""
    echoes = await guard()
    assert not echoes.wrote_to(KEY)
    echoes.wrote(KEY, digest("pump"), "v1")
    assert echoes.wrote_to(KEY) and not echoes.wrote_to("000004000124")
    assert not echoes.is_echo(KEY, digest("valve"), "v2")
    assert not echoes.wrote_to(KEY)
