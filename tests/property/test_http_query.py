"""Query strings of the declarative HTTP connector, for any text: what a server decodes is what
was given, byte for byte, and no space is ever written as ``+`` (SAP CAP answers 400 to one)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
from hypothesis import given
from hypothesis import strategies as st

from tracos_sync.connectors.declarative_http.query import with_query

# Any text a parameter may hold, surrogates aside (not encodable as UTF-8, so not in a URL).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
PAIRS = st.lists(st.tuples(TEXT.filter(bool), TEXT), max_size=5)
BASE = httpx.URL("http://erp.test/odata/v4/svc/Orders", query=b"$filter=A%20eq%20'x%20y'")


@given(PAIRS)
def test_a_server_decodes_every_value_as_it_was_given(pairs: list[tuple[str, str]]) -> None:
    url = with_query(BASE, pairs)
    sent = url.raw_path.split(b"?", 1)[1].decode("ascii")
    assert " " not in sent and "+" not in sent.replace("%2B", "")
    decoded = parse_qsl(sent, keep_blank_values=True)  # as a server reads it (+ would be a space)
    assert decoded == [("$filter", "A eq 'x y'"), *pairs]
    assert url.query.startswith(BASE.query)  # the URL's own query kept byte for byte
