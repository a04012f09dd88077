"""Run Poetry, falling back to the package index's simple API where PyPI's per-release JSON
endpoint does not answer (as on the mirrors some build machines reach). Only how Poetry *finds*
release metadata changes; what it resolves, locks and installs is the same.

Usage: python tools/poetry_simple_api.py <poetry arguments>   (run with Poetry's interpreter)
"""

from __future__ import annotations

import sys
from typing import Any

from poetry.console.application import main
from poetry.inspection.info import PackageInfo
from poetry.repositories.exceptions import PackageNotFoundError
from poetry.repositories.pypi_repository import PyPiRepository

_release_info = PyPiRepository._get_release_info
_find_links = PyPiRepository.find_links_for_package


def _release_info_with_fallback(self: PyPiRepository, name: Any, version: Any) -> dict[str, Any]:
    try:
        return _release_info(self, name, version)
    except PackageNotFoundError:
        page = self.get_page(name)
        links = list(page.links_for_version(name, version))
        info = PackageInfo(
            name=name,
            version=version.text,
            summary="",
            requires_dist=[],
            requires_python=None,
            files=[],
            yanked=page.yanked(name, version),
            cache_version=str(self.CACHE_VERSION),
        )
        return self._links_to_data(links, info)


def _find_links_with_fallback(self: PyPiRepository, package: Any) -> list[Any]:
    links = _find_links(self, package)
    if links:
        return links
    return list(self.get_page(package.name).links_for_version(package.name, package.version))


PyPiRepository._get_release_info = _release_info_with_fallback  # type: ignore[method-assign]
PyPiRepository.find_links_for_package = _find_links_with_fallback  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv[0] = "poetry"
    sys.exit(main())
