"""The translation tables, both ways."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.builders import client_record
from tracos_sync.connectors.client_erp.translate import (
    flags_from_status,
    status_from_flags,
    to_client,
    to_tracos,
)
from tracos_sync.connectors.client_erp.wire import ClientWorkOrder
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Status, WorkOrder

FLAGS = ["isCanceled", "isDone", "isOnHold", "isPending", "isActive"]


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        ({"isCanceled"}, Status.CANCELLED),
        ({"isDone"}, Status.COMPLETED),
        ({"isOnHold"}, Status.ON_HOLD),
        ({"isPending"}, Status.PENDING),
        ({"isActive"}, Status.IN_PROGRESS),
        (set(), Status.IN_PROGRESS),
    ],
)
def test_status_from_flags(raised: set[str], status: Status) -> None:
    assert status_from_flags({flag: flag in raised for flag in FLAGS}) == status
    # isActive may be absent altogether
    flags: dict[str, bool | None] = {f: f in raised for f in FLAGS if f != "isActive"}
    if "isActive" not in raised:
        assert status_from_flags(flags) == status


@pytest.mark.parametrize(
    "pair", [("isDone", "isCanceled"), ("isPending", "isActive"), ("isOnHold", "isDone")]
)
def test_more_than_one_flag_is_ambiguous(pair: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="ambiguous status"):
        status_from_flags({flag: flag in pair for flag in FLAGS})


@pytest.mark.parametrize(
    ("status", "flag"),
    [
        (Status.CANCELLED, "isCanceled"),
        (Status.COMPLETED, "isDone"),
        (Status.ON_HOLD, "isOnHold"),
        (Status.PENDING, "isPending"),
        (Status.IN_PROGRESS, "isActive"),
    ],
)
def test_flags_from_status_sets_exactly_one(status: Status, flag: str) -> None:
    flags = flags_from_status(status)
    assert set(flags) == set(FLAGS)
    assert [f for f, v in flags.items() if v] == [flag]
    assert status_from_flags(dict(flags)) == status


def wire(**overrides: Any) -> ClientWorkOrder:
    return ClientWorkOrder.model_validate(client_record(12, **overrides))


def test_to_tracos_maps_every_field() -> None:
    order = to_tracos(wire(summary="Fix belt", isDone=True, isPending=False), UTC)
    assert order == WorkOrder(
        number=12,
        status=Status.COMPLETED,
        title="Fix belt",
        created_at=datetime(2024, 5, 1, 10, tzinfo=UTC),
        updated_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        deleted=False,
        deleted_at=None,
        description=None,
    )


@pytest.mark.parametrize(
    ("overrides", "deleted", "deleted_at"),
    [
        (
            {"isDeleted": True, "deletedDate": "2024-05-01T11:00:00Z"},
            True,
            datetime(2024, 5, 1, 11, tzinfo=UTC),
        ),
        ({"isDeleted": True, "deletedDate": None}, True, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ({"isDeleted": False, "deletedDate": "2024-05-01T11:00:00Z"}, False, None),
        ({"isDeleted": False}, False, None),
    ],
)
def test_deletion(overrides: dict[str, Any], deleted: bool, deleted_at: datetime | None) -> None:
    order = to_tracos(wire(**overrides), UTC)
    assert (order.deleted, order.deleted_at) == (deleted, deleted_at)


def test_to_tracos_collects_every_problem() -> None:
    with pytest.raises(RecordRejected) as caught:
        to_tracos(
            wire(isDone=True, creationDate="soon", lastUpdateDate="2024-02-30T00:00:00Z"), UTC
        )
    paths = [p.path for p in caught.value.problems]
    assert paths == ["$", "$.creationDate", "$.lastUpdateDate"]


def test_to_client_writes_every_client_field() -> None:
    order = WorkOrder(
        7,
        Status.ON_HOLD,
        "Belt",
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
        deleted=True,
        description="TracOS-only text",
    )
    assert to_client(order) == {
        "orderNo": 7,
        "isCanceled": False,
        "isDone": False,
        "isOnHold": True,
        "isPending": False,
        "isActive": False,
        "isDeleted": True,
        "isSynced": True,
        "summary": "Belt",
        "creationDate": "2024-01-01T00:00:00.000Z",
        "lastUpdateDate": "2024-01-02T03:04:05.006Z",
        "deletedDate": "2024-01-02T03:04:05.006Z",
    }


def test_the_model_and_the_schema_state_the_same_fields() -> None:
    """The JSON Schema is the wire contract; the model must name exactly its fields, and
    require exactly what it requires, so that a record past the schema always fits the model."""
    from tracos_sync.connectors.client_erp.wire import json_schema

    schema = json_schema()
    assert {f.alias or name for name, f in ClientWorkOrder.model_fields.items()} == set(
        schema["properties"]
    )
    required = {f.alias or n for n, f in ClientWorkOrder.model_fields.items() if f.is_required()}
    assert required == set(schema["required"])
