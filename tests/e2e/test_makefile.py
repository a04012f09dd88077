"""``make run`` and ``make seed`` pick their database as the service does: ``MONGO_URI`` from the
environment or from ``.env``, else the embedded local server. With ``MONGO_URI`` the database and
the folders are real ones: ``make run`` is one sync and writes no sample data (``make seed`` is
the one explicit way); a refused ``make seed`` says ``FORCE=1``, the way a make user passes
``--force``. Each runs the real target in a fresh copy of the repository (the environments shared,
as in test_readme.py)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.e2e.test_readme import fresh_copy
from tests.server import ROOT

OLD = 946_684_800  # 2000-01-01: the copy's lock files older than the shared, installed .venv


def copy_of_repository(target: Path) -> Path:
    copy = fresh_copy(target)
    for name in ("pyproject.toml", "poetry.lock"):
        os.utime(copy / name, (OLD, OLD))
    return copy


def make(copy: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("MONGO_", "DATA_", "CLIENT_", "LOG_", "MAKE", "PYTHONPATH"))
    }
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=copy,
        env={**clean, **environ},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def dotenv(env: Env) -> str:
    return (
        f"MONGO_URI={env.uri}\nMONGO_DATABASE={env.database}\nMONGO_COLLECTION=workorders\n"
        f"DATA_INBOUND_DIR=data/inbound\nDATA_OUTBOUND_DIR=data/outbound\n"
    )


@pytest.mark.timeout(600)
def test_mongo_uri_in_dotenv_is_used_and_make_run_writes_no_sample_data(
    env: Env, tmp_path: Path
) -> None:
    copy = copy_of_repository(tmp_path / "repo")
    (copy / ".env").write_text(dotenv(env))

    ran = make(copy, "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "run.summary" in ran.stderr, ran.stderr
    assert "--embedded" not in ran.stdout + ran.stderr
    assert not (copy / ".data").exists(), "the embedded server was started"
    assert env.collection.count_documents({}) == 0, "make run wrote sample data into TracOS"
    outbound = copy / "data" / "outbound"
    assert not outbound.exists() or not any(outbound.iterdir()), "sample data was exported"

    seeded = make(copy, "seed")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert env.collection.count_documents({}) > 0, "make seed did not write into .env's MongoDB"
    assert not (copy / ".data").exists()

    refused = make(copy, "seed")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "make seed FORCE=1" in refused.stderr, refused.stderr
    forced = make(copy, "seed", "FORCE=1")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "make seed FORCE=1" not in forced.stderr


def test_the_environment_wins_over_dotenv_and_nothing_means_the_embedded_server(
    tmp_path: Path,
) -> None:
    copy = copy_of_repository(tmp_path / "repo")

    def commands(*args: str, **environ: str) -> list[str]:
        shown = make(copy, "-n", *args, **environ)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        return [line for line in shown.stdout.splitlines() if "tracos-sync " in line]

    # Nothing anywhere: the embedded server, with sample data on first use.
    assert commands("run") == [
        "[ -d data ] || .venv/bin/tracos-sync seed --if-empty --embedded",
        ".venv/bin/tracos-sync run --embedded",
    ]
    (copy / ".env").write_text("mongo_uri=mongodb://db.example:27017\n")
    assert commands("run") == [".venv/bin/tracos-sync run "]
    assert "--embedded" not in commands("seed")[0]
    # MONGO_EMBEDDED picks the embedded server whatever MONGO_URI says; the shell's variables
    # win over .env's, as for the service.
    (copy / ".env").write_text("MONGO_URI=mongodb://db.example:27017\nMONGO_EMBEDDED=true\n")
    assert commands("run")[-1] == ".venv/bin/tracos-sync run --embedded"
    assert commands("run", MONGO_EMBEDDED="0") == [".venv/bin/tracos-sync run "]


def test_the_readme_names_every_make_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):(?!=)", makefile, re.MULTILINE)) - {"help"}
    section = (ROOT / "README.md").read_text().split("## Make targets", 1)[1]
    named = set(re.findall(r"`([a-z][a-z-]*)`", section))
    assert targets <= named, f"README's make targets omit {sorted(targets - named)}"
