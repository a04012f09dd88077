"""The SFTP source against a hostile tester's findings (issue 24), on Debian's OpenSSH server
through the CLI: a young file judged where it is (a writer reopening it by name finds it there),
a file left in hand never overwritten by the client's next file of the same name, and a claim
folder removed under a running watch made again, a batch longer than the stale time kept
claimed, a symlink skipped with one line and an old temp file removed from a quiet folder."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymongo import MongoClient

from tests.builders import aged, client_record, write_json
from tests.conftest import Env, Result, failpoint
from tests.support.sftp import client_file, names, sftp_settings
from tests.support.sshd import Sshd
from tests.support.watching import stop, wait_until
from tracos_sync.connectors.client_erp.files.sftp.source import CLOSE_SECONDS
from tracos_sync.stopping import STOP_GRACE_SECONDS


def test_a_young_file_is_judged_where_it_is_and_claimed_once_it_parses(
    env: Env, sshd: Sshd
) -> None:
    whole = orjson.dumps(client_record(77))
    inbound = sshd.served / "in"
    inbound.mkdir()
    sshd.give_to_server(inbound)
    upload = inbound / "slow.json"
    upload.write_bytes(whole[:20])  # an upload under way: a writer will reopen it by name
    sshd.give_to_server(upload)
    before = upload.stat().st_ctime_ns
    settings = sftp_settings(sshd, INBOUND_SETTLE_SECONDS="60")

    first = env.cli("inbound", **settings)

    assert first.code == 0, first.output
    assert "still_being_written" in first.output
    # Never moved (a move changes the file's ctime): the writer's next open finds it here.
    assert upload.stat().st_ctime_ns == before
    assert names(inbound / "rejected") == []
    with upload.open("ab") as writer:  # the writer reopens it by name and finishes it
        writer.write(whole[20:])

    second = env.cli("inbound", **settings)

    assert second.code == 0, second.output
    assert names(inbound / "processed") == ["slow.json"]  # taken whole while still young
    assert names(inbound / "rejected") == []
    assert env.collection.count_documents({"number": 77}) == 1


def test_a_file_left_in_hand_is_never_overwritten_by_the_next_of_its_name(
    env: Env, sshd: Sshd
) -> None:
    inbound = sshd.served / "in"
    rejected = inbound / "rejected"
    rejected.mkdir(parents=True)
    sshd.give_to_server(inbound)
    rejected.chmod(0o555)  # the quarantine cannot be written: a bad file stays in hand
    proc = env.popen("watch", **sftp_settings(sshd, WATCH_INTERVAL="0.3"))
    claims = inbound / ".tracos-claims"
    try:
        client_file(sshd, "export.json", {"orderNo": "FIRST, bad"})
        wait_until(lambda: bool(list(claims.glob("*/export.json"))), proc, 30)
        client_file(sshd, "export.json", client_record(9))
        wait_until(lambda: names(inbound / "processed") == ["export.json"], proc, 30)
    finally:
        result, _ = stop(proc)
        rejected.chmod(0o755)
    assert result.code == 0, result.output
    held = [p.read_text() for p in claims.glob("*/*.json")]
    assert held == ['{"orderNo":"FIRST, bad"}'], held  # still in hand, beside, not lost
    assert env.collection.count_documents({"number": 9}) == 1


def test_a_claim_folder_removed_under_a_watch_is_made_again(env: Env, sshd: Sshd) -> None:
    proc = env.popen("watch", **sftp_settings(sshd, WATCH_INTERVAL="0.3"))
    claims = sshd.served / "in" / ".tracos-claims"
    try:
        # The client's housekeeping removes empty folders: the claim folder once the start-up
        # probe of the server's extensions (a file made and removed in it) is over.
        wait_until(lambda: claims.exists() and _empty_folders(claims), proc, 30)
        for folder in claims.iterdir():
            folder.rmdir()
        client_file(sshd, "5.json", client_record(5))
        wait_until(lambda: names(sshd.served / "in" / "processed") == ["5.json"], proc, 30)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert result.output.count("sftp.claim_folder_recreated") == 1, result.output
    assert "cannot be listed" not in result.output
    assert env.collection.count_documents({"number": 5}) == 1


def _empty_folders(claims: Path) -> bool:
    folders = list(claims.iterdir())
    return bool(folders) and not any(any(folder.iterdir()) for folder in folders)


def test_a_batch_longer_than_the_stale_time_is_not_taken_twice(
    env: Env, sshd: Sshd, mongo: MongoClient[dict[str, Any]]
) -> None:
    client_file(sshd, "big.json", [client_record(n) for n in range(1, 51)])
    settings = sftp_settings(
        sshd, CLAIM_STALE_SECONDS="2", MONGO_TIMEOUT_SECONDS="10", MONGO_RETRY_SECONDS="30"
    )
    claims = sshd.served / "in" / ".tracos-claims"
    # The first instance's batch waits on the database for longer than the stale time (the
    # server's times are whole seconds: a second more than the stale time is waited).
    with failpoint(
        mongo,
        1,
        failCommands=["find", "aggregate", "insert", "update"],
        blockConnection=True,
        blockTimeMS=5000,
    ):
        slow = env.popen("inbound", **settings)
        wait_until(lambda: bool(list(claims.glob("*/big.json"))), slow, 30)
        claimed_at = time.monotonic()
        wait_until(lambda: time.monotonic() - claimed_at > 3.5, slow, 10)
        other = env.cli("inbound", **settings)
        out, err = slow.communicate(timeout=60)

    assert slow.returncode == 0, out + err
    assert other.code == 0, other.output
    assert "claim_recovered" not in other.output  # the first instance's claim was alive
    assert other.counts()["files"] == 0
    assert names(sshd.served / "in" / "processed") == ["big.json"]
    assert env.collection.count_documents({}) == 50


def test_a_claim_taken_back_while_applying_is_said_lost_and_counted_once(
    env: Env, sshd: Sshd, mongo: MongoClient[dict[str, Any]]
) -> None:
    """The first instance is silent past what the second one takes for stale while its batch
    waits on the database (its own CLAIM_STALE_SECONDS is long, the other's short; then it is
    paused, as a VM can be, while the second runs): the second puts the file back, takes,
    applies and archives it. The first then finds it gone from its claim folder: it says the
    claim was lost, in one line, and does not count the file; the second does. Archived once,
    applied once."""
    client_file(sshd, "big.json", [client_record(n) for n in range(1, 51)])
    claims = sshd.served / "in" / ".tracos-claims"
    # Writes only: blocked once the file is read and its batch is being applied.
    with failpoint(
        mongo, 1, failCommands=["insert", "update"], blockConnection=True, blockTimeMS=6000
    ):
        slow = env.popen("inbound", **sftp_settings(sshd, CLAIM_STALE_SECONDS="30"))
        wait_until(lambda: bool(list(claims.glob("*/big.json"))), slow, 30)
        (held,) = claims.glob("*/big.json")
        # Stale for the other (its times are the server's whole seconds).
        wait_until(lambda: time.time() - held.parent.stat().st_mtime >= 2.2, slow, 10)
        slow.send_signal(signal.SIGSTOP)  # paused (its write blocked) while the other runs
        try:
            other = env.cli("inbound", **sftp_settings(sshd, CLAIM_STALE_SECONDS="1"))
        finally:
            slow.send_signal(signal.SIGCONT)
        out, err = slow.communicate(timeout=60)

    assert other.code == 0, other.output
    assert "sftp.claim_recovered" in other.output
    assert other.counts()["files"] == 1, other.output
    assert slow.returncode == 0, out + err
    first = Result(slow.returncode, out, err)
    lost = [line for line in first.output.splitlines() if "big.json" in line]
    assert len(lost) == 1 and "inbound.claim_lost" in lost[0], first.output
    assert "archive_failed" not in first.output
    assert first.counts()["files"] == 0, first.output
    assert names(sshd.served / "in" / "processed") == ["big.json"]
    assert names(sshd.served / "in" / "rejected") == []
    assert env.collection.count_documents({}) == 50


def test_a_file_rewritten_in_place_while_its_batch_is_applied_goes_back_and_lands_next_run(
    env: Env, sshd: Sshd, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Hostile pass 4, F2: a writer that kept its file open rewrites it in place (the final
    version over a complete draft) after it was claimed and read, while its batch is applied.
    Archived, the file would hold the final version while TracOS holds the draft, and nothing
    would ever apply it. It goes back instead (as on local folders), and the next run applies
    the final version. Checked from the data: TracOS and the archived file agree."""
    client_file(sshd, "7.json", client_record(7, summary="draft"))
    final = client_record(7, summary="final", lastUpdateDate="2024-05-02T12:00:00Z")
    claims = sshd.served / "in" / ".tracos-claims"
    # Writes only: blocked for a while once the file is read and its batch is being applied.
    with failpoint(
        mongo, 1, failCommands=["insert", "update"], blockConnection=True, blockTimeMS=4000
    ):
        run = env.popen("inbound", **sftp_settings(sshd))
        wait_until(lambda: bool(list(claims.glob("*/7.json"))), run, 30)
        (held,) = claims.glob("*/7.json")
        time.sleep(1.0)  # read within milliseconds of its claim; its batch waits 4 s
        with held.open("r+b") as writer:  # in place, as through a descriptor kept open
            writer.write(orjson.dumps(final))
            writer.truncate()
        out, err = run.communicate(timeout=60)
    first = Result(run.returncode, out, err)
    assert first.code == 0, first.output
    again = env.cli("inbound", **sftp_settings(sshd))
    assert again.code == 0, again.output

    doc = env.collection.find_one({"number": 7})
    assert doc is not None and doc["title"] == "final", (first.output, again.output)
    processed = sshd.served / "in" / "processed"
    assert [orjson.loads(p.read_bytes())["summary"] for p in processed.iterdir()] == ["final"]


