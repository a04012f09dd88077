"""The documentation's reference tables are generated from the code (tools/docs_reference.py, an
MkDocs hook): each holds every field of its model with a description, so a setting, a key or a
metric cannot be added without its documentation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel
from tools import docs_reference

from tests.server import ROOT
from tracos_sync.app import AppSettings
from tracos_sync.config import EnvSettings
from tracos_sync.connectors.client_erp.files import FolderSettings
from tracos_sync.connectors.client_erp.files.sftp.settings import SftpFolderSettings
from tracos_sync.connectors.declarative_http.present_settings import HttpSettings
from tracos_sync.integrations import IntegrationsTable, IntegrationTable, TracosTable
from tracos_sync.mapping.spec import (
    FieldSpec,
    FieldsSpec,
    FieldStatusSpec,
    FlagStatusSpec,
    MappingSpec,
)
from tracos_sync.pipeline import RunStats
from tracos_sync.watch_metrics import Metrics


def row(table: str, key: str) -> str:
    """The table row of ``key`` (first cell), or fail."""
    found = [line for line in table.splitlines() if line.startswith(f"| `{key}` |")]
    assert len(found) == 1, f"{key} has {len(found)} rows in:\n{table}"
    return found[0]


def test_every_connector_settings_class_is_found_through_the_entry_points() -> None:
    found: dict[str, list[type]] = {}
    for name, settings in docs_reference.connector_settings():
        found.setdefault(name, []).append(settings)
    # The folder connector has two: folders on this host, and folders on an SFTP server.
    assert found["files"] == [FolderSettings, SftpFolderSettings]
    assert found["http"] == [HttpSettings]


@pytest.mark.parametrize(
    "settings", [AppSettings, FolderSettings, SftpFolderSettings, HttpSettings]
)
def test_every_settings_field_has_a_description(settings: type[EnvSettings]) -> None:
    undocumented = [name for name, info in settings.model_fields.items() if not info.description]
    assert not undocumented, f"{settings.__name__}: no description for {undocumented}"


def test_the_settings_table_holds_every_setting_with_its_default_and_meaning() -> None:
    reference = docs_reference.settings_reference()
    for _, settings in [("core", AppSettings), *docs_reference.connector_settings()]:
        table = docs_reference.fields_table(settings, variables=True)
        assert table in reference, f"{settings.__name__} is not in the settings reference"
        for name, info in settings.model_fields.items():
            line = row(table, name.upper())
            assert docs_reference._cell(str(info.description)) in line
            default = info.default
            if isinstance(default, int | float | str) and not isinstance(default, bool):
                assert f"`{default}`" in line, f"{name.upper()}: default {default!r} not shown"


@pytest.mark.parametrize(
    ("model", "prefix"),
    [
        (IntegrationsTable, ""),
        (IntegrationTable, ""),
        (TracosTable, "tracos."),
    ],
)
def test_the_integrations_table_holds_every_key(model: type[BaseModel], prefix: str) -> None:
    table = docs_reference.integrations_reference()
    for name, info in model.model_fields.items():
        assert info.description, f"{model.__name__}.{name} has no description"
        row(table, prefix + name)


@pytest.mark.parametrize(
    ("model", "prefix"),
    [
        (MappingSpec, ""),
        (FieldsSpec, "fields."),
        (FieldSpec, "fields.<name>."),
        (FlagStatusSpec, "status."),
        (FieldStatusSpec, "status."),
    ],
)
def test_the_mapping_table_holds_every_key(model: type[BaseModel], prefix: str) -> None:
    table = docs_reference.mapping_reference()
    for name, info in model.model_fields.items():
        assert info.description, f"{model.__name__}.{name} has no description"
        assert f"| `{prefix}{name}` |" in table


def test_the_metrics_table_holds_every_metric() -> None:
    table = docs_reference.metrics_reference()
    for family in Metrics().registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        assert family.documentation in row(table, family.name + suffix)


def test_a_field_without_a_description_fails_the_table() -> None:
    class Undocumented(EnvSettings):
        documented: int = 1
        """It has one."""
        forgotten: int = 2

    with pytest.raises(docs_reference.UndocumentedField, match=r"Undocumented\.forgotten"):
        docs_reference.fields_table(Undocumented, variables=True)


def test_every_summary_key_is_in_the_summary_reference() -> None:
    page = (ROOT / "docs/reference/output.md").read_text()
    for name in RunStats().as_fields():
        assert f"| `{name}` |" in page, f"summary key {name} is not documented"


def test_every_generated_table_is_in_a_page() -> None:
    names = {
        match.group("name")
        for page in (ROOT / "docs").rglob("*.md")
        for match in docs_reference.MARKER.finditer(page.read_text())
    }
    assert names == set(docs_reference.GENERATORS)
    with pytest.raises(KeyError, match="unknown generated table"):
        docs_reference.expand("<!-- generated: nothing -->\n<!-- end generated -->")


def test_the_tables_the_pages_keep_are_the_code_s() -> None:
    stale = [str(page.relative_to(ROOT)) for page in docs_reference.stale_pages(ROOT / "docs")]
    assert not stale, f"{stale}: a generated table differs from the code; run make docs-tables"


def test_generated_tables_are_well_formed_markdown() -> None:
    for generate in docs_reference.GENERATORS.values():
        for table in re.split(r"\n\n+", generate()):
            lines = [line for line in table.splitlines() if line.startswith("| ")]
            widths = {line.count(" | ") for line in lines}
            assert len(widths) <= 1, f"ragged table:\n{table}"


def test_the_source_map_holds_every_module_with_its_job() -> None:
    table = docs_reference.source_map()
    package = ROOT / "src" / "tracos_sync"
    for module in package.rglob("*.py"):
        name = module.relative_to(ROOT / "src").as_posix()
        if module.name == "__init__.py":
            name = f"{module.parent.relative_to(ROOT / 'src').as_posix()}/"
        cells = row(table, name).split(" | ")
        assert cells[1].strip(" |"), f"{name} has no job in the source map"
    assert "runs.py` | The owner of a run |" in table  # the first sentence, cut where it ends


def test_a_module_without_a_docstring_fails_the_source_map(tmp_path: Path) -> None:
    module = tmp_path / "nameless.py"
    module.write_text("x = 1\n")
    with pytest.raises(docs_reference.UndocumentedField):
        docs_reference.module_job(module)
