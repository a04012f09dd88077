"""The README and every page of docs/ are true as written: every command in their ``bash`` blocks
runs, exactly as shown, in a fresh copy of the repository per page (the environments are shared,
not rebuilt, to keep this quick), block by block in order as a user would type them. A command
that cannot run here is listed in ``NOT_RUN`` with the reason; every other one is run, so the
docs cannot drift. Their links stay inside the repository, and ``make help`` names every target.
(Broken links and anchors between docs pages, and pages missing from the nav, are caught by
``make docs``, which ``make test`` runs first.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server import ROOT

# Commands shown in the docs that this test does not run, and why.
NOT_RUN = {
    "make test": "it is this test suite",
    "MONGO_URI=mongodb://localhost:27017 make seed": "needs a real MongoDB on the default port",
    "MONGO_URI=mongodb://localhost:27017 make run": "needs a real MongoDB on the default port",
}
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def pages() -> list[Path]:
    """The README and every page of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_blocks(page: Path) -> list[list[str]]:
    """The commands of each ``bash`` block of ``page``, comments stripped, continuation lines
    joined."""
    blocks = []
    for block in BLOCK.findall(page.read_text()):
        commands = []
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
        blocks.append(commands)
    return blocks


def all_commands() -> list[str]:
    return [command for page in pages() for block in page_blocks(page) for command in block]


def pages_with_commands() -> list[Path]:
    return [page for page in pages() if page_blocks(page)]


def fresh_copy(target: Path) -> Path:
    """The files git knows, with their times kept (so make sees installed environments as up
    to date), and the environments linked in."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if not source.exists():
            continue  # deleted in the working tree
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination, follow_symlinks=False)
    for environment in (".venv", ".tools"):
        (target / environment).symlink_to(ROOT / environment)
    return target


def test_every_command_is_run_or_says_why_not() -> None:
    commands = all_commands()
    assert page_blocks(ROOT / "README.md"), "the README shows no bash commands?"
    unknown = set(NOT_RUN) - set(commands)
    assert not unknown, f"NOT_RUN lists commands the docs no longer show: {unknown}"


def test_links_stay_inside_the_repository() -> None:
    for page in pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith("#"):
                continue
            assert "://" not in target, f"{page.name} links outside the repository: {target}"
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT), f"{page.name} links outside: {target}"
            assert path.exists(), f"{page.name} links to a missing file: {target}"


def test_make_help_names_every_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):(?!=)", makefile, re.MULTILINE))
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    named = set(re.findall(r"^make ([a-z-]+)", shown, re.MULTILINE))
    assert targets - {"help"} <= named, f"make help does not name {targets - named - {'help'}}"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "page", pages_with_commands(), ids=lambda page: str(page.relative_to(ROOT))
)
def test_commands_run_as_written(page: Path, tmp_path: Path) -> None:
    copy = fresh_copy(tmp_path / "repo")
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MONGO_", "DATA_", "CLIENT_", "LOG_", "MAKE", "PYTHONPATH"))
    }
    environ["HOME"] = str(tmp_path)
    # A block runs as a user would type it: in one shell, in order, stopping at the first
    # failure; anything it left running in the background is stopped at its end.
    for block in page_blocks(page):
        script = ["set -e", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
        script += [command for command in block if command not in NOT_RUN]
        proc = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=copy,
            env=environ,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, (
            f"{page.relative_to(ROOT)}: block {block} failed:\n{proc.stdout}\n{proc.stderr}"
        )