def test_a_symlink_is_skipped_with_a_line_and_an_old_temp_goes_in_a_quiet_folder(
    env: Env, sshd: Sshd
) -> None:
    client_file(sshd, "1.json", client_record(1))
    (sshd.served / "in" / "link.json").symlink_to(sshd.served / "in" / "1.json")
    out = sshd.served / "out"
    out.mkdir()
    sshd.give_to_server(out)
    # A temp file a killed writer left eleven minutes ago, alone in the folder.
    temp = out / ".tracos-7.json.0123456789ab.tmp"
    temp.write_bytes(b"{")
    aged(temp, 660)
    sshd.give_to_server(temp)

    result = env.cli("run", **sftp_settings(sshd))

    assert result.code == 0, result.output
    skipped = [line for line in result.output.splitlines() if "inbound.entry_skipped" in line]
    assert len(skipped) == 1 and "link.json" in skipped[0], result.output
    assert names(sshd.served / "in" / "processed") == ["1.json"]
    assert not temp.exists()


def passphrase_key(sshd: Sshd) -> str:
    """The server's authorized client key, written in OpenSSH's format under a passphrase (as
    ssh-keygen writes it by default): its path."""
    path = sshd.workdir / "client_key_with_passphrase"
    sshd.client_key.write_private_key(str(path), "openssh", passphrase="right horse")
    return str(path)


