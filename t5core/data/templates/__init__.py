"""Prompt templates: a row of a user's file (a dict) -> {"inputs": str, "targets": str};
`make_template` builds the one --template, --template_args and --instruction name."""

from __future__ import annotations

import dataclasses

from t5core.data.templates.fields import Template
from t5core.data.templates.instructions import INSTRUCTIONS, Instruction
from t5core.data.templates.task_types import (Classification, Dialogue, NamedEntities,
                                              QuestionAnswering, Summarization, Translation)
from t5core.errors import FlagError, json_kind
from t5core.file_reads import parse_json

# --template's names: each template's task type.
TEMPLATES = {cls.task_type: cls for cls in (Classification, NamedEntities, QuestionAnswering,
                                            Translation, Summarization, Dialogue)}
# The metrics of a templated task when --metrics names none.
DEFAULT_METRICS = {"classification": ["accuracy", "f1_macro"], "ner": ["entity_f1"],
                   "qa": ["squad"], "translation": ["bleu"], "summarization": ["rouge"],
                   "dialogue": ["bleu"]}


def make_template(name, args_json="", instruction=False, seed=0):
    """`--template` with `--template_args` (JSON), in seeded Flan phrasings with `--instruction`.

    Raises:
      FlagError: an unknown template, or arguments not a JSON object, missing or unknown.
    """
    if name not in TEMPLATES:
        raise FlagError(f"--template={name!r}: expected one of {', '.join(TEMPLATES)}")
    args = parse_json(args_json, "--template_args", FlagError) if args_json else {}
    if not isinstance(args, dict):
        raise FlagError(f"--template_args must be a JSON object of {name}'s arguments, got "
                        f"{json_kind(args)}")
    accepted = {f.name: f for f in dataclasses.fields(TEMPLATES[name]) if f.init}
    unknown = sorted(set(args) - set(accepted))
    missing = [n for n, f in accepted.items() if n not in args and
               f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if unknown or missing:
        problems = ([f"unknown {', '.join(unknown)}"] if unknown else []) + (
            [f"missing {', '.join(missing)}"] if missing else [])
        raise FlagError(f"--template_args for --template={name}: {'; '.join(problems)} (it "
                        f"takes {', '.join(accepted)})")
    try:
        template = TEMPLATES[name](**args)
    except (TypeError, ValueError) as err:
        raise FlagError(f"--template_args for --template={name}: {err}") from None
    return Instruction(template, seed=seed) if instruction else template


__all__ = ["Classification", "DEFAULT_METRICS", "Dialogue", "INSTRUCTIONS", "Instruction",
           "NamedEntities", "QuestionAnswering", "Summarization", "TEMPLATES", "Template",
           "Translation", "make_template"]
