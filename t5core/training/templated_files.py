"""Local files rendered through a prompt template (t5core.templates) into a trainable task.

`scripts/train.py --train_file=data.jsonl --template=classification
--template_args='{"label_words": ["negative", "positive"]}'` reads every row (JSONL objects, or
TSV with a header), renders it as {"inputs", "targets"}, and errors name the file and line.
"""

from __future__ import annotations

import json

from t5core import templates as tpl

TEMPLATES = {
    "classification": tpl.Classification,
    "ner": tpl.NamedEntities,
    "qa": tpl.QuestionAnswering,
    "translation": tpl.Translation,
    "summarization": tpl.Summarization,
    "dialogue": tpl.Dialogue,
}
DEFAULT_METRICS = {"classification": ["accuracy", "f1_macro"], "ner": ["entity_f1"],
                   "qa": ["squad"], "translation": ["bleu"], "summarization": ["rouge"],
                   "dialogue": ["bleu"]}


def make_template(name, args_json="", instruction=False, seed=0):
    if name not in TEMPLATES:
        raise ValueError(f"--template={name!r}: expected one of {', '.join(TEMPLATES)}")
    try:
        args = json.loads(args_json) if args_json else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"--template_args is not valid JSON: {err.msg}") from None
    try:
        template = TEMPLATES[name](**args)
    except TypeError as err:
        raise ValueError(f"--template_args for {name}: {err}") from None
    return tpl.Instruction(template, seed=seed) if instruction else template


def read_rows(path):
    """Rows of a JSONL file or a TSV file with a header, each tagged with _source and _line."""
    from t5core.data.sources import jsonl_objects, tsv_rows

    if path.endswith((".tsv", ".tsv.gz")):
        header, rows = tsv_rows(path)
        return [{**dict(zip(header, cells)), "_source": path, "_line": n} for n, cells in rows]
    return [{**row, "_source": path, "_line": n} for n, row in jsonl_objects(path)]


def templated_task(train_file, eval_file, template, lengths, metrics=()):
    """A Task of rendered examples; the template raises on bad rows, naming file and line."""
    from t5core.data.builtin_tasks import TOKENIZE
    from t5core.data.sources import ListSource
    from t5core.data.tasks import Task

    splits = {"train": train_file}
    if eval_file:
        splits["validation"] = eval_file
    examples = {split: [template(row) for row in read_rows(path)]
                for split, path in splits.items()}
    kind = getattr(template, "task_type", "")
    return Task(name=f"template:{kind}", source=ListSource(examples),
                preprocessors=list(TOKENIZE), output_lengths=lengths,
                metrics=list(metrics) or DEFAULT_METRICS.get(kind, []))