def test_a_key_with_a_passphrase_is_used_with_the_right_one(env: Env, sshd: Sshd) -> None:
    client_file(sshd, "1.json", client_record(1))
    key = passphrase_key(sshd)

    result = env.cli(
        "run", **sftp_settings(sshd, SFTP_KEY_FILE=key, SFTP_KEY_PASSPHRASE="right horse")
    )

    assert result.code == 0, result.output
    assert names(sshd.served / "in" / "processed") == ["1.json"]


@pytest.mark.parametrize("passphrase", ["wrong horse", None])
def test_a_wrong_or_missing_passphrase_is_one_line(
    env: Env, sshd: Sshd, passphrase: str | None
) -> None:
    client_file(sshd, "1.json", client_record(1))
    settings = sftp_settings(sshd, SFTP_KEY_FILE=passphrase_key(sshd))
    if passphrase is not None:
        settings["SFTP_KEY_PASSPHRASE"] = passphrase

    check = env.cli("check", **settings)
    run = env.cli("run", **settings)

    failed = [line for line in check.output.splitlines() if "FAIL" in line]
    assert check.code != 0 and len(failed) == 1, check.output
    assert "passphrase" in failed[0].lower(), check.output
    assert run.code in (1, 2), run.output
    assert "run.crashed" not in run.output and "Traceback" not in run.output, run.output
    assert "right horse" not in check.output + run.output
    assert names(sshd.served / "in") == ["1.json"]  # nothing taken


