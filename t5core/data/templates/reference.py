"""What each prompt template reads and takes (fields, --template_args, default metrics), for --help
and the README's table (`python -m t5core.data.templates.reference` prints it)."""

from __future__ import annotations

import dataclasses
import json

from t5core.data.templates import DEFAULT_METRICS, TEMPLATES

README_BEGIN = "<!-- template table: python -m t5core.data.templates.reference -->"
README_END = "<!-- end of template table -->"


def _is_field_name(name: str) -> bool:
    return name.endswith(("_field", "_fields"))


def _shown(value) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def arguments(name: str) -> list[dataclasses.Field]:
    """The --template_args a template accepts (those JSON can give: no callables)."""
    return [f for f in dataclasses.fields(TEMPLATES[name])
            if f.init and not callable(f.default)]


def describe(name: str) -> dict[str, str]:
    """{"fields", "arguments", "metrics"}: a template's row of the table, as text."""
    fields, others = [], []
    for f in arguments(name):
        if f.default is dataclasses.MISSING:
            others.append(f"{f.name} (required)")
            continue
        (fields if _is_field_name(f.name) else others).append(f"{f.name}={_shown(f.default)}")
    # A *_field argument names the key read; its default is the key a row needs.
    keys = [f.default for f in arguments(name) if _is_field_name(f.name)]
    keys = [k for key in keys for k in ([key] if isinstance(key, str) else key)]
    return {"fields": ", ".join(keys), "arguments": ", ".join(fields + others),
            "metrics": ", ".join(DEFAULT_METRICS.get(name, []))}


def markdown_table() -> str:
    """The README's table of the templates."""
    lines = ["| `--template` | JSONL fields read (default keys) | `--template_args` (defaults) "
             "| default metrics |", "|---|---|---|---|"]
    for name in TEMPLATES:
        row = describe(name)
        lines.append(f"| `{name}` | {row['fields']} | {row['arguments']} | {row['metrics']} |")
    return "\n".join(lines)


def help_text() -> str:
    """The templates in --help: one line each."""
    return " ".join(f"{name}: fields {row['fields']}; args {row['arguments']}; metrics "
                    f"{row['metrics']}." for name, row in
                    ((name, describe(name)) for name in TEMPLATES))


if __name__ == "__main__":
    print(README_BEGIN)
    print(markdown_table())
    print(README_END)
