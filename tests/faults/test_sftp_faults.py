"""The SFTP transport when things break on the server's side (Debian's sshd,
tests/support/sshd.py): a remote disk that fills up, an archive move cut between its two steps,
a claim left by a dead instance, and the server killed several times in one run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import aged, client_record, read_json, tracos_doc, write_json
from tests.conftest import Env
from tests.support.sftp import client_file, names, sftp_settings
from tests.support.sshd import Sshd


@contextlib.contextmanager
def tiny_disk(sshd: Sshd, name: str, size: str) -> Iterator[Path]:
    """A small tmpfs as a served folder, owned by the SFTP account."""
    path = sshd.served / name
    path.mkdir()
    account = sshd.account
    mounted = subprocess.run(
        [
            "mount", "-t", "tmpfs",
            "-o", f"size={size},uid={account.pw_uid},gid={account.pw_gid},mode=755",
            "tmpfs", str(path),
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_remote_disk_marks_only_what_was_written(env: Env, sshd: Sshd) -> None:
    env.collection.insert_many([tracos_doc(n, title="x" * 200) for n in range(1, 401)])
    settings = sftp_settings(sshd, BATCH_SIZE="50")
    with tiny_disk(sshd, "out", "64k") as outbound:
        result = env.cli("outbound", **settings)

        assert result.code == 1, result.output
        assert "Traceback" not in result.output
        marked = [d["number"] for d in env.collection.find({"isSynced": True})]
        assert 0 < len(marked) < 400
        assert result.counts()["exported"] == len(marked)
        for number in marked:  # synced means delivered, whole
            assert read_json(outbound / f"{number}.json")["orderNo"] == number
    sshd.give_to_server(sshd.served / "out")  # the disk gone: a roomy folder in its place
    retry = env.cli("outbound", **settings)
    assert retry.code == 0, retry.output
    assert retry.counts()["exported"] == 400 - len(marked)
    assert env.collection.count_documents({"isSynced": {"$ne": True}}) == 0


def dead_claim(sshd: Sshd, name: str, record: object) -> Path:
    """A file claimed by an instance that died: in a claim folder of its own, untouched since."""
    claims = sshd.served / "in" / ".tracos-claims"
    folder = claims / "gone-host-1-dead"
    folder.mkdir(parents=True, exist_ok=True)
    path = write_json(folder / name, record)
    sshd.give_to_server(sshd.served / "in", claims, folder, path)
    past = time.time() - 3600
    os.utime(folder, (past, past))
    return path


def test_a_dead_instances_claim_is_put_back_and_taken_once(env: Env, sshd: Sshd) -> None:
    client_file(sshd, "1.json", client_record(1))
    dead_claim(sshd, "2.json", client_record(2))

    result = env.cli("inbound", **sftp_settings(sshd, CLAIM_STALE_SECONDS="60"))

    assert result.code == 0, result.output
    assert "sftp.claim_recovered" in result.output
    # Put back at start, then taken by the same run's listing.
    assert names(sshd.served / "in" / "processed") == ["1.json", "2.json"]
    assert in_claims(sshd) == []


def test_three_instances_recovering_the_same_dead_claims_take_each_file_once(
    env: Env, sshd: Sshd
) -> None:
    # The first instance to move a file out refreshes the dead folder's time, so the others
    # see it alive again: whatever the timing, each file is taken once and every one exits 0.
    for n in range(1, 101):
        dead_claim(sshd, f"{n}.json", client_record(n))
    settings = sftp_settings(sshd, CLAIM_STALE_SECONDS="60", BATCH_SIZE="50")

    procs = [env.popen("inbound", **settings) for _ in range(3)]
    results = [proc.communicate(timeout=120) for proc in procs]

    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, out + err
    assert names(sshd.served / "in" / "processed") == sorted(f"{n}.json" for n in range(1, 101))
    assert in_claims(sshd) == []
    assert env.collection.count_documents({}) == 100


def test_an_archive_move_cut_between_link_and_unlink_is_finished_not_repeated(
    env: Env, sshd: Sshd
) -> None:
    """OpenSSH's no-replace rename is link() then unlink(): a server killed between the two
    leaves the file archived and still claimed. Recovery removes the claimed copy."""
    claimed = dead_claim(sshd, "3.json", client_record(3))
    processed = sshd.served / "in" / "processed"
    processed.mkdir()
    sshd.give_to_server(processed)
    os.link(claimed, processed / "3.json")

    result = env.cli("inbound", **sftp_settings(sshd, CLAIM_STALE_SECONDS="60"))

    assert result.code == 0, result.output
    assert names(processed) == ["3.json"]  # not 3~1.json: taken once
    assert not claimed.exists()
    assert result.counts()["files"] == 0


def test_the_server_killed_again_and_again_loses_nothing_and_takes_nothing_twice(
    env: Env, sshd: Sshd
) -> None:
    for n in range(1, 301):
        client_file(sshd, f"{n}.json", client_record(n))
    env.collection.insert_many([tracos_doc(1000 + n, isSynced=False) for n in range(300)])
    settings = sftp_settings(sshd, BATCH_SIZE="5", SFTP_RETRY_SECONDS="30")
    processed, outbound = sshd.served / "in" / "processed", sshd.served / "out"
    proc = env.popen("run", **settings)
    kills = 0
    # Killed at three points of the inbound, and once in the outbound; back after 0.3 s each.
    for counter, at in ((processed, 30), (processed, 120), (processed, 210), (outbound, 100)):
        while len(names(counter)) < at and proc.poll() is None:
            time.sleep(0.002)
        if proc.poll() is not None:
            break
        sshd.kill()
        kills += 1
        threading.Timer(0.3, sshd.start).start()
        time.sleep(0.4)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err
    assert kills == 4, "the run ended before every kill landed"
    assert "Traceback" not in err, err  # each drop said in one line, at most
    assert "never retrieved" not in err, err

    again = env.cli("run", **(settings | {"CLAIM_STALE_SECONDS": "1"}))
    assert again.code == 0, again.output
    assert names(processed) == sorted(f"{n}.json" for n in range(1, 301))
    assert names(sshd.served / "in" / "rejected") == []
    assert env.collection.count_documents({"number": {"$lte": 300}}) == 300
    # A write cut by a kill leaves its private temp file (a dotfile, removed once stale).
    delivered = [name for name in names(outbound) if not name.startswith(".tracos-")]
    assert delivered == sorted(f"{1000 + n}.json" for n in range(300))
    assert env.collection.count_documents({"isSynced": {"$ne": True}}) == 0


def test_a_file_still_being_uploaded_is_left_until_whole(env: Env, sshd: Sshd) -> None:
    inbound = sshd.served / "in"
    inbound.mkdir()
    sshd.give_to_server(inbound)
    partial = inbound / "9.json"
    partial.write_text('{"orderNo": 9, "summary": "half')  # an upload under way, just now
    sshd.give_to_server(partial)

    result = env.cli("inbound", **sftp_settings(sshd, INBOUND_SETTLE_SECONDS="30"))

    assert result.code == 0, result.output
    assert names(inbound / "rejected") == []
    assert partial.exists()
    write_json(partial, client_record(9))  # the upload ends
    aged(partial)
    assert env.cli("inbound", **sftp_settings(sshd)).code == 0
    assert names(inbound / "processed") == ["9.json"]


def in_claims(sshd: Sshd) -> list[str]:
    """What the claims folder holds but the count of crashes recovered, which is kept."""
    held = names(sshd.served / "in" / ".tracos-claims")
    return [name for name in held if not name.startswith("crashes-")]
