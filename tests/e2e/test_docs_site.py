"""The built documentation site works opened from disk (``file://``, no server): every link and
every asset of every page is a file of the site, never a folder (a browser shows a folder's
listing, not its page) and never something fetched from outside."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.server import ROOT

REFERENCE = re.compile(r"""\b(?:href|src)=["']([^"']+)["']""")


def built_site(tmp_path: Path) -> Path:
    """The site ``make test`` built just before the tests (``make docs``, strict, from this
    checkout; the Makefile names it in ``BUILT_SITE``), else one built here the same way."""
    if os.environ.get("BUILT_SITE"):
        return Path(os.environ["BUILT_SITE"])
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return site


@pytest.mark.timeout(300)
def test_every_link_of_the_built_site_is_a_file_of_it(tmp_path: Path) -> None:
    site = built_site(tmp_path)
    # 404.html is for a web server to answer a missing page with (its links start at /).
    pages = sorted(set(site.rglob("*.html")) - {site / "404.html"})
    assert len(pages) > 10
    broken: list[str] = []
    for page in pages:
        for target in REFERENCE.findall(page.read_text()):
            parts = urlsplit(target)
            if parts.scheme in ("mailto", "data") or target.startswith("#"):
                continue
            where = f"{page.relative_to(site)} -> {target}"
            if parts.scheme or parts.netloc:
                broken.append(f"{where}: outside the site")
                continue
            path = (page.parent / unquote(parts.path)).resolve()
            if not path.is_file():
                broken.append(f"{where}: {'a folder' if path.is_dir() else 'missing'}")
    assert not broken, "\n".join(broken[:20])
