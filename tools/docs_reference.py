"""Reference tables generated from the code, so the documentation cannot drift from it.

A page holds each table between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``.
As an MkDocs hook (``hooks:`` in mkdocs.yml) it puts the table as the code has it there when the
site is built, so the site is always current. The pages keep a copy too, so that they read on
the repository browser: ``python tools/docs_reference.py`` (``make docs-tables``) rewrites it,
and a unit test fails while a committed copy differs from the code. The tables come from the
pydantic models (settings, integrations file, mapping) and the metrics registry; every field's
meaning is its description (the docstring under it), and a field without one fails the build.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

MARKER = re.compile(
    r"^<!-- generated: (?P<name>[a-z-]+) -->\n.*?^<!-- end generated -->$", re.MULTILINE | re.DOTALL
)
DOCS = Path(__file__).resolve().parent.parent / "docs"


class UndocumentedField(Exception):
    """A field without a description: its table would have a hole."""


Schema = dict[str, Any]
_RANGE = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _resolve(prop: Schema, defs: Schema) -> Schema:
    if "$ref" in prop:
        return {
            **defs[prop["$ref"].rsplit("/", 1)[-1]],
            **{k: v for k, v in prop.items() if k != "$ref"},
        }
    return prop


def _type(prop: Schema, defs: Schema) -> str:
    """A JSON Schema type as a reader says it: ``integer``, ``path or unset``, ``table``."""
    if "anyOf" in prop:
        return " or ".join(_type(_resolve(p, defs), defs) for p in prop["anyOf"])
    if "oneOf" in prop:  # a tagged union of tables (each listed apart)
        return "table"
    if "$ref" in prop:
        return _type(_resolve(prop, defs), defs)
    kind = prop.get("type")
    if kind == "null":
        return "unset"
    if kind == "array":
        return f"list of {_type(_resolve(prop.get('items', {}), defs), defs)}"
    if kind == "object":
        return "table"
    if "enum" in prop:
        return "text"
    fmt = {"path": "path", "uri": "URL", "password": "secret text"}.get(prop.get("format", ""))
    return fmt or {"string": "text", "number": "number", "integer": "integer"}.get(
        str(kind), str(kind)
    )


def _allowed(prop: Schema, defs: Schema) -> str:
    """The values or range a property allows."""
    if "anyOf" in prop:
        return "; ".join(filter(None, (_allowed(_resolve(p, defs), defs) for p in prop["anyOf"])))
    prop = _resolve(prop, defs)
    if "enum" in prop:
        return ", ".join(f"`{value}`" for value in prop["enum"])
    found = [f"{sign} {prop[key]:,}" for key, sign in _RANGE.items() if key in prop]
    if "maxLength" in prop:
        found.append(f"{prop.get('minLength', 0)} to {prop['maxLength']} characters")
    elif prop.get("minLength") == 1:
        found.append("not empty")
    if "pattern" in prop:
        found.append(f"matches `{prop['pattern']}`")
    if "x-rule" in prop:  # a rule its validator checks, said in words
        found.append(str(prop["x-rule"]))
    if prop.get("type") == "object":
        values = prop.get("patternProperties") or {}
        for value in values.values():
            found.append(f"values: {_allowed(value, defs) or _type(value, defs)}")
    return ", ".join(found)


def _default(name: str, prop: Schema, required: list[str], model: type[BaseModel]) -> str:
    if name in required:
        return "required"
    if "default" not in prop:  # a default factory: its value, which the schema does not show
        made = model.model_fields[name].get_default(call_default_factory=True)
        if isinstance(made, BaseModel):
            shown = made.model_dump(exclude_none=True)
            fields = ", ".join(f"{k} = {json.dumps(v)}" for k, v in shown.items())
            return f"`{{{fields}}}`" if fields else "empty"
        return f"`{made}`" if made else "empty"
    value = prop["default"]
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float) and value >= 1024 * 1024 and value % (1024 * 1024) == 0:
        return f"`{value}` ({value // (1024 * 1024)} MiB)"
    return f"`{value}`"


def fields_table(model: type[BaseModel], *, variables: bool, prefix: str = "") -> str:
    """A markdown table of ``model``'s fields from its JSON Schema: name (upper case for an
    environment variable), type, default, allowed values or range, meaning. Raises
    ``UndocumentedField`` for a field without a description."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = schema.get("required", [])
    key = "variable" if variables else "key"
    rows = [f"| {key} | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for name, prop in schema["properties"].items():
        description = prop.get("description")
        if not description:
            raise UndocumentedField(
                f"{model.__module__}.{model.__name__}.{name} has no description: write a "
                "docstring under the field (it is the documentation's meaning column)"
            )
        shown = name.upper() if variables else prefix + name
        rows.append(
            f"| `{shown}` | {_cell(_type(prop, defs))} | {_default(name, prop, required, model)} | "
            f"{_cell(_allowed(prop, defs))} | {_cell(description)} |"
        )
    return "\n".join(rows)


def connector_settings() -> Iterator[tuple[str, type[BaseModel]]]:
    """Each connector's settings class, found through the ``tracos_sync.connectors`` entry
    points: the settings classes its factory's module uses."""
    from tracos_sync import connectors
    from tracos_sync.config import EnvSettings

    for name in sorted(connectors.available()):
        module = import_module(connectors.load(name).__module__)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, EnvSettings)
                and value is not EnvSettings
            ):
                yield name, value