def inbound_under_way(env: Env, sshd: Sshd, batch: str) -> subprocess.Popen[str]:
    """An ``inbound`` run over 200 client files (``BATCH_SIZE`` ``batch``, 32 in flight), once
    it has archived 20 of them."""
    for n in range(1, 201):
        client_file(sshd, f"{n}.json", client_record(n))
    settings = sftp_settings(sshd, BATCH_SIZE=batch, SFTP_PARALLEL_FILES="32")
    processed = sshd.served / "in" / "processed"
    proc = env.popen("inbound", **settings)
    wait_until(lambda: len(names(processed)) >= 20, proc, 60)
    return proc


def stopped_while_stalled(
    proc: subprocess.Popen[str], sshd: Sshd, stalled: Callable[[], bool] | None
) -> tuple[Result, float]:
    """The server's session processes stopped (the connection stays up; nothing answers), then,
    once ``stalled`` holds (or half a second on: the work runs into the silent server), ``proc``
    SIGTERMed and waited for (a process that never exits fails it): its result and how long it
    took. The sessions go on again whatever happens."""
    sessions = sshd.sessions()
    try:
        for pid in sessions:
            os.kill(pid, signal.SIGSTOP)
        if stalled is None:
            time.sleep(0.5)
        else:
            wait_until(stalled, proc, 30)
        return stop(proc)
    finally:
        for pid in sessions:
            os.kill(pid, signal.SIGCONT)


def logged_at(output: str, event: str) -> datetime:
    """When the first line logging ``event`` was written (the text format's timestamp)."""
    line = next(line for line in output.splitlines() if f"] {event}" in line)
    return datetime.fromisoformat(line.split()[0])


def test_sigterm_ends_a_watch_whose_server_stopped_answering(env: Env, sshd: Sshd) -> None:
    proc = env.popen("watch", **sftp_settings(sshd, WATCH_INTERVAL="0.3"))
    stopped: list[int] = []
    try:
        client_file(sshd, "1.json", client_record(1))
        wait_until(lambda: names(sshd.served / "in" / "processed") == ["1.json"], proc, 30)
        stopped = sshd.sessions()
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)  # the connection stays up; nothing answers
        client_file(sshd, "2.json", client_record(2))
        # A sweep's request sent, unread by the stopped server: the stop lands while it waits.
        wait_until(sshd.has_unread_requests, proc, 30)
        assert names(sshd.served / "in" / "processed") == ["1.json"]  # it is waiting
        signalled = datetime.now(UTC)
        result, _ = stop(proc)  # (a hang, of the watch or of the process's exit, fails it)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert result.code == 0, result.output
    # Timed by the watch's own clock, from the signal to its last line: the stop grace, then
    # the claim folder's tidy-up, which a server that does not answer makes wait out its whole
    # bound, and a margin. Not to the process's end: on a loaded machine (load 16 on two cores)
    # a process gets an eighth of a CPU, and its exit alone took 4 s. A stop that waited on the
    # request (SFTP_REQUEST_SECONDS, 60 s) or on the connection's close (5 s more) is over.
    took = (logged_at(result.output, "watch.stopped") - signalled).total_seconds()
    assert took < STOP_GRACE_SECONDS + CLOSE_SECONDS + 3, f"{took:.1f} s\n{result.output}"
    assert "Task exception was never retrieved" not in result.output, result.output
    assert "Traceback" not in result.output, result.output


