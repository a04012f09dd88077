"""The indexes the sync relies on, and what counts as a uniqueness guarantee on ``number``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .fencing import STAMP

NUMBER_INDEX = [("number", 1)]
# Unsynced means isSynced false or missing: two point intervals of this index.
UNSYNCED_INDEX = [("isSynced", 1), ("_id", 1)]
# The highest lease epoch stamped in a collection, read at every take of a lease
# (``leases.MongoLeaseStore.take``): a partial index over the stamped documents alone (most
# work orders of a collection other writers fill carry no stamp, and cost it nothing). Epochs
# start at 1 and ``$gt`` matches numbers only, so ``STAMPED`` is every stamp; mongod accepts
# ``$gt`` in a partial filter (not ``$ne`` nor ``$exists: false``), and a query holding the
# filter itself uses the index, on mongod and SecantusDB alike.
STAMP_INDEX = [(f"{STAMP}.epoch", -1)]
STAMPED: dict[str, Any] = {f"{STAMP}.epoch": {"$gt": 0}}
STAMP_INDEX_OPTIONS: dict[str, Any] = {
    "name": "syncLease_epoch",
    "partialFilterExpression": STAMPED,
}


@dataclass(frozen=True, slots=True)
class IndexState:
    number_unique: bool  # a real guarantee is in place
    number_problem: str | None  # an index on number that looks like one but is not
    unsynced: bool
    stamp: bool = False


def index_state(indexes: Sequence[Mapping[str, Any]]) -> IndexState:
    """Only a unique index on ``number`` alone, over every document (no partial filter), makes
    a duplicate impossible. A partial or non-unique one would be taken for it by a quick look
    and must be dropped before the sync can create the real one."""
    unique = False
    problem = None
    unsynced = False
    for ix in indexes:
        key = list(ix["key"].items())
        if key == UNSYNCED_INDEX:
            unsynced = True
        if [field for field, _ in key] != ["number"]:
            continue
        name = ix.get("name")
        if not ix.get("unique"):
            problem = f"index {name!r} on number is not unique"
        elif "partialFilterExpression" in ix:
            problem = f"index {name!r} on number is unique only for some documents (partial)"
        else:
            unique = True
    if unique:
        problem = None
    elif problem is not None:
        problem += "; drop it so that tracos-sync can create a unique index over all documents"
    return IndexState(unique, problem, unsynced, has_stamp_index(indexes))


def has_stamp_index(indexes: Sequence[Mapping[str, Any]]) -> bool:
    """An index on the stamps' epochs is there (``STAMP_INDEX``, whatever its name or filter:
    one an operator made is not made again beside it)."""
    return any(list(ix["key"].items()) == STAMP_INDEX for ix in indexes)
