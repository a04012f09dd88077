"""What the ERP's answer about one record says: its version, and whether a 2xx to a write is a
delivery at all.

The version is the record's ``write.version.field`` in the body or, when the body has none (a
``204``), the ``ETag`` header. A 2xx is no delivery when its body holds ``write.error_path`` (an
ERP that answers ``200 {"error": …}``), nor, with ``write.version.source = "record"``, when it
carries no version at all: nothing proves the ERP wrote the record. Either is that record's
refusal, with the answer's start as its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from tracos_sync.domain.model import Problem

from .description import VersionSpec, WriteSpec
from .selector import field_at

Excerpt = Callable[[bytes | str], str]  # an answer's start, secrets redacted (``Requester``)


def json_of(body: bytes) -> Any:
    """The answer's JSON, or None (an answer without a body, or not JSON: no version in it)."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def version_of(spec: VersionSpec | None, response: httpx.Response, document: Any) -> str | None:
    """The record's version in an answer about it: the field ``write.version.field`` of its
    body, or, when the body has none (a ``204``), its ``ETag`` (also without ``write.version``:
    the echo guard compares it)."""
    if spec is not None and spec.source == "record" and spec.field is not None:
        found = field_at(document, spec.field)
        if found is not None:
            return str(found)
    etag: str | None = response.headers.get("ETag")
    return etag


def written(
    write: WriteSpec, response: httpx.Response, body: bytes, excerpt: Excerpt
) -> tuple[str | None, Problem | None]:
    """A 2xx to a write of ``write``: the version it carries, or why it is no delivery."""
    document = json_of(body)
    error = field_at(document, write.error_path) if write.error_path else None
    if error is not None:
        shown = excerpt(error if isinstance(error, str) else orjson.dumps(error))
        reason = f"HTTP {response.status_code} with an error ({write.error_path}): {shown}"
        return None, Problem("$", reason)
    spec = write.version
    version = version_of(spec, response, document)
    if spec is not None and spec.source == "record" and version is None:
        reason = (
            f"HTTP {response.status_code} without the record's version ({spec.field} in the "
            f"body, or an ETag header): not taken for written (answer: {excerpt(body)!r}); "
            "sent again next run"
        )
        return None, Problem("$", reason)
    return version, None
