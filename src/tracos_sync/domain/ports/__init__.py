"""The ports the pipeline drives (one module a side: ``client``, ``repository``,
``connector``, ``capabilities``). Adapters implement them; the pipeline knows nothing else.

A customer system is a ``Connector``: it turns its own inputs into domain ``WorkOrder`` values
(``ClientSource``) and delivers domain work orders in its own format (``ClientSink``). TracOS is
a ``WorkOrderRepository``. A connector that keeps state of its own (a watermark, refused records)
is handed a ``ConnectorStateStore`` by the bootstrap, in a ``ConnectorContext``.
"""

from __future__ import annotations

from .capabilities import (
    Backlog,
    CertificateExpiry,
    SupportsBacklog,
    SupportsCertificates,
    SupportsFollowing,
    SupportsInputEvents,
    SupportsReplay,
    SupportsSamples,
)
from .client import ClientSink, ClientSource, Delivery, InboundUnit
from .connector import (
    ClientConnector,
    ConnectorConfig,
    ConnectorContext,
    ConnectorFactory,
    ConnectorStateStore,
    DeadLetter,
    FolderEvents,
    Owned,
)
from .leases import (
    Lease,
    LeaseRecord,
    LeaseStore,
    Registration,
    ReplicaRecord,
    ReplicaRegistry,
    fleet_view,
)
from .repository import (
    ApplyResult,
    HealthCheck,
    PendingExport,
    RefusedOrder,
    UnreadableDocument,
    WorkOrderRepository,
)

__all__ = [
    "ApplyResult",
    "Backlog",
    "CertificateExpiry",
    "ClientConnector",
    "ClientSink",
    "ClientSource",
    "ConnectorConfig",
    "ConnectorContext",
    "ConnectorFactory",
    "ConnectorStateStore",
    "DeadLetter",
    "Delivery",
    "FolderEvents",
    "HealthCheck",
    "InboundUnit",
    "Lease",
    "LeaseRecord",
    "LeaseStore",
    "Owned",
    "PendingExport",
    "RefusedOrder",
    "Registration",
    "ReplicaRecord",
    "ReplicaRegistry",
    "SupportsBacklog",
    "SupportsCertificates",
    "SupportsFollowing",
    "SupportsInputEvents",
    "SupportsReplay",
    "SupportsSamples",
    "UnreadableDocument",
    "WorkOrderRepository",
    "fleet_view",
]
