"""Local TSV/JSONL files as a Task: each row's fields taken as they are (`file_task`), or rendered
through a prompt template (`templated_task`, t5core.data.templates).

`scripts/train.py --train_file=data.jsonl --template=classification
--template_args='{"label_words": ["negative", "positive"]}'` reads every row (JSONL objects, or
TSV with a header), renders it as {"inputs", "targets"}, and errors name the file and line.
"""

from __future__ import annotations

import os

from t5core.data.builtin_tasks import TOKENIZE
from t5core.data.sources import (JsonlSource, ListSource, Source, TsvSource, jsonl_objects,
                                tsv_rows)
from t5core.data.tasks import Task
from t5core.data.templates import DEFAULT_METRICS
from t5core.errors import DataError


def example_check(labels=(), names=None):
    """Per-example validation of local files: lists or empty text where text belongs, and
    labels outside the label set. names: the file's key/column of each field, for messages."""
    labels = list(labels)
    names = names or {}

    def check(example):
        for field in ("inputs", "targets"):
            name = names.get(field, field)
            if isinstance(example[field], list):
                return f"field {name!r} is a list; a --train_file row needs text there"
            if not example[field].strip():
                return f"empty {field} (field {name!r})"
        if labels and example["targets"] not in labels:
            return f"label {example['targets']!r} is not one of the labels {labels}"
        return None

    return check


# File formats by suffix (before an optional .gz).
FORMATS = {".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def file_format(path: str) -> str:
    """"tsv" or "jsonl": the format of a data file, read from its own suffix (optionally .gz).

    Every reader of a user's data file asks here, so that a .jsonl training file and a .tsv
    evaluation file are each read as what they are.
    """
    suffix = os.path.splitext(path[:-3] if path.endswith(".gz") else path)[1]
    if suffix not in FORMATS:
        raise DataError(f"{path}: unknown data file type {suffix or '(no suffix)'!r}; a data file "
                        "is .tsv (with a header row) or .jsonl (optionally .gz)")
    return FORMATS[suffix]


class SplitSources(Source):
    """One source per split, e.g. a JSONL training file and a TSV evaluation file."""

    def __init__(self, sources):
        self.sources = dict(sources)
        self.splits = tuple(self.sources)

    def get_dataset(self, split, data_dir=None, counter=None):
        if split not in self.sources:
            raise ValueError(f"unknown split {split!r}; this source has {sorted(self.sources)}")
        return self.sources[split].get_dataset(split, data_dir, counter)


def file_task(train_file, eval_file, inputs_field, targets_field, lengths, metrics, labels=()):
    """A Task over local files: TSV (with a header) or JSONL, one example a line, each file in
    the format its suffix names.

    Every example is checked as it is read: an empty field or a label outside `labels` is an
    error naming the file and line.
    """
    files = {"train": train_file}
    if eval_file:
        files["validation"] = eval_file
    fields = {"inputs": inputs_field, "targets": targets_field}
    check = example_check(labels, fields)
    readers = {"tsv": TsvSource, "jsonl": JsonlSource}
    source = SplitSources({split: readers[file_format(path)]({split: path}, fields=fields,
                                                             check=check)
                           for split, path in files.items()})
    return Task(name=f"file:{os.path.basename(train_file)}", source=source,
                preprocessors=list(TOKENIZE), output_lengths=lengths, metrics=list(metrics))


def read_rows(path):
    """Rows of a JSONL file or a TSV file with a header, each tagged with _source and _line."""
    if file_format(path) == "tsv":
        header, rows = tsv_rows(path)
        return [{**dict(zip(header, cells)), "_source": path, "_line": n} for n, cells in rows]
    return [{**row, "_source": path, "_line": n} for n, row in jsonl_objects(path)]


def templated_task(train_file, eval_file, template, lengths, metrics=()):
    """A Task of rendered examples; the template raises on bad rows, naming file and line.
    Without `metrics`, the template's task type names them (`templates.DEFAULT_METRICS`)."""
    splits = {"train": train_file}
    if eval_file:
        splits["validation"] = eval_file
    examples = {split: [template(row) for row in read_rows(path)]
                for split, path in splits.items()}
    kind = getattr(template, "task_type", "")
    return Task(name=f"template:{kind}", source=ListSource(examples),
                preprocessors=list(TOKENIZE), output_lengths=lengths,
                metrics=list(metrics) or DEFAULT_METRICS.get(kind, []))
