"""The SFTP outbound lock's holder file (G4 of the second hostile pass): the holder's name and
its own stale bound, read back as written; a file of an older version (a name alone) or one that
says something unreadable gives no bound (the taker's own counts), and a bound over the setting's
range counts for its top."""

from __future__ import annotations

import pytest

from tracos_sync.connectors.client_erp.files.sftp.lock_holder import (
    STALE_CAP_SECONDS,
    HolderSaid,
    holder_file,
    read_holder_file,
)


def test_what_the_holder_writes_is_read_back() -> None:
    assert read_holder_file(holder_file("host-1-ab", 600)) == HolderSaid("host-1-ab", 600.0)
    assert read_holder_file(holder_file("host-1-ab", 4.5)).stale_seconds == 4.5


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (b"old-version\n", HolderSaid("old-version", None)),
        (b"", HolderSaid("(empty)", None)),
        (b"x\nSFTP_LOCK_STALE_SECONDS=soon\n", HolderSaid("x", None)),
        (b"x\nSFTP_LOCK_STALE_SECONDS=nan\n", HolderSaid("x", None)),
        (b"x\nSFTP_LOCK_STALE_SECONDS=inf\n", HolderSaid("x", None)),
        (b"x\nSFTP_LOCK_STALE_SECONDS=1e9\n", HolderSaid("x", STALE_CAP_SECONDS)),
        (b"x\x1b[2J\nSFTP_LOCK_STALE_SECONDS=60", HolderSaid("x\\x1b[2J", 60.0)),
    ],
)
def test_an_older_or_odd_holder_file_gives_no_bound_and_a_huge_one_the_cap(
    said: bytes, expected: HolderSaid
) -> None:
    assert read_holder_file(said) == expected