def test_sigterm_cuts_a_run_whose_server_stalled_mid_batch_and_says_so_with_its_time(
    env: Env, sshd: Sshd
) -> None:
    """Hostile pass 4: F1, a run stopped while the server had stopped answering in the middle
    of its reads sometimes never exited (a file's close in a cancelled read's cleanup, never
    answered, held the process's exit); F4, its summary then said the batch in hand was
    finished, and seconds=0."""
    proc = inbound_under_way(env, sshd, batch="20")
    signalled = datetime.now(UTC)
    result, _ = stopped_while_stalled(proc, sshd, sshd.has_unread_requests)  # reads wait on it
    assert result.code == 1, result.output
    took = (logged_at(result.output, "run.summary") - signalled).total_seconds()
    # The grace twice, a moment for the archives, and a margin for a loaded machine: a run that
    # waited on the stalled server (SFTP_REQUEST_SECONDS, 60 s) or never ended is far over.
    assert took < 2 * STOP_GRACE_SECONDS + 6, f"{took:.1f} s\n{result.output}"
    (summary,) = [line for line in result.output.splitlines() if "run.summary" in line]
    assert "status=failed" in summary, summary
    seconds = float(summary.rpartition("seconds=")[2].split()[0])
    assert seconds >= took, summary  # timed until the summary, not 0
    assert "was still running after the stop's grace and was cut" in result.output


