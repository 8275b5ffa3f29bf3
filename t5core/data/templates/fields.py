"""The Template base class, and field access with errors that point at the data.

A template's field names come from the user's file, so every read names the field and, when the
loader put them in the example, its file and line (keys "_source" and "_line").
"""

from __future__ import annotations

from typing import Any, Mapping

from t5core.errors import DataError, json_kind

Example = Mapping[str, Any]


def where(example: Example) -> str:
    """' (train.tsv line 12)' from the loader's _source/_line keys, or ''."""
    source, line = example.get("_source"), example.get("_line")
    parts = ([] if source is None else [str(source)]) + ([] if line is None else [f"line {line}"])
    return f" ({' '.join(parts)})" if parts else ""


def get_field(example: Example, name: str) -> Any:
    if name not in example:
        present = sorted(k for k in example if not str(k).startswith("_"))
        raise DataError(
            f"template field {name!r} is missing from the example{where(example)}; "
            f"the example has fields {present}"
        )
    return example[name]


def get_text(example: Example, name: str) -> str:
    value = get_field(example, name)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(
            f"template field {name!r} should be text, got {json_kind(value)}{where(example)}"
        )
    return value


def get_texts(example: Example, name: str) -> list[str]:
    """A list of texts (or one string, split on whitespace), e.g. NER tokens or tags."""
    value = get_field(example, name)
    if isinstance(value, str):
        return value.split()
    if not isinstance(value, (list, tuple)):
        raise DataError(
            f"template field {name!r} should be a list of texts or a string, got "
            f"{json_kind(value)}{where(example)}"
        )
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise DataError(
                f"template field {name!r} holds {json_kind(item)}; expected texts{where(example)}"
            )
    return [str(item) for item in value]


def check_target(text: str, example: Example, name: str) -> str:
    if not text.strip():
        raise DataError(f"empty target in field {name!r}{where(example)}")
    return text


def join_nonempty(*parts: str) -> str:
    return " ".join(p for p in parts if p)


class Template:
    """Base: subclasses give input_fields(), target() and render_inputs()."""

    task_type = ""

    def input_fields(self, example: Example) -> dict[str, str]:
        raise NotImplementedError

    def target(self, example: Example) -> str:
        raise NotImplementedError

    def render_inputs(self, fields: Mapping[str, str]) -> str:
        raise NotImplementedError

    def inputs(self, example: Example) -> str:
        return self.render_inputs(self.input_fields(example))

    def __call__(self, example: Example) -> dict[str, str]:
        return {"inputs": self.inputs(example), "targets": self.target(example)}

    def postprocess(self, prediction: str) -> Any:
        return prediction.strip()
