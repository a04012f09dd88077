"""An answer's body read up to a number of bytes counted after decompression, as it streams.

httpx decodes ``Content-Encoding`` a received chunk at a time, each chunk whole: a few kilobytes
of gzip can become tens of megabytes in one step (a hostile test's gzip answer grew to 67 MB
before the 10 MB cap refused it). Here the raw bytes are inflated with zlib's ``max_length``, so
no more than the cap (and one byte, to know it was passed) is ever made. Only ``gzip`` and
``deflate`` are asked for (``ACCEPT_ENCODING``), and only they, or none, are read.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import httpx

ACCEPT_ENCODING = "gzip, deflate"


class UnreadableBody(Exception):
    """An encoding we did not ask for, or bytes that do not inflate."""


Inflate = Callable[[bytes, int], bytes]  # the next raw bytes, the most to make: decoded bytes


async def read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """The decoded body, at most ``limit`` bytes, and whether there was more (then the
    reading stopped: the rest was neither received nor inflated)."""
    if response.is_stream_consumed:  # built in memory (a test's): httpx decoded it already
        content = response.content
        return content[:limit], len(content) > limit
    inflate = _inflater(response.headers.get("Content-Encoding", ""))
    chunks: list[bytes] = []
    size = 0
    async for raw in response.aiter_raw():
        data = inflate(raw, limit - size + 1)
        size += len(data)
        if size > limit:
            chunks.append(data[: len(data) - (size - limit)])
            return b"".join(chunks), True
        chunks.append(data)
    return b"".join(chunks), False


def _inflater(encoding: str) -> Inflate:
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return _as_is
    if coding in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Zlib(zlib.MAX_WBITS, fallback=-zlib.MAX_WBITS)  # zlib-wrapped, or raw (as httpx)
    raise UnreadableBody(f"Content-Encoding {encoding[:40]!r} was not asked for")


def _as_is(data: bytes, most: int) -> bytes:
    return data[:most]


class _Zlib:
    """Inflates, never making more than asked per call; input left over once the cap is met is
    of no use (reading stops), so it is dropped."""

    def __init__(self, wbits: int, fallback: int | None = None) -> None:
        self._inflater = zlib.decompressobj(wbits)
        self._fallback = fallback
        self._started = False

    def __call__(self, data: bytes, most: int) -> bytes:
        try:
            out = self._inflater.decompress(data, most)
        except zlib.error as exc:
            if self._started or self._fallback is None:
                raise UnreadableBody(f"the compressed answer is corrupt: {exc}") from None
            self._inflater = zlib.decompressobj(self._fallback)
            self._fallback = None
            return self(data, most)
        self._started = True
        return out
