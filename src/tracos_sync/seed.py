"""Sample data, like the challenge's ``setup.py``: 10 TracOS work orders (written the way TracOS
writes them: no ``isSynced``) and 10 client work orders, written by the connector in the
customer's own format (its mapping), plus one malformed input and one that breaks the format, so
that a first run shows every path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from tracos_sync.domain.dates import normalise
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import SupportsSamples, WorkOrderRepository

TRACOS_STATUSES = list(Status)
CLIENT_STATUSES = [
    Status.PENDING,
    Status.COMPLETED,
    Status.ON_HOLD,
    Status.CANCELLED,
    Status.IN_PROGRESS,
]
SAMPLES = 10
CLIENT_FIRST_NUMBER = 101


@dataclass(slots=True)
class SeedResult:
    documents: int = 0
    files: int = 0
    skipped: bool = False  # --if-empty and data was there
    refused: bool = False  # data was there and neither --if-empty nor --force was given


def tracos_work_orders(now: datetime) -> list[WorkOrder]:
    orders = []
    for i in range(1, SAMPLES + 1):
        created = normalise(now - timedelta(days=30 - i, hours=i))
        orders.append(
            WorkOrder(
                number=i,
                status=TRACOS_STATUSES[(i - 1) % len(TRACOS_STATUSES)],
                title=f"Example work order {i}",
                description=f"Example work order {i} created in TracOS",
                created_at=created,
                updated_at=created + timedelta(days=1),
                deleted=i == SAMPLES,
                deleted_at=created + timedelta(days=1) if i == SAMPLES else None,
            )
        )
    return orders


def client_orders(now: datetime) -> list[WorkOrder]:
    """The client's ten sample work orders: every status, none of TracOS's numbers."""
    orders = []
    for i in range(SAMPLES):
        number = CLIENT_FIRST_NUMBER + i
        created = normalise(now - timedelta(days=20 - i, hours=i))
        orders.append(
            WorkOrder(
                number=number,
                status=CLIENT_STATUSES[i % len(CLIENT_STATUSES)],
                title=f"Example client order {number}",
                created_at=created,
                updated_at=created + timedelta(hours=6),
            )
        )
    return orders


# Inputs that are wrong in any format: one that is not JSON, one whose fields are all wrong.
BROKEN_INPUTS = {
    "malformed.json": b'{"orderNo": 900, "summary": ',
    "invalid-schema.json": orjson.dumps(
        {"orderNo": "901", "isDone": "yes", "summary": "Breaks the schema"}
    ),
}


async def seed(
    repository: WorkOrderRepository,
    client: SupportsSamples,
    if_empty: bool,
    force: bool = False,
) -> SeedResult:
    """Sample data on both sides. Into data that is already there only with ``force``: sample
    client inputs carrying numbers TracOS already holds would overwrite real work orders on the
    next run (they are newer)."""
    if await client.holds_inputs() or await repository.holds_work_orders():
        if if_empty:
            return SeedResult(skipped=True)
        if not force:
            return SeedResult(refused=True)
    now = datetime.now(UTC)
    result = SeedResult()
    result.documents = await repository.seed(tracos_work_orders(now))
    result.files = await client.add_samples(client_orders(now), BROKEN_INPUTS)
    return result
