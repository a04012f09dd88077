"""A fenced write refused by a stamp no holder of this lease document could have made: an epoch
above the lease document's own. Only a replica keeping its leases elsewhere (another
``LEASE_COLLECTION``) writes such a stamp, and leases alone cannot see it: said loudly, once per
refusal, so that an operator looks at every replica's settings. The registry of replicas
(``leases.collection_guard``) keeps such a replica from serving in the first place, and every
take starts above the stamps already there (``leases.MongoLeaseStore.take``), so once a replica
stood aside this is said at most of its last writes; what is left is a replica that records
itself nowhere (an older version). The text blames no replica that may have stood aside."""

from __future__ import annotations

from typing import Any

import structlog
from pymongo.asynchronous.collection import AsyncCollection

from tracos_sync.domain.fence import Fence

from .fencing import STAMP
from .leases import lease_id

Doc = dict[str, Any]
log = structlog.get_logger("tracos_sync.leases")


async def say_if_foreign(leases: AsyncCollection[Doc], fence: Fence, document: Doc) -> None:
    """``document``: the one the fence refused, as read after the refusal."""
    stamped = document.get(STAMP) or {}
    epoch = stamped.get("epoch")
    if not isinstance(epoch, int) or epoch <= fence.epoch:
        return
    lease = await leases.find_one({"_id": lease_id(fence.lease.name)}, {"epoch": 1})
    ours = int((lease or {}).get("epoch", 0))
    if epoch > ours:
        log.warning(
            "lease.foreign_stamp",
            integration=fence.lease.name,
            epoch=ours,
            stamp_epoch=epoch,
            stamp_holder=stamped.get("holder"),
            reason="a document carries a stamp above every epoch of this lease collection, "
            "written by a replica keeping its leases in another LEASE_COLLECTION (while it "
            "served, or a last write as it stood aside): this lease is lost and taken again "
            "above the stamp. Said again and again: a replica of another LEASE_COLLECTION still "
            "writes (lease.collection_conflict names it; one of an older version records "
            "itself nowhere): give every replica the same LEASES and LEASE_COLLECTION",
        )
