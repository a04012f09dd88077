"""The folder connector with its folders on Debian's OpenSSH server (tests/support/sshd.py),
through the CLI against a real MongoDB wire-protocol server: both directions, a file the SFTP
account may not read, a changed host key, and the server killed mid-run."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from tests.builders import client_record, read_json, tracos_doc, write_json
from tests.conftest import Env
from tests.support.sftp import client_file, names, sftp_settings
from tests.support.sshd import Sshd, running_sshd
from tests.support.watching import stop, wait_until


def test_both_directions_over_sftp(env: Env, sshd: Sshd) -> None:
    for n in range(1, 6):
        client_file(sshd, f"{n}.json", client_record(n))
    client_file(sshd, "bad.json", {"orderNo": "x"})
    env.collection.insert_many([tracos_doc(100 + n, isSynced=False) for n in range(3)])

    result = env.cli("run", **sftp_settings(sshd))

    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["files"], counts["inserted"], counts["exported"]) == (6, 5, 3)
    served = sshd.served
    assert names(served / "in" / "processed") == [f"{n}.json" for n in range(1, 6)]
    assert names(served / "in" / "rejected") == ["bad.json", "bad.json.error.json"]
    assert "orderNo" in (served / "in" / "rejected" / "bad.json.error.json").read_text()
    assert [p.name for p in (served / "in").iterdir() if p.suffix == ".json"] == []
    assert names(served / "out") == ["100.json", "101.json", "102.json"]
    assert read_json(served / "out" / "100.json")["orderNo"] == 100
    assert env.collection.count_documents({"isSynced": True}) == 8
    # A second run: nothing left to take or send, and nothing taken twice.
    again = env.cli("run", **sftp_settings(sshd))
    assert again.code == 0, again.output
    assert (again.counts()["files"], again.counts()["exported"]) == (0, 0)
    assert names(served / "in" / "processed") == [f"{n}.json" for n in range(1, 6)]


def test_an_archived_name_is_never_overwritten_on_the_server(env: Env, sshd: Sshd) -> None:
    client_file(sshd, "7.json", client_record(7))
    assert env.cli("inbound", **sftp_settings(sshd)).code == 0
    client_file(sshd, "7.json", client_record(7, lastUpdateDate="2024-06-01T00:00:00Z"))

    result = env.cli("inbound", **sftp_settings(sshd))

    assert result.code == 0, result.output
    assert names(sshd.served / "in" / "processed") == ["7.json", "7~1.json"]


def test_a_file_the_account_may_not_read_costs_only_itself(env: Env, sshd: Sshd) -> None:
    client_file(sshd, "1.json", client_record(1))
    locked = client_file(sshd, "2.json", client_record(2))
    locked.chmod(0)

    result = env.cli("inbound", **sftp_settings(sshd))

    assert result.code == 0, result.output
    assert result.counts()["files"] == 1
    assert names(sshd.served / "in" / "processed") == ["1.json"]
    assert locked.exists()  # left where it was, for the next run
    assert "2.json" in result.output


def test_a_changed_host_key_is_refused_in_one_clear_line(env: Env, sshd: Sshd) -> None:
    client_file(sshd, "1.json", client_record(1))
    sshd.change_host_key()
    sshd.restart()

    result = env.cli("run", **sftp_settings(sshd))

    assert result.code == 1, result.output
    said = [line for line in result.output.splitlines() if "host key is not the one" in line]
    assert len(said) == 2, result.output  # inbound's and outbound's, each one line
    assert all("run.failed" in line for line in said), result.output
    assert "run.crashed" not in result.output
    assert "Traceback" not in result.output
    assert names(sshd.served / "in") == ["1.json"]  # nothing touched
    assert env.collection.count_documents({}) == 0


def test_the_key_file_and_password_never_show(env: Env, sshd: Sshd) -> None:
    result = env.cli(
        "check", **sftp_settings(sshd, SFTP_PASSWORD="hunter2-secret", LOG_LEVEL="DEBUG")
    )

    assert "hunter2-secret" not in result.output
    assert sshd.client_key.export_private_key().decode() not in result.output
    assert "host key matches" in result.output, result.output


def test_the_server_killed_mid_run_loses_nothing_and_takes_nothing_twice(
    env: Env, sshd: Sshd
) -> None:
    for n in range(1, 201):
        client_file(sshd, f"{n}.json", client_record(n))
    env.collection.insert_many([tracos_doc(1000 + n, isSynced=False) for n in range(200)])
    settings = sftp_settings(sshd, BATCH_SIZE="10", SFTP_RETRY_SECONDS="20")
    proc = env.popen("run", **settings)
    processed = sshd.served / "in" / "processed"
    # Killed once the run is under way (some files archived), brought back a second later.
    while len(names(processed)) < 20 and proc.poll() is None:
        threading.Event().wait(0.005)
    assert proc.poll() is None, "the run ended before the kill"
    sshd.kill()
    threading.Timer(1.0, sshd.start).start()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err

    # Whatever a kill left claimed comes back once its claim is stale; a second run takes it.
    again = env.cli("run", **(settings | {"CLAIM_STALE_SECONDS": "1"}))
    assert again.code == 0, again.output
    archived = names(processed)
    assert sorted(archived) == sorted(f"{n}.json" for n in range(1, 201)), archived
    assert names(sshd.served / "in" / "rejected") == []
    assert env.collection.count_documents({"number": {"$lte": 200}}) == 200
    assert names(sshd.served / "out") == sorted(f"{1000 + n}.json" for n in range(200))
    assert env.collection.count_documents({"isSynced": {"$ne": True}}) == 0


def test_a_server_without_posix_rename_serves_inbound_and_refuses_outbound(env: Env) -> None:
    """Inbound never needs posix-rename (its claims, archive and quarantine moves and the
    recovery of a dead instance's claims are the protocol's rename, which never replaces):
    every one of them runs on a server that refuses it; outbound, which must replace a file in
    one step, is refused in one line."""
    with running_sshd(sftp_options="-P posix-rename") as sshd:
        inbound = sshd.served / "in"
        client_file(sshd, "1.json", client_record(1))
        client_file(sshd, "bad.json", {"orderNo": "x"})
        # A dead instance's claim folder, silent for an hour: put back, then taken.
        dead = inbound / ".tracos-claims" / "gone-host-1-dead"
        dead.mkdir(parents=True)
        held = write_json(dead / "2.json", client_record(2))
        an_hour_ago = time.time() - 3600
        for path in (held, dead):
            os.utime(path, (an_hour_ago, an_hour_ago))
        sshd.give_to_server(inbound / ".tracos-claims", dead, held)
        env.collection.insert_one(tracos_doc(5, isSynced=False))
        settings = sftp_settings(sshd, CLAIM_STALE_SECONDS="60")

        result = env.cli("run", **settings)

        assert result.code == 1, result.output
        assert "sftp.claim_recovered" in result.output, result.output
        refusals = [line for line in result.output.splitlines() if "no posix-rename" in line]
        assert len(refusals) == 1, result.output  # outbound's, in one line
        assert "Traceback" not in result.output
        assert names(inbound / "processed") == ["1.json", "2.json"]
        assert names(inbound / "rejected") == ["bad.json", "bad.json.error.json"]
        assert env.collection.count_documents({"number": {"$in": [1, 2]}}) == 2
        assert [p for p in names(sshd.served / "out") if not p.startswith(".")] == []
        assert env.collection.find_one({"number": 5}, {"isSynced": 1})["isSynced"] is False
        # A later file of an archived name goes beside it, never over it.
        client_file(sshd, "1.json", client_record(1, lastUpdateDate="2024-06-01T00:00:00Z"))
        again = env.cli("inbound", **settings)
        assert again.code == 0, again.output
        assert names(inbound / "processed") == ["1.json", "1~1.json", "2.json"]
        # Nothing in hand; the crash count of suspected poison is kept, as on local folders.
        assert [n for n in names(inbound / ".tracos-claims") if not n.startswith("crashes-")] == []

        check = env.cli("check", **settings)
        extensions = [line for line in check.output.splitlines() if "sftp extensions" in line]
        assert len(extensions) == 1 and extensions[0].startswith("FAIL"), check.output
        assert "inbound needs no posix-rename" in extensions[0]


def test_a_server_without_fsync_is_used_with_one_warning(env: Env) -> None:
    with running_sshd(sftp_options="-P fsync") as sshd:
        client_file(sshd, "1.json", client_record(1))
        env.collection.insert_one(tracos_doc(5, isSynced=False))

        result = env.cli("run", **sftp_settings(sshd))

        assert result.code == 0, result.output
        assert result.output.count("sftp.no_fsync") == 1, result.output
        assert names(sshd.served / "in" / "processed") == ["1.json"]
        assert names(sshd.served / "out") == ["5.json"]


def test_trust_on_first_use_only_when_asked_and_loudly(env: Env, sshd: Sshd) -> None:
    client_file(sshd, "1.json", client_record(1))
    empty = sshd.workdir / "empty_known_hosts"
    settings = sftp_settings(sshd, SFTP_KNOWN_HOSTS=str(empty))

    refused = env.cli("inbound", **settings)
    assert refused.code == 1, refused.output
    assert "is not a file" in refused.output
    empty.write_text("")
    unknown = env.cli("inbound", **settings)
    assert unknown.code == 1, unknown.output
    assert "host key is not in" in unknown.output
    assert names(sshd.served / "in") == ["1.json"]

    trusted = env.cli("inbound", **settings, SFTP_TRUST_UNKNOWN_HOST_KEY="true")
    assert trusted.code == 0, trusted.output
    assert "sftp.host_key_trusted_on_first_use" in trusted.output
    assert sshd.host_key.get_fingerprint() in trusted.output
    assert empty.read_text() == sshd.known_hosts_line(sshd.host_key)
    # Once known, a changed key is refused even with the setting on.
    sshd.change_host_key()
    sshd.restart()
    changed = env.cli("inbound", **settings, SFTP_TRUST_UNKNOWN_HOST_KEY="true")
    assert changed.code == 1, changed.output
    assert "host key is not the one" in changed.output


def test_watch_sweeps_an_sftp_folder_and_stops_on_sigterm(env: Env, sshd: Sshd) -> None:
    proc = env.popen("watch", **sftp_settings(sshd, WATCH_INTERVAL="1"))
    try:
        client_file(sshd, "1.json", client_record(1))
        wait_until(lambda: names(sshd.served / "in" / "processed") == ["1.json"], proc, 30)
        env.collection.insert_one(tracos_doc(7, isSynced=False))
        wait_until(lambda: names(sshd.served / "out") == ["7.json"], proc, 30)
        client_file(sshd, "2.json", client_record(2))  # a later sweep takes it too
        wait_until(lambda: "2.json" in names(sshd.served / "in" / "processed"), proc, 30)
    finally:
        result, took = stop(proc)
    assert result.code == 0, result.output
    assert took < 10
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("command", "user"),
    [("run", "me:hunter2-in-url"), ("check", "me%3Ahunter2-in-url")],
)
def test_a_password_in_the_url_is_refused_before_anything_connects_and_not_shown(
    env: Env, command: str, user: str
) -> None:
    result = env.cli(
        command,
        DATA_INBOUND_DIR=f"sftp://{user}@127.0.0.1:1/in",
        DATA_OUTBOUND_DIR="sftp://me@127.0.0.1:1/out",
        SFTP_KEY_FILE="/nonexistent",
    )

    assert result.code == 2, result.output
    assert "must not hold a password" in result.output
    assert "hunter2-in-url" not in result.output


def test_check_says_a_key_was_trusted_and_a_folder_cannot_be_made(env: Env, sshd: Sshd) -> None:
    known_hosts = sshd.workdir / "empty_known_hosts"
    known_hosts.write_text("")
    settings = sftp_settings(
        sshd,
        DATA_INBOUND_DIR=sshd.url("new/in"),  # its parent is the served folder: it can be made
        # Under /, where the account may not make a folder.
        DATA_OUTBOUND_DIR=f"sftp://{sshd.user}@127.0.0.1:{sshd.port}/relative/out",
        SFTP_KNOWN_HOSTS=str(known_hosts),
        SFTP_TRUST_UNKNOWN_HOST_KEY="true",
    )

    first = env.cli("check", **settings)
    assert first.code == 1, first.output
    lines = first.output.splitlines()
    server = next(line for line in lines if "sftp server" in line)
    assert "trusted on first use" in server and "matches" not in server, first.output
    inbound = next(line for line in lines if "inbound folder" in line)
    assert inbound.startswith("ok") and "will be created" in inbound, first.output
    outbound = next(line for line in lines if "outbound folder" in line)
    assert outbound.startswith("FAIL") and "cannot be created" in outbound, first.output
    assert not (sshd.served / "new").exists()  # a check makes nothing

    again = env.cli("check", **settings)
    assert "host key matches" in next(s for s in again.output.splitlines() if "sftp server" in s)


def test_an_outbound_name_taken_by_a_folder_costs_that_order_only(env: Env, sshd: Sshd) -> None:
    out = sshd.served / "out"
    out.mkdir()
    (out / "5.json").mkdir()
    sshd.give_to_server(out, out / "5.json")
    env.collection.insert_many([tracos_doc(n, isSynced=False) for n in (4, 5, 6)])

    result = env.cli("outbound", **sftp_settings(sshd))

    assert result.code == 0, result.output
    assert result.counts()["exported"] == 2
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["4.json", "6.json"]
    assert env.collection.find_one({"number": 5}, {"isSynced": 1})["isSynced"] is False


def test_an_outbound_folder_the_account_may_not_write_fails_the_direction(
    env: Env, sshd: Sshd
) -> None:
    client_file(sshd, "1.json", client_record(1))
    out = sshd.served / "out"
    out.mkdir(mode=0o555)
    sshd.give_to_server(out)
    env.collection.insert_one(tracos_doc(5, isSynced=False))

    result = env.cli("run", **sftp_settings(sshd))

    assert result.code == 1, result.output
    assert names(sshd.served / "in" / "processed") == ["1.json"]  # the other direction ran
    assert env.collection.count_documents({"isSynced": False}) == 1
    assert "Traceback" not in result.output


def test_a_dry_run_reads_the_server_and_changes_nothing(env: Env, sshd: Sshd) -> None:
    client_file(sshd, "1.json", client_record(1))
    for made_by_an_earlier_run in ("processed", "rejected"):
        (sshd.served / "in" / made_by_an_earlier_run).mkdir()
        sshd.give_to_server(sshd.served / "in" / made_by_an_earlier_run)
    env.collection.insert_one(tracos_doc(5, isSynced=False))

    result = env.cli("run", "--dry-run", **sftp_settings(sshd))

    assert result.code == 0, result.output
    assert (result.counts()["files"], result.counts()["exported"]) == (1, 1), result.output
    assert names(sshd.served / "in") == ["1.json", "processed", "rejected"]
    assert names(sshd.served / "in" / "processed") == []
    assert not (sshd.served / "out").exists()
    assert env.collection.count_documents({"number": 1}) == 0
    assert env.collection.count_documents({"isSynced": False}) == 1


def test_check_reports_each_folder_and_an_unreachable_server_at_once(env: Env, sshd: Sshd) -> None:
    client_file(sshd, "1.json", client_record(1))
    settings = sftp_settings(sshd, SFTP_RETRY_SECONDS="60")

    ok = env.cli("check", **settings)
    assert ok.code == 0, ok.output
    lines = ok.output.splitlines()
    for label in ("inbound folder", "processed folder", "outbound folder", "sftp extensions"):
        assert any(line.startswith("ok") and label in line for line in lines), ok.output
    assert names(sshd.served / "in") == ["1.json"]  # the probes are gone, the file untouched

    sshd.stop()
    start = time.monotonic()
    down = env.cli("check", **settings)
    assert down.code == 1, down.output
    assert time.monotonic() - start < 30  # not the 60 s a run would wait
    failed = [s for s in down.output.splitlines() if s.startswith("FAIL") and "sftp server" in s]
    assert len(failed) == 1, down.output
    # The cause, the time waited and the one try; the account not shown.
    assert re.search(
        r"sftp://\*\*\*@127\.0\.0\.1:\d+: no working connection for 0\.\ds \(1 try\): "
        r"connecting failed: .*Connect call failed",
        failed[0],
    ), failed[0]


def test_check_says_how_long_it_waited_on_a_server_that_takes_connections_silently(
    env: Env, sshd: Sshd
) -> None:
    """Hostile pass 3, #3: the listener stopped (the port still takes connections, nothing
    answers): check said "unreachable for 0s" after waiting 19 s, with errno 113 (no route to
    host). It says the connection timed out, and the time it took."""
    assert sshd.running is not None
    os.kill(sshd.running.pid, signal.SIGSTOP)
    try:
        down = env.cli("check", **sftp_settings(sshd))
    finally:
        os.kill(sshd.running.pid, signal.SIGCONT)

    assert down.code == 1, down.output
    failed = [s for s in down.output.splitlines() if s.startswith("FAIL") and "sftp server" in s]
    assert len(failed) == 1, down.output
    found = re.search(
        r"no working connection for (\d+\.\d)s \(1 try\): connecting timed out after 15s$",
        failed[0],
    )
    assert found, failed[0]
    assert 15 <= float(found[1]) < 20, failed[0]
    assert "Errno" not in failed[0]


def test_a_large_file_is_read_whole_beside_small_ones(env: Env, sshd: Sshd) -> None:
    big = [client_record(n, summary="x" * 2000) for n in range(1, 2501)]  # about 5 MiB
    client_file(sshd, "big.json", big)
    for n in range(3001, 3021):
        client_file(sshd, f"{n}.json", client_record(n))

    result = env.cli("inbound", **sftp_settings(sshd))

    assert result.code == 0, result.output
    assert (sshd.served / "in" / "processed" / "big.json").stat().st_size > 4 * 1024 * 1024
    assert len(names(sshd.served / "in" / "processed")) == 21
    assert env.collection.count_documents({}) == 2520
