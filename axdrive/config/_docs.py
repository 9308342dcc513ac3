"""The config's JSON Schema and Markdown reference, generated from the table.

``docs/config-reference.md`` is :func:`markdown_reference` verbatim; a test
fails when it is stale (regenerate with ``make docs``).
"""

from __future__ import annotations

__all__ = ["json_schema", "markdown_reference"]

from typing import Any

from ._enums import ENUMS
from ._property import Property
from ._table import PROPERTIES, SECTIONS


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a config file."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://axdrive.invalid/schemas/compiler-config.json",
        "title": "axdrive CompilerConfig",
        "description": "A config file for axdrive (TOML, YAML or JSON): any subset of the properties.",
        "type": "object",
        "additionalProperties": False,
        "properties": {p.name: p.json_schema() for p in PROPERTIES},
    }


def _default(p: Property) -> str:
    value = p.plain(p.default)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:_}"
    return str(value)


def markdown_reference() -> str:
    """The Markdown reference of every property, section by section, and of the enums."""
    out = [
        "# Configuration reference",
        "",
        "Generated from `axdrive/config/_table.py` by `axdrive config docs` (`make docs`); do not edit by hand.",
        "",
        "Set properties in a TOML, YAML or JSON file (`--config FILE`), one at a time on the command line",
        "(`--set NAME=VALUE`; lists as `B,K`, null as `null`), or as attributes of `axdrive.CompilerConfig`.",
        "Every value is checked when it is set; rules between properties are checked when a file is loaded",
        "and before a compile. `axdrive config validate FILE` prints every problem of a file at once;",
        "`axdrive config schema` prints the JSON Schema.",
        "",
        f"{len(PROPERTIES)} properties.",
        "",
    ]
    for section in SECTIONS:
        props = [p for p in PROPERTIES if p.section == section]
        out += [f"## {section}", "", "| property | type | default | allowed | what it does |", "|---|---|---|---|---|"]
        for p in props:
            doc = p.doc.replace("|", "\\|")
            out.append(f"| `{p.name}` | {p.type_name} | `{_default(p)}` | {p.allowed()} | {doc} |")
        out.append("")
    out += ["## Enumerations", ""]
    for enum in ENUMS:
        doc = (enum.__doc__ or "").strip().splitlines()[0] if enum.__doc__ else ""
        values = ", ".join(f'`"{m.value}"`' for m in enum)
        out.append(f"- **{enum.__name__}**: {values}. {doc}")
    out.append("")
    return "\n".join(out)
