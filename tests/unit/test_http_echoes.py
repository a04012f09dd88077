"""The echo guard (``declarative_http/echoes.py``): our own write, stamped by the ERP, is known
for ours when a read brings it back; a client edit made right after it is not; both of two writes
of ours are; and what we wrote survives a restart (kept through the connector state store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


async def test_our_write_read_back_with_the_version_it_got_and_what_we_wrote_is_our_echo() -> None:
    echoes = await guard()
    echoes.wrote(KEY, digest("pump"), 'W/"v1"', T0)
    assert echoes.is_echo(KEY, digest("pump"), 'W/"v1"')
    # Read again (a pass from the same watermark): still ours.
    assert echoes.is_echo(KEY, digest("pump"), 'W/"v1"')


async def test_our_write_as_the_erp_changed_it_is_a_change_after_our_write() -> None:
    # The ERP normalised what we wrote (its answer's version, another content): TracOS takes
    # the ERP's form, and the change is known to be later than the copy we wrote.
    echoes = await guard()
    echoes.wrote(KEY, digest("Replace  seal"), 'W/"v1"', T0)
    reading = echoes.read(KEY, digest("Replace seal"), 'W/"v1"')
    assert not reading.echo and reading.after_our_write == T0


async def test_without_versions_only_what_our_latest_write_sent_is_our_echo() -> None:
    echoes = await guard()
    echoes.wrote(KEY, digest("pump"), None, T0)  # the ERP answered no version
    assert echoes.is_echo(KEY, digest("pump"), None)
    echoes.wrote(KEY, digest("valve"), None, T0)
    # An ERP user puts back what our first write sent: a change, not our echo.
    assert not echoes.is_echo(KEY, digest("pump"), None)


async def test_an_erp_edit_that_puts_back_what_we_wrote_earlier_is_a_change() -> None:
    echoes = await guard()
    echoes.wrote(KEY, digest("pending"), 'W/"v1"', T0)
    echoes.wrote(KEY, digest("completed"), 'W/"v2"', T0)
    # An ERP user re-opens it: the content of our first write, a version of its own.
    reading = echoes.read(KEY, digest("pending"), 'W/"v3"')
    assert not reading.echo and reading.after_our_write == T0
    assert echoes.version(KEY) == 'W/"v3"'


async def test_a_client_edit_right_after_our_write_is_a_change_and_its_version_is_sent_next() -> (
    None
):
    echoes = await guard()
    echoes.wrote(KEY, digest("pump"), 'W/"v1"', T0)
    assert echoes.version(KEY) == 'W/"v1"'
    # Edited in the ERP before our next read: a new version, another content.
    assert not echoes.is_echo(KEY, digest("pump, fixed by the client"), 'W/"v2"')
    assert echoes.version(KEY) == 'W/"v2"'
    # What we wrote is forgotten: the ERP has moved past it; read again, it is still a change.
    assert not echoes.is_echo(KEY, digest("pump"), 'W/"v1"')


async def test_either_of_two_writes_of_ours_read_with_its_own_version_is_ours() -> None:
    echoes = await guard()
    echoes.wrote(KEY, digest("first"), 'W/"v1"', T0)
    echoes.wrote(KEY, digest("second"), 'W/"v2"', T0)
    assert echoes.version(KEY) == 'W/"v2"'
    # A read that began before our second write shows the first.
    assert echoes.is_echo(KEY, digest("first"), 'W/"v1"')
    assert echoes.is_echo(KEY, digest("second"), 'W/"v2"')
    # But not one write's content with the other's version.
    assert not echoes.is_echo(KEY, digest("first"), 'W/"v2"')


async def test_what_we_wrote_survives_a_restart_between_the_write_and_the_read() -> None:
    store = InMemoryConnectorStateStore()
    before = await guard(store)
    before.wrote(KEY, digest("pump"), 'W/"v1"', T0)
    await before.save()
    after = await guard(store)  # a new process
    assert after.version(KEY) == 'W/"v1"'
    assert after.is_echo(KEY, digest("pump"), 'W/"v1"')
    assert not after.is_echo("000004000124", digest("pump"), 'W/"v1"')


async def test_a_change_read_is_saved_so_that_a_restart_does_not_call_it_ours() -> None:
    store = InMemoryConnectorStateStore()
    before = await guard(store)
    before.wrote(KEY, digest("pump"), 'W/"v1"', T0)
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
        echoes.wrote(f"k{n}", digest("pump"), f"v{n}", T0)
    await echoes.save()
    again = await guard(store)
    assert [again.version(f"k{n}") for n in range(3)] == [None, "v1", "v2"]


async def test_a_superseded_write_forgets_the_version() -> None:
    echoes = await guard()
    echoes.wrote(KEY, digest("pump"), 'W/"v1"', T0)
    echoes.superseded(KEY)
    assert echoes.version(KEY) is None


async def test_a_version_applied_and_read_again_is_known_until_the_watermark_passes_it() -> None:
    store = InMemoryConnectorStateStore()
    echoes = await guard(store)
    first = echoes.read(KEY, digest("erp"), 'W/"v1"')
    assert not first.echo and not first.read_again and first.applied_as == 'W/"v1"'
    echoes.applied(KEY, first.applied_as, T0)
    await echoes.save()
    again = await guard(store)  # the next run
    assert again.read(KEY, digest("erp"), 'W/"v1"').read_again
    assert not again.read(KEY, digest("erp, edited"), 'W/"v2"').read_again
    again.passed(T0 + timedelta(seconds=1))
    assert not again.read(KEY, digest("erp"), 'W/"v1"').read_again


async def test_without_versions_the_content_applied_is_what_is_known_read_again() -> None:
    echoes = await guard()
    echoes.applied(KEY, echoes.read(KEY, digest("erp"), None).applied_as, T0)
    assert echoes.read(KEY, digest("erp"), None).read_again
    assert not echoes.read(KEY, digest("erp, edited"), None).read_again


async def test_our_write_forgets_the_version_applied_before() -> None:
    echoes = await guard()
    echoes.applied(KEY, echoes.read(KEY, digest("erp"), None).applied_as, T0)
    echoes.wrote(KEY, digest("ours"), None, T0)
    # The ERP user puts back what was applied before our write: a change.
    reading = echoes.read(KEY, digest("erp"), None)
    assert not reading.read_again and not reading.echo


async def test_only_a_key_we_wrote_to_is_worth_comparing() -> None:
    """The reader hashes a record only where we wrote (``wrote_to``); a change read there
    forgets the write."""
    echoes = await guard()
    assert not echoes.wrote_to(KEY)
    echoes.wrote(KEY, digest("pump"), "v1", T0)
    assert echoes.wrote_to(KEY) and not echoes.wrote_to("000004000124")
    assert not echoes.is_echo(KEY, digest("valve"), "v2")
    assert not echoes.wrote_to(KEY)


async def test_a_key_with_a_version_applied_is_known_without_a_write() -> None:
    """Without versions, a record read where a version applied is remembered is compared by
    its content (``knows``), though nothing was written there."""
    echoes = await guard()
    assert not echoes.knows(KEY)
    echoes.applied(KEY, echoes.read(KEY, digest("erp"), None).applied_as, T0)
    assert echoes.knows(KEY) and not echoes.wrote_to(KEY)
    echoes.passed(T0 + timedelta(seconds=1))
    assert not echoes.knows(KEY)
