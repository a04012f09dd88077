"""``watch`` serving many folder integrations in one process: one inotify instance for all their
inbound folders (Linux allows 128 instances per user by default), and each integration still
takes a file as it arrives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Env
from tests.e2e.test_integrations import folders, write_integrations
from tests.e2e.test_watch_events import drop
from tests.support.watching import wait_until

INTEGRATIONS = 150


def inotify_instances(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            continue  # closed meanwhile
    return count


def many_integrations(env: Env, names: list[str]) -> Path:
    return write_integrations(
        env.root / "integrations.toml",
        [
            {"name": name, "tracos": {"collection": name}, "settings": folders(env.root, name)}
            for name in names
        ],
    )


def start_watch(env: Env, path: Path, log: Path, **overrides: str) -> subprocess.Popen[str]:
    """Its logs to a file: 150 integrations' start-up lines would fill a pipe nobody reads."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tracos_sync", "--integrations", str(path), "watch"],
            cwd=env.root,
            env=env.environ(**overrides),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def stop(proc: subprocess.Popen[str]) -> int | None:
    """SIGTERM: its exit code within 20 s, or None (then killed)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        return None


def test_150_folder_integrations_share_one_inotify_instance_and_take_files_at_once(
    env: Env,
) -> None:
    names = [f"c{i:03}" for i in range(INTEGRATIONS)]
    path = many_integrations(env, names)
    inbound: dict[str, Path] = {name: env.root / name / "in" for name in names}
    log = env.root / "watch.log"
    # An hour between sweeps: only the file's own event can explain it being taken.
    proc = start_watch(env, path, log, WATCH_INTERVAL="3600")
    try:
        wait_until(lambda: all((inbound[n] / "processed").is_dir() for n in names), proc, 120)
        last = names[-1]
        dropped = time.monotonic()
        drop(inbound[last], 1)
        took = wait_until((inbound[last] / "processed/1.json").exists, proc, 10)
        assert time.monotonic() - dropped < 2, f"taken {took:.2f} s after its drop"
        drop(inbound[names[0]], 2)
        wait_until((inbound[names[0]] / "processed/2.json").exists, proc, 2)
        assert inotify_instances(proc.pid) == 1, "one for every folder, not one each"
    finally:
        code = stop(proc)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "not available, polling" not in output
    assert output.count("watch.started") == INTEGRATIONS


def test_150_integrations_stopped_while_they_start_exit_within_seconds(env: Env) -> None:
    """A SIGTERM while 150 integrations open their change streams: each stream is left between
    two waits, never cancelled inside one (which now and then left one closing for ever: the
    process never exited, in 2 of 5 tries)."""
    path = many_integrations(env, [f"s{i:03}" for i in range(INTEGRATIONS)])
    for attempt in range(5):
        log = env.root / f"watch-{attempt}.log"
        proc = start_watch(env, path, log, MONGO_RETRY_SECONDS="30")
        time.sleep(3)  # its integrations starting, opening their streams
        began = time.monotonic()
        code = stop(proc)
        said = log.read_text()
        # A SIGTERM before its handler is in place (still importing, under load) ends the
        # process by default (-15) before anything began; once an integration has started,
        # the stop is ours and exits 0. Never ending at all is the bug (``stop`` gives None).
        early = code == -signal.SIGTERM and "watch.started" not in said
        assert code == 0 or early, f"attempt {attempt}: " + said[-3000:]
        assert time.monotonic() - began < 10
