"""Local TSV/JSONL files as a Task: fields read as they are (`file_task`) or rendered through a
prompt template (`templated_task`)."""

from __future__ import annotations

import os

from t5core.data.builtin_tasks import TOKENIZE
from t5core.data.sources import JsonlSource, ListSource, Source, TsvSource
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


# The source that reads a data file, by its suffix (before an optional .gz).
FORMATS = {".tsv": TsvSource, ".jsonl": JsonlSource, ".json": JsonlSource}


def file_format(path: str) -> type[TsvSource] | type[JsonlSource]:
    """TsvSource or JsonlSource: a data file's reader by its own suffix (optionally .gz)."""
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
        self.check_split(split)
        return self.sources[split].get_dataset(split, data_dir, counter)


def _file_splits(train_file, eval_file):
    return {"train": train_file, **({"validation": eval_file} if eval_file else {})}


def file_task(train_file, eval_file, inputs_field, targets_field, lengths, metrics, labels=()):
    """A Task over local TSV (with a header) or JSONL files, each in the format its suffix names;
    an empty field or a label outside `labels` is an error naming the file and line; without
    `metrics`, a label set is scored as a template's classification is (nothing would rank or
    score it otherwise)."""
    fields = {"inputs": inputs_field, "targets": targets_field}
    check = example_check(labels, fields)
    source = SplitSources({split: file_format(path)({split: path}, fields=fields, check=check)
                           for split, path in _file_splits(train_file, eval_file).items()})
    return Task(name=f"file:{os.path.basename(train_file)}", source=source,
                preprocessors=list(TOKENIZE), output_lengths=lengths,
                metrics=list(metrics) or (DEFAULT_METRICS["classification"] if labels else []))


def read_rows(path):
    """Rows of a JSONL file or a TSV file with a header, each tagged with _source and _line."""
    return [{**row, "_source": path, "_line": n} for n, row in file_format(path).rows(path)]


def templated_task(train_file, eval_file, template, lengths, metrics=()):
    """A Task of rendered examples; the template raises on bad rows, naming file and line.
    Without `metrics`, the template's task type names them (`templates.DEFAULT_METRICS`)."""
    examples = {split: [template(row) for row in read_rows(path)]
                for split, path in _file_splits(train_file, eval_file).items()}
    kind = getattr(template, "task_type", "")
    return Task(name=f"template:{kind}", source=ListSource(examples),
                preprocessors=list(TOKENIZE), output_lengths=lengths,
                metrics=list(metrics) or DEFAULT_METRICS.get(kind, []), template=template)
