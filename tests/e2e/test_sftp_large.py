"""Large files over SFTP, through the CLI against Debian's OpenSSH server: an array larger than
4 MiB is decoded a part at a time from pieces read as needed (memory near one part, not the
file), its records applied part by part, and the file archived once, or rejected with the
problems of every part, after its last part."""

from __future__ import annotations

import os
from typing import Any

import orjson
from pymongo import MongoClient

from tests.builders import client_record
from tests.conftest import Env, Result, failpoint
from tests.e2e.test_whole_files import peak_rss_mb
from tests.support.sftp import client_file, names, sftp_settings
from tests.support.sshd import Sshd
from tests.support.watching import wait_until


def test_a_large_array_is_decoded_in_bounded_memory(env: Env, sshd: Sshd) -> None:
    client_file(sshd, "small.json", [client_record(1)])
    settings = sftp_settings(sshd)
    baseline, _ = peak_rss_mb(env, "inbound", "--dry-run", **settings)
    client_file(sshd, "big.json", [client_record(n) for n in range(1, 60_001)])  # ~14 MB
    peak, output = peak_rss_mb(env, "inbound", "--dry-run", **settings)
    assert "files=2" in output, output
    # Read whole, 14 MB of bytes and their decoded records: about 60 MB more.
    assert peak - baseline < 25, f"{peak:.0f} MB against {baseline:.0f} MB for a small file"


def test_a_large_array_is_applied_part_by_part_and_rejected_with_every_parts_problems(
    env: Env, sshd: Sshd
) -> None:
    records: list[dict[str, Any]] = [client_record(n) for n in range(1, 30_001)]
    records[10]["orderNo"] = 0  # in the first part
    records[29_000]["orderNo"] = -1  # in the last
    client_file(sshd, "big.json", records)
    client_file(sshd, "good.json", [client_record(n) for n in range(40_001, 60_001)])

    result = env.cli("run", **sftp_settings(sshd, BATCH_SIZE="1000"))

    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["files"], counts["rejected"]) == (2, 2), result.output
    assert counts["inserted"] == 29_998 + 20_000
    rejected = sshd.served / "in" / "rejected"
    assert names(rejected) == ["big.json", "big.json.error.json"]
    reason = orjson.loads((rejected / "big.json.error.json").read_bytes())
    assert [p["record"] for p in reason["problems"]] == [10, 29_000]
    assert names(sshd.served / "in" / "processed") == ["good.json"]
    assert not list((sshd.served / "in" / ".tracos-claims").glob("*/*.json"))


def test_a_large_file_written_to_while_in_hand_goes_back_and_not_to_processed(
    env: Env, sshd: Sshd, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Its parts are applied as they are read; a writer touches it meanwhile (its writer was
    not done): looked at again before its move, it goes back under its name for a later run,
    never archived as applied."""
    client_file(sshd, "big.json", [client_record(n) for n in range(1, 20_001)])  # ~5 MB
    claims = sshd.served / "in" / ".tracos-claims"
    # Writes only: the first part's held for a while once the file is claimed.
    with failpoint(
        mongo, 1, failCommands=["insert", "update"], blockConnection=True, blockTimeMS=2000
    ):
        run = env.popen("inbound", **sftp_settings(sshd, BATCH_SIZE="1000"))
        wait_until(lambda: bool(list(claims.glob("*/big.json"))), run, 30)
        (held,) = claims.glob("*/big.json")
        os.utime(held)  # written to: its time is now, not the listed one
        out, err = run.communicate(timeout=120)
    result = Result(run.returncode, out, err)

    assert result.code == 0, result.output
    assert "inbound.file_changed_in_hand" in result.output, result.output
    assert names(sshd.served / "in" / "processed") == []
    assert (sshd.served / "in" / "big.json").exists()
