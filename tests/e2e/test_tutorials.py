"""The tutorials say what their runs end with, and it is what the run says: the file-customer
tutorial's summary counts and the files it says are left where (test_readme.py runs its
commands; this holds their outcome to the page's words)."""

from __future__ import annotations

import re
import shutil

from tests.conftest import Env
from tests.server import ROOT

PAGE = ROOT / "docs" / "tutorials" / "file-customer.md"


def test_the_file_customer_tutorial_ends_as_it_says(env: Env) -> None:
    shutil.copytree(ROOT / "examples", env.root / "examples")
    inbound = env.root / "data/globex/inbound"
    inbound.mkdir(parents=True)
    for sample in (ROOT / "examples/samples/globex").iterdir():
        shutil.copy(sample, inbound / sample.name)

    result = env.cli("--integrations", "examples/integrations.toml", "run", "--only", "globex")

    assert result.code == 0, result.output
    text = PAGE.read_text()
    said = re.search(r"`run\.summary integration=globex … (files=.*?) …`", text)
    assert said, "the page states the run's summary"
    summary = next(line for line in result.output.splitlines() if "run.summary" in line)
    for count in said[1].replace("…", " ").split():
        assert f" {count} " in f" {summary} ", f"the page says {count}: {summary}"
    assert sorted(p.name for p in (inbound / "processed").iterdir()) == ["42.json"]
    rejected = sorted(p.name for p in (inbound / "rejected").iterdir())
    assert rejected == ["batch.json", "batch.json.error.json"]
    assert "`rejected/batch.json` and its `batch.json.error.json`" in text
    reason = (inbound / "rejected" / "batch.json.error.json").read_text()
    assert '"record": 2' in reason and "SCRAPPED" in reason and "`record 2`" in text
    assert not any((env.root / "data/globex/outbound").iterdir())
    assert "`outbound/` is empty" in text
