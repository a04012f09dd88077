"""The indexes the sync relies on, and what counts as a uniqueness guarantee on ``number``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NUMBER_INDEX = [("number", 1)]
# Unsynced means isSynced false or missing: two point intervals of this index.
UNSYNCED_INDEX = [("isSynced", 1), ("_id", 1)]


@dataclass(frozen=True, slots=True)
class IndexState:
    number_unique: bool  # a real guarantee is in place
    number_problem: str | None  # an index on number that looks like one but is not
    unsynced: bool


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
    return IndexState(unique, problem, unsynced)
