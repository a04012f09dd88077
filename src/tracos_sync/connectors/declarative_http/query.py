"""Query strings and URL templates of an API description, encoded as OData servers accept them.

httpx's ``params=`` writes a space as ``+`` (form encoding); SAP CAP answers 400 to
``$filter=LastChangeDateTime+gt+…``. Here every value is percent-encoded (``%20``), and what OData
writes literally (``$``, ``'``, ``(``, ``)``, ``,``, ``:``) stays as it is. httpx keeps such a
query as given, unless it merges parameters into it (a client's default ``params``,
``copy_merge_params``), which encodes it again: so nothing here, nor the requester, uses them.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from urllib.parse import quote

import httpx

# RFC 3986 allows these in a query; ``&``, ``=``, ``+``, ``;`` and ``#`` are always escaped
# (they separate parameters, or some servers read ``+`` as a space).
_SAFE_IN_QUERY = "$'(),:@/!*"


def placeholders(template: str) -> set[str]:
    """The ``{name}`` fields of ``template``; ``ValueError`` for one that cannot be filled
    (a lone brace, ``{0}``, ``{a.b}``, a format spec). ``{{`` and ``}}`` are literal braces."""
    found = set()
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        raise ValueError(
            "a lone { or }: write {name} for a placeholder, {{ or }} for a brace"
        ) from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{{{name}}} is not a placeholder: write {{name}}, or {{{{ for {{")
        found.add(name)
    return found


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with its placeholders replaced by ``values`` (checked at start-up). A
    placeholder written between single quotes (``'{number}'``) is inside an OData string
    literal, where a ``'`` of the value is written twice (``'WO ''A'' 41'``): otherwise it would
    end the literal early, and the filter or the path would name another key, or none."""
    parts = []
    fields = list(string.Formatter().parse(template))  # ``{{`` comes back as ``{``
    for index, (literal, name, _, _) in enumerate(fields):
        parts.append(literal)
        if name is None:
            continue
        value = values[name]
        following = fields[index + 1][0] if index + 1 < len(fields) else ""
        if literal.endswith("'") and following.startswith("'"):
            value = value.replace("'", "''")
        parts.append(value)
    return "".join(parts)


def encode_query(pairs: Iterable[tuple[str, str]]) -> bytes:
    """``name=value&…``, each part percent-encoded (a space as ``%20``, never ``+``)."""
    return "&".join(
        f"{quote(name, safe=_SAFE_IN_QUERY)}={quote(value, safe=_SAFE_IN_QUERY)}"
        for name, value in pairs
    ).encode("ascii")


def with_query(url: httpx.URL, pairs: Iterable[tuple[str, str]]) -> httpx.URL:
    """``url`` with ``pairs`` added after its own query, which is kept byte for byte."""
    added = encode_query(pairs)
    if not added:
        return url
    query = url.query + b"&" + added if url.query else added
    return url.copy_with(query=query)


def join_path(root: httpx.URL, path: str) -> httpx.URL:
    """``path`` under the service root ``root`` (``/odata/v4/maintenance/`` + ``MaintenanceOrder``):
    relative to the root whether it starts with ``/`` or not; its query, if any, is kept."""
    base = root.copy_with(path=root.path.rstrip("/") + "/", query=None, fragment=None)
    return base.join(path.lstrip("/"))