def test_sigterm_ends_a_watch_stalled_with_files_in_flight_and_they_are_recovered(
    env: Env, sshd: Sshd, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Hostile pass 2, F4: the server stops answering while files are being taken, applied and
    archived; SIGTERM ends the watch within the stop grace (twice: the batch's grace, then the
    cancelled work's), not after SFTP_REQUEST_SECONDS. What it held stays in its claim folder,
    and is put back once that folder is stale."""
    for n in range(1, 61):
        client_file(sshd, f"{n}.json", client_record(n))
    settings = sftp_settings(
        sshd,
        WATCH_INTERVAL="0.3",
        BATCH_SIZE="5",
        SFTP_REQUEST_SECONDS="30",
        SFTP_RETRY_SECONDS="30",
    )
    processed = sshd.served / "in" / "processed"
    # Slow applies: the window of takes and the archives are on the wire when the server stalls.
    with failpoint(
        mongo, 10_000, failCommands=["insert", "update"], blockConnection=True, blockTimeMS=150
    ):
        proc = env.popen("watch", **settings)
        wait_until(lambda: len(names(processed)) >= 5, proc, 30)
        result, took = stopped_while_stalled(proc, sshd, None)
    # The grace twice (3 s each), the tidy-ups at close (1 s), and a margin: not 30 s.
    assert took < 12, took
    assert result.code == 0, result.output
    assert "Traceback" not in result.output, result.output

    claims = sshd.served / "in" / ".tracos-claims"
    left = [p for p in claims.glob("*/*") if p.is_file()]
    if left:  # untouched since the stop: stale for a run that says a second is stale
        wait_until(
            lambda: all(time.time() - p.parent.stat().st_mtime > 1.5 for p in left), None, 10
        )  # (the watch has ended: no process to watch meanwhile)
    run = env.cli("inbound", **settings, CLAIM_STALE_SECONDS="1")
    assert run.code == 0, run.output
    assert sorted(names(processed)) == sorted(f"{n}.json" for n in range(1, 61)), run.output
    assert env.collection.count_documents({}) == 60
    assert not [p for p in claims.glob("*/*") if p.is_file()]


def held_claims(sshd: Sshd) -> list[Path]:
    """The files in every claim folder on the server."""
    return [p for p in (sshd.served / "in" / ".tracos-claims").glob("*/*") if p.is_file()]


def wait_stale(held: list[Path], seconds: float = 1.5) -> None:
    """Until the claim folders holding ``held`` are untouched for ``seconds``: stale for a run
    told CLAIM_STALE_SECONDS=1."""
    deadline = time.monotonic() + 10
    while not all(time.time() - p.parent.stat().st_mtime > seconds for p in held):
        assert time.monotonic() < deadline, "a claim folder is still being touched"
        time.sleep(0.05)


def test_the_database_and_the_server_lost_together_cost_one_retry_budget(
    env: Env, sshd: Sshd, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Hostile pass 2, F3: the apply fails while the server is down; the batch in hand was
    given back one file at a time, each waiting the whole SFTP_RETRY_SECONDS. The give-back
    stops at the first store failure; the files stay claimed and are recovered later."""
    for n in range(1, 21):
        client_file(sshd, f"{n}.json", client_record(n))
    settings = sftp_settings(sshd, BATCH_SIZE="20", SFTP_RETRY_SECONDS="2")
    # The applies are held, then refused (not a transient error: no database retry).
    with failpoint(
        mongo,
        10_000,
        failCommands=["insert", "update"],
        blockConnection=True,
        blockTimeMS=1500,
        errorCode=2,
    ):
        proc = env.popen("inbound", **settings)
        wait_until(lambda: len(held_claims(sshd)) == 20, proc, 30)
        sshd.kill()  # while the batch's apply is held
        killed = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - killed
    assert proc.returncode == 1, out + err
    # The apply's hold, one budget (2 s) and a margin: not one budget per file (40 s).
    assert took < 10, took
    assert err.count("sftp.claims_left") == 1, err
    assert len(held_claims(sshd)) == 20  # nothing lost

    sshd.start()
    wait_stale(held_claims(sshd))
    run = env.cli("inbound", **settings, CLAIM_STALE_SECONDS="1")
    assert run.code == 0, run.output
    assert names(sshd.served / "in" / "processed") == sorted(f"{n}.json" for n in range(1, 21))
    assert env.collection.count_documents({}) == 20


def test_a_dropped_connection_is_said_once_not_once_per_file_in_flight(
    env: Env, sshd: Sshd
) -> None:
    """Hostile pass 2, F8: one sftp.reconnecting line per operation in flight (21 for one
    stall); one per outage."""
    proc = inbound_under_way(env, sshd, batch="10")
    for pid in sshd.sessions():  # the connection drops mid-window; the listener takes the next
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert err.count("sftp.reconnecting") == 1, err


POISON = "in hand at 2 consecutive crashes (suspected poison)"


def _kill_while_in_hand(
    env: Env, sshd: Sshd, name: str, settings: dict[str, str], enough: Callable[[], bool]
) -> list[str]:
    """Start ``inbound`` and SIGKILL it once it holds ``name`` (in its own claim folder) and
    ``enough`` holds; what it held, once its claim folder is stale for the next start (the
    server's times are whole seconds)."""
    claims = sshd.served / "in" / ".tracos-claims"
    before = set(claims.iterdir()) if claims.exists() else set()
    proc = env.popen("inbound", **settings)

    def held() -> list[Path]:
        return [p for p in claims.glob(f"*/{name}") if p.parent not in before]

    wait_until(lambda: bool(held()) and enough(), proc, 60)
    proc.kill()
    proc.communicate(timeout=30)
    (folder,) = {p.parent for p in held()}
    deadline = time.monotonic() + 10
    while time.time() - folder.stat().st_mtime < 2.2:
        assert time.monotonic() < deadline, "the claim folder never went stale"
        time.sleep(0.05)
    # Not a heartbeat's own entry, which the kill may have cut (recovery removes it).
    return [held for held in names(folder) if not held.startswith(".tracos-")]


def test_a_file_in_hand_at_two_consecutive_crashes_is_quarantined_and_taken_alone_before(
    env: Env, sshd: Sshd
) -> None:
    """The local folders' crash-loop containment over SFTP: a file in hand when an instance
    dies is noted beside the claim folders and taken alone by the next one (files that arrived
    meanwhile wait: a crash then is blamed on it only); in hand at that crash too, the next
    start quarantines it as suspected poison, counts it, and takes the rest."""
    settings = sftp_settings(sshd, CLAIM_STALE_SECONDS="1", BATCH_SIZE="200")
    client_file(sshd, "poison.json", [client_record(n) for n in range(1000, 21_000)])
    _kill_while_in_hand(env, sshd, "poison.json", settings, lambda: True)
    for number in (1, 2, 3):
        client_file(sshd, f"{number}.json", client_record(number))
    writes = env.collection.count_documents({})

    held = _kill_while_in_hand(
        env,
        sshd,
        "poison.json",
        settings,
        lambda: env.collection.count_documents({}) >= writes + 400,
    )

    assert held == ["poison.json"], "nothing in hand beside a suspect"
    result = env.cli("inbound", **settings)
    assert result.code == 0, result.output
    assert "poison.json" in result.output and POISON in result.output
    rejected = sshd.served / "in" / "rejected"
    assert names(rejected) == ["poison.json", "poison.json.error.json"]
    reason = orjson.loads((rejected / "poison.json.error.json").read_bytes())
    assert reason["problems"] == [{"record": None, "path": "$", "reason": POISON}]
    assert names(sshd.served / "in" / "processed") == ["1.json", "2.json", "3.json"]
    counts = result.counts()
    assert (counts["files"], counts["rejected"]) == (4, 1), result.output
    claims = sshd.served / "in" / ".tracos-claims"
    assert not list(claims.glob("suspect-*")), "forgotten"
    assert not list(claims.glob("*/*.json")), "nothing left in hand"
    assert not [p for p in (sshd.served / "in").iterdir() if p.name.startswith(".tracos-now")]


def test_a_watch_puts_back_a_file_left_in_its_own_claim_folder(env: Env, sshd: Sshd) -> None:
    """Hostile pass 2, F2, on the server: a file in a live watch's own claim folder that it
    does not have in hand (left by a take an outage cut short) is put back and taken at its
    next sweep, not an hour after the watch is gone."""
    proc = env.popen("watch", **sftp_settings(sshd, WATCH_INTERVAL="0.3"))
    try:
        client_file(sshd, "1.json", client_record(1))
        processed = sshd.served / "in" / "processed"
        wait_until(lambda: names(processed) == ["1.json"], proc, 30)
        (own,) = (sshd.served / "in" / ".tracos-claims").iterdir()
        stranded = aged(write_json(own / "2.json", client_record(2)))
        sshd.give_to_server(stranded)
        wait_until(lambda: names(processed) == ["1.json", "2.json"], proc, 30)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "sftp.claim_put_back" in result.output
    assert env.collection.count_documents({}) == 2


def test_a_file_the_account_may_not_read_is_left_where_it_is_until_it_changes(
    env: Env, sshd: Sshd
) -> None:
    """Hostile pass 2, F6: a file the account may not read was renamed out and back at every
    sweep, with a warning each time (13 in 12 s). It is said once and left where it is; once
    it changes it is taken."""
    client_file(sshd, "1.json", client_record(1))
    locked = client_file(sshd, "2.json", client_record(2))
    locked.chmod(0)
    processed = sshd.served / "in" / "processed"
    proc = env.popen("watch", **sftp_settings(sshd, WATCH_INTERVAL="0.2"))
    try:
        wait_until(lambda: names(processed) == ["1.json"], proc, 30)  # 2.json was tried then
        moved = locked.stat().st_ctime_ns  # a rename changes it
        for number in (3, 4):  # each taken by a later sweep, which left 2.json alone
            client_file(sshd, f"{number}.json", client_record(number))
            wait_until(lambda n=number: f"{n}.json" in names(processed), proc, 30)
        assert locked.stat().st_ctime_ns == moved
        locked.chmod(0o644)
        aged(locked, 300)  # rewritten by its owner: another time
        wait_until(lambda: "2.json" in names(processed), proc, 30)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert result.output.count("inbound.unreadable") == 1, result.output
    assert env.collection.count_documents({}) == 4


def test_a_run_whose_session_stalls_is_reconnected_though_a_request_outlasts_the_budget(
    env: Env, sshd: Sshd
) -> None:
    """Hostile pass 3, #1: the server's session processes stopped mid-run (the listener up).
    The stalled request waits SFTP_REQUEST_SECONDS (3 s here, 60 s by default), longer than
    SFTP_RETRY_SECONDS (1 s, 30 s by default): the budget counts from that failure, so the run
    reconnects and finishes, every file taken once."""
    for n in range(1, 301):
        client_file(sshd, f"{n}.json", client_record(n))
    settings = sftp_settings(sshd, BATCH_SIZE="5", SFTP_REQUEST_SECONDS="3", SFTP_RETRY_SECONDS="1")
    processed = sshd.served / "in" / "processed"
    stopped: list[int] = []
    proc = env.popen("run", **settings)
    try:
        wait_until(lambda: processed.exists() and len(names(processed)) >= 5, proc, 60)
        stopped = sshd.sessions()
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)  # the connection stays up; nothing answers
        wait_until(sshd.has_unread_requests, proc, 30)  # a request waits on the stall
        assert len(names(processed)) < 300
        out, err = proc.communicate(timeout=60)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    assert "no answer within SFTP_REQUEST_SECONDS=3" in out + err, out + err
    assert len(names(processed)) == 300
    assert env.collection.count_documents({}) == 300
