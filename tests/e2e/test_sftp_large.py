"""Large files over SFTP, through the CLI against Debian's OpenSSH server: an array larger than
4 MiB is decoded a part at a time from pieces read as needed (memory near one part, not the
file), its records applied part by part, and the file archived once, or rejected with the
problems of every part, after its last part."""

from __future__ import annotations

from typing import Any

import orjson

from tests.builders import client_record
from tests.conftest import Env
from tests.e2e.test_whole_files import peak_rss_mb
from tests.support.sftp import client_file, names, sftp_settings
from tests.support.sshd import Sshd


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