def settings_reference() -> str:
    from tracos_sync.app import AppSettings

    parts = [
        "### Core settings (every deployment)",
        "",
        fields_table(AppSettings, variables=True),
    ]
    for name, settings in connector_settings():
        parts += [
            "",
            f"### Connector `{name}` (`{settings.__name__}`)",
            "",
            f"With `CLIENT_CONNECTOR={name}`, or in an integration's `settings` table "
            "(the same names, any case).",
            "",
            fields_table(settings, variables=True),
        ]
    return "\n".join(parts)


def integrations_reference() -> str:
    from tracos_sync.integrations import IntegrationsTable, IntegrationTable, TracosTable

    return "\n\n".join(
        [
            fields_table(IntegrationsTable, variables=False),
            "Each `[[integration]]` table:",
            fields_table(IntegrationTable, variables=False),
            "Its `tracos` table:",
            fields_table(TracosTable, variables=False, prefix="tracos."),
        ]
    )


def mapping_reference() -> str:
    from tracos_sync.mapping.spec import (
        FieldSpec,
        FieldsSpec,
        FieldStatusSpec,
        FlagStatusSpec,
        MappingSpec,
    )

    return "\n\n".join(
        [
            "Under `[mapping]`:",
            fields_table(MappingSpec, variables=False),
            "Under `[mapping.fields]` (each a client path, or a table of the keys below it):",
            fields_table(FieldsSpec, variables=False, prefix="fields."),
            fields_table(FieldSpec, variables=False, prefix="fields.<name>."),
            "Under `[mapping.status]`, either flags:",
            fields_table(FlagStatusSpec, variables=False, prefix="status."),
            "or one field with a table of values:",
            fields_table(FieldStatusSpec, variables=False, prefix="status."),
        ]
    )


def api_description_reference() -> str:
    """The declarative HTTP connector's API description (``[api]``), key by key."""
    from tracos_sync.connectors.declarative_http import (
        auth_spec,
        description,
        paging_spec,
        transport_spec,
    )

    parts = [
        "Top level:",
        fields_table(description.ApiDescription, variables=False),
        "`[read]`:",
        fields_table(description.ReadSpec, variables=False, prefix="read."),
        "`[write]` and `[write.version]`:",
        fields_table(description.WriteSpec, variables=False, prefix="write."),
        fields_table(description.VersionSpec, variables=False, prefix="write.version."),
        "`[tls]`:",
        fields_table(transport_spec.TlsSpec, variables=False, prefix="tls."),
    ]
    for title, prefix, models in (
        ("`[auth]`, by `type`", "auth.", auth_spec.AuthSpec),
        ("`[read.paging]`, by `style`", "read.paging.", paging_spec.PagingSpec),
    ):
        parts.append(f"{title}:")
        for model in get_args(get_args(models)[0]):
            parts.append(fields_table(model, variables=False, prefix=prefix))
    return "\n\n".join(parts)


def metrics_reference() -> str:
    from tracos_sync.watch_metrics import Metrics

    rows = ["| metric | type | meaning |", "|---|---|---|"]
    for family in Metrics().registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        rows.append(f"| `{name}` | {family.type} | {_cell(family.documentation)} |")
    return "\n".join(rows)


SOURCE = DOCS.parent / "src"


def _first_sentence(text: str) -> str:
    """Up to the first ``.`` or ``:`` that ends a sentence outside parentheses."""
    depth = 0
    for at, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".:" and (at + 1 == len(text) or text[at + 1].isspace()):
            return text[: at + 1].rstrip(":")
    return text


def module_job(module: Path) -> str:
    """A module's job: the first sentence of its docstring (a module without one fails)."""
    doc = ast.get_docstring(ast.parse(module.read_text(encoding="utf-8")))
    if not doc:
        raise UndocumentedField(f"{module.name} has no docstring: say its job")
    return _cell(_first_sentence(doc.split("\n\n", 1)[0]).replace("``", "`"))


def source_map() -> str:
    """Every module of the package with its job, in the tree's order."""
    rows = ["| module | its job |", "|---|---|"]
    package = SOURCE / "tracos_sync"
    for module in sorted(package.rglob("*.py"), key=lambda m: m.relative_to(SOURCE).parts):
        name = module.relative_to(SOURCE).as_posix()
        if module.name == "__init__.py":
            name = f"{module.parent.relative_to(SOURCE).as_posix()}/"
        rows.append(f"| `{name}` | {module_job(module)} |")
    return "\n".join(rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "source-map": source_map,
    "settings": settings_reference,
    "integrations": integrations_reference,
    "mapping": mapping_reference,
    "metrics": metrics_reference,
    "api-description": api_description_reference,
}


def expand(markdown: str) -> str:
    """``markdown`` with each generated block holding its table as the code has it now; an
    unknown name is an error."""

    def block(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in GENERATORS:
            raise KeyError(f"unknown generated table {name!r} (known: {', '.join(GENERATORS)})")
        return f"<!-- generated: {name} -->\n\n{GENERATORS[name]()}\n\n<!-- end generated -->"

    return MARKER.sub(block, markdown)


def stale_pages(docs: Path = DOCS) -> list[Path]:
    """The pages whose generated blocks differ from what the code generates now."""
    return [
        page for page in sorted(docs.rglob("*.md")) if expand(page.read_text()) != page.read_text()
    ]


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: the page with its generated tables as the code has them now."""
    return expand(markdown)


def main() -> int:
    """Rewrite the generated blocks of every page under docs/; print the pages changed."""
    for page in stale_pages():
        page.write_text(expand(page.read_text()))
        print(f"updated {page.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
