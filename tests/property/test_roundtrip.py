"""Round trips between the two formats preserve every business field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tracos_sync.connectors.client_erp.codec import RecordDecoder
from tracos_sync.connectors.client_erp.translate import FLAG_STATUS, to_client, to_tracos
from tracos_sync.connectors.client_erp.wire import ClientWorkOrder
from tracos_sync.domain.dates import format_instant, normalise, parse_instant
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.mapping import builtin_mapping

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
instants = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2200, 12, 30), timezones=offsets
)
status_flag = st.sampled_from([None, *FLAG_STATUS])


@st.composite
def client_records(draw: st.DrawFn) -> dict[str, Any]:
    flag = draw(status_flag)
    created = draw(instants)
    updated = draw(instants)
    deleted = draw(st.booleans())
    record: dict[str, Any] = {
        "orderNo": draw(st.integers(min_value=1, max_value=2**63 - 1)),
        "isCanceled": flag == "isCanceled",
        "isDone": flag == "isDone",
        "isOnHold": flag == "isOnHold",
        "isPending": flag == "isPending",
        "isDeleted": deleted,
        "summary": draw(st.text(max_size=200)),
        "creationDate": created.isoformat(),
        "lastUpdateDate": updated.isoformat(),
        "deletedDate": draw(st.none() | instants.map(datetime.isoformat)) if deleted else None,
    }
    if flag == "isActive" or draw(st.booleans()):
        record["isActive"] = flag == "isActive"
    if draw(st.booleans()):
        record["isSynced"] = draw(st.booleans())
    return record


@given(client_records())
@settings(max_examples=300)
def test_client_to_tracos_to_client_preserves_business_fields(record: dict[str, Any]) -> None:
    order = RecordDecoder(builtin_mapping()).decode_record(record)
    back = to_client(order)
    assert back["orderNo"] == record["orderNo"]
    assert back["summary"] == record["summary"]
    assert back["isDeleted"] == record["isDeleted"]
    assert back["isSynced"] is True
    raised = [flag for flag in FLAG_STATUS if record.get(flag)] or ["isActive"]
    assert [flag for flag in FLAG_STATUS if back[flag]] == raised
    for field in ("creationDate", "lastUpdateDate"):
        assert parse_instant(back[field]) == parse_instant(record[field])
    if record["isDeleted"]:
        expected = record["deletedDate"] or record["lastUpdateDate"]
        assert parse_instant(back["deletedDate"]) == parse_instant(expected)
    else:
        assert back["deletedDate"] is None
    # And the translation is a fixpoint after one normalisation.
    assert to_tracos(ClientWorkOrder.model_validate(back), UTC) == order


utc_instants = instants.map(normalise)


@given(
    number=st.integers(min_value=1, max_value=2**63 - 1),
    status=st.sampled_from(Status),
    title=st.text(max_size=100),
    created=utc_instants,
    updated=utc_instants,
    deleted=st.booleans(),
    deleted_at=st.none() | utc_instants,
)
def test_tracos_to_client_to_tracos(
    number: int,
    status: Status,
    title: str,
    created: datetime,
    updated: datetime,
    deleted: bool,
    deleted_at: datetime | None,
) -> None:
    order = WorkOrder(
        number, status, title, created, updated, deleted, deleted_at if deleted else None
    )
    back = to_tracos(ClientWorkOrder.model_validate(to_client(order)), UTC)
    expected_deleted_at = (deleted_at or updated) if deleted else None
    assert back == WorkOrder(number, status, title, created, updated, deleted, expected_deleted_at)
    assert format_instant(back.updated_at).endswith("Z")
