"""Where examples come from: TFDS, local/remote text files (TSV, JSONL, parallel text, CoNLL;
`.gz` read transparently) and Python lists."""

from __future__ import annotations

import csv
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from t5core.data.counters import DropCounter
from t5core.errors import DataError, T5CoreError, json_kind
from t5core.file_reads import bounded_lines, parse_json, present

log = logging.getLogger(__name__)

# csv's default cap on a cell (128 KiB) would refuse long texts; the readers' own budgets
# (file_reads.BUDGETS) bound what is read.
csv.field_size_limit(sys.maxsize)

Paths = str | Sequence[str]


class DatasetNotPreparedError(T5CoreError, FileNotFoundError):
    """A TFDS dataset has no prepared data under the given data_dir."""


class Source:
    """Base class: `get_dataset(split, data_dir=None, counter=None) -> tf.data.Dataset`."""

    splits: Sequence[str] = ()

    def get_dataset(self, split: str, data_dir: str | None = None,
                    counter: DropCounter | None = None) -> tf.data.Dataset:
        raise NotImplementedError

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; this source has {sorted(self.splits)}")


# ----------------------------------------------------------------------------- TFDS


class TfdsSource(Source):
    """A TensorFlow Datasets dataset. Offline use: prepare it once elsewhere
    (`tfds.builder(name).download_and_prepare()`) and pass that directory as `data_dir`."""

    def __init__(self, name: str, splits: Mapping[str, str] | None = None,
                 data_dir: str | None = None):
        self.name = name
        self.split_map = dict(splits or {})
        self.splits = tuple(self.split_map) or ("train", "validation", "test")
        self.data_dir = data_dir

    def get_dataset(self, split, data_dir=None, counter=None):
        del counter
        import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
        data_dir = data_dir or self.data_dir
        where = data_dir or "the default TFDS directory (~/tensorflow_datasets)"
        try:
            builder = tfds.builder(self.name, data_dir=data_dir)
        except Exception as e:  # unknown name, missing optional dependency, ...
            raise DatasetNotPreparedError(
                f"TFDS dataset {self.name!r} cannot be opened ({type(e).__name__}: {e}).") from e
        tfds_split = self.split_map.get(split, split)
        try:
            return builder.as_dataset(split=tfds_split, shuffle_files=False)
        except AssertionError as e:  # TFDS's way of saying "not prepared"
            raise DatasetNotPreparedError(
                f"TFDS dataset {self.name!r} is not prepared in {where}. Prepare it on a machine "
                f"with network access: `tfds.builder({self.name!r}, data_dir=DIR)"
                f".download_and_prepare()`, then pass that DIR as --data_dir (data_dir=DIR)."
            ) from e
        except ValueError as e:  # unknown split
            raise ValueError(f"TFDS dataset {self.name!r} has no split {tfds_split!r}: {e}") from e


# ----------------------------------------------------------------------------- file reading


def resolve_path(path: str, data_dir: str | None) -> str:
    """Relative paths are taken relative to data_dir (the --data_dir flag)."""
    if data_dir and not os.path.isabs(path) and "://" not in path:
        path = os.path.join(data_dir, path)
    return path


def read_lines(path: str) -> list[str]:
    """All lines of a (possibly gzipped, possibly remote) UTF-8 text file, without line endings
    or a leading byte-order mark; FileNotFoundError, or DataError naming path:line."""
    if not present(path):
        raise FileNotFoundError(f"data file not found: {path} (check --data_dir / data_dir)")
    # Decompressed a bounded block at a time; a line past the budget is a DataError naming it.
    # Each line is decoded as it comes, so the file is never held twice (as bytes and as text).
    out = []
    for n, line in enumerate(bounded_lines(path), start=1):
        line = line.removeprefix(b"\xef\xbb\xbf") if n == 1 else line
        if line.startswith(b"\xef\xbb\xbf"):  # it would stay in the first field, unseen
            raise DataError(f"{path}:{n}: a byte-order mark starts the line, as where two files "
                            "were joined; remove it")
        try:
            out.append(line.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{n}: not valid UTF-8 (byte {line[e.start]:#04x} at column "
                             f"{e.start + 1}); re-encode the file as UTF-8") from None
    if not any(line.strip() for line in out):
        raise DataError(f"{path}: file is empty")
    return out


def tsv_rows(path: str, delimiter: str = "\t", columns: Sequence[str] | None = None):
    """(header, [(line number, cells)]) of a delimited file, blank lines skipped; a wrong cell
    count names the line. Cells are quoted as the csv module and pandas write them: a cell that
    begins with a double quote runs to its closing quote (delimiters, line breaks and doubled
    quotes inside are text). A row's line number is that of its first line."""
    lines = read_lines(path)
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter, quotechar='"',
                        doublequote=True, strict=True)
    rows = []
    while True:
        first = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as e:
            if "unquoted field" in str(e):
                raise DataError(f"{path}:{first}: a carriage return (\\r) inside a cell; remove "
                                "it, or quote the cell") from None
            raise DataError(
                f"{path}:{first}: malformed quoted cell ({e}): a cell that begins with a double "
                f"quote ends at its closing quote, and a quote inside it is written twice "
                f'(""), as the csv module and pandas write them') from None
        if cells is None:
            break
        if not any(cell.strip() for cell in cells):
            continue  # a blank line is not an example
        rows.append((first, cells))
    if columns:
        header = list(columns)
    elif rows:
        header = rows.pop(0)[1]
    else:
        raise DataError(f"{path}: file is empty")
    for n, cells in rows:
        if len(cells) != len(header):
            raise DataError(f"{path}:{n}: malformed line: expected {len(header)} "
                             f"{delimiter!r}-separated fields {header}, found {len(cells)}")
    return header, rows


def jsonl_objects(path: str):
    """[(line number, dict)] of a JSONL file, blank lines skipped, numbers kept as their text;
    a malformed line, a non-object, NaN/Infinity or a repeated key is an error naming the line."""
    out = []
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        obj = parse_json(line, f"{path}:{n}", DataError, parse_int=str, parse_float=str)
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, found {json_kind(obj)}")
        out.append((n, obj))
    return out


class _FileSource(Source):
    """Shared split -> files logic for the eagerly parsed formats."""

    def __init__(self, files: Mapping[str, Paths], check=None):
        self.files = {k: [v] if isinstance(v, str) else list(v) for k, v in files.items()}
        self.splits = tuple(self.files)
        # check(example) -> None, or a problem that is raised naming the file and line.
        self.check = check

    def _checked(self, path, line_number, example):
        problem = self.check(example) if self.check else None
        if problem:
            raise DataError(f"{path}:{line_number}: {problem}")
        return example

    def _parse_file(self, path: str) -> list[dict]:
        raise NotImplementedError

    def get_dataset(self, split, data_dir=None, counter=None):
        self.check_split(split)
        paths = [resolve_path(p, data_dir) for p in self.files[split]]
        examples = []
        for path in paths:
            examples.extend(self._parse_file(path))
        return _drop_empty_and_build(examples, ", ".join(paths), counter)


def _drop_empty_and_build(examples, where: str, counter) -> tf.data.Dataset:
    """Drops (and counts) examples with an empty string/list field, then builds the dataset."""
    kept = [ex for ex in examples if all(v.strip() if isinstance(v, str) else len(v)
                                         for v in ex.values() if isinstance(v, (str, list, tuple)))]
    dropped = len(examples) - len(kept)
    if dropped:
        log.warning("dropped %d empty example(s) of %d from %s", dropped, len(examples), where)
    if counter is not None:
        counter.add("empty_examples", dropped)
    if not kept:
        raise DataError(f"no non-empty examples in {where}")
    return examples_to_dataset(kept)


def examples_to_dataset(examples: Sequence[Mapping]) -> tf.data.Dataset:
    """A list of same-keyed dicts -> dataset; list values become variable-length tensors."""
    keys = list(examples[0])
    columns = {}
    for k in keys:
        values = [ex[k] for ex in examples]
        if values and isinstance(values[0], (list, tuple)):
            flat = [item for v in values for item in v]  # faster than tf.ragged.constant
            columns[k] = tf.RaggedTensor.from_row_lengths(tf.constant(flat),
                                                          [len(v) for v in values])
        else:
            columns[k] = tf.constant(values)
    return tf.data.Dataset.from_tensor_slices(columns)


FieldSpec = str | Sequence[str]  # a column name, or alternative names tried in order


class TsvSource(_FileSource):
    """Delimited text with a header row (or `columns` given): `fields` maps output name -> column,
    or alternative columns tried in order, e.g. `{"sentence": ("sentence", "content")}`."""

    def __init__(self, files: Mapping[str, Paths], fields: Mapping[str, FieldSpec],
                 columns: Sequence[str] | None = None, delimiter: str = "\t", check=None):
        super().__init__(files, check)
        self.fields = dict(fields)
        self.columns = list(columns) if columns else None
        self.delimiter = delimiter

    @staticmethod
    def rows(path):
        """[(line number, {column: cell})] of a tab-separated file with a header row."""
        header, rows = tsv_rows(path)
        return [(n, dict(zip(header, cells))) for n, cells in rows]

    def _parse_file(self, path):
        header, rows = tsv_rows(path, self.delimiter, self.columns)
        index = {}
        for out_name, spec in self.fields.items():
            names = [spec] if isinstance(spec, str) else list(spec)
            found = [n for n in names if n in header]
            if not found:
                raise DataError(f"{path}: missing field {out_name!r} (looked for column "
                                 f"{' or '.join(map(repr, names))}; the header has {header})")
            index[out_name] = header.index(found[0])
        return [self._checked(path, n, {k: cells[i] for k, i in index.items()})
                for n, cells in rows]


class JsonlSource(_FileSource):
    """One JSON object per line; `fields` maps output name -> key (nested keys as "a/b"). A value is
    a string, a number (kept as written) or a list of them (a 1-D string tensor)."""

    def __init__(self, files: Mapping[str, Paths], fields: Mapping[str, str], check=None):
        super().__init__(files, check)
        self.fields = dict(fields)

    rows = staticmethod(jsonl_objects)

    def _parse_file(self, path):
        out = []
        for n, obj in jsonl_objects(path):
            ex = {}
            for out_name, key in self.fields.items():
                value = obj
                for part in key.split("/"):
                    if not isinstance(value, dict) or part not in value:
                        have = sorted(value) if isinstance(value, dict) else json_kind(value)
                        raise DataError(f"{path}:{n}: missing field {key!r} (has {have})")
                    value = value[part]
                items = value if isinstance(value, list) else [value]
                bad = [v for v in items if not isinstance(v, str)]
                if bad:
                    inside = " inside a list" if isinstance(value, list) else ""
                    raise DataError(f"{path}:{n}: field {key!r} is {json_kind(bad[0])}{inside}; "
                                    "expected text (a string or a number)")
                ex[out_name] = value
            out.append(self._checked(path, n, ex))
        return out


class ParallelTextSource(Source):
    """Line-aligned files, one per field: {"train": {"en": "train.en.gz", "de": "train.de.gz"}}."""

    def __init__(self, files: Mapping[str, Mapping[str, str]]):
        self.parallel = {split: dict(f) for split, f in files.items()}
        self.splits = tuple(self.parallel)

    def get_dataset(self, split, data_dir=None, counter=None):
        self.check_split(split)
        columns = {k: read_lines(resolve_path(p, data_dir))
                   for k, p in self.parallel[split].items()}
        sizes = {self.parallel[split][k]: len(v) for k, v in columns.items()}
        if len(set(sizes.values())) != 1:
            raise DataError(
                f"parallel files of split {split!r} have different line counts: {sizes}")
        keys = list(columns)
        examples = [dict(zip(keys, row)) for row in zip(*columns.values())]
        return _drop_empty_and_build(examples, ", ".join(sizes), counter)


class ConllSource(_FileSource):
    """CoNLL `token<TAB>tag` lines, a blank line between sentences -> {"tokens", "tags"} plus the
    string fields `formatter(tokens, tags)` returns (e.g. `builtin_tasks.wnut17_formatter`)."""

    def __init__(self, files: Mapping[str, Paths],
                 formatter: Callable[[list[str], list[str]], Mapping[str, str]] | None = None):
        super().__init__(files)
        self.formatter = formatter

    def _parse_file(self, path):
        sentences, tokens, tags = [], [], []
        for n, line in enumerate(read_lines(path) + [""], start=1):
            if not line.strip():
                if tokens:
                    sentences.append((tokens, tags))
                    tokens, tags = [], []
                continue
            cells = line.split("\t")
            if len(cells) != 2 or not cells[0] or not cells[1].strip():
                raise DataError(
                    f"{path}:{n}: malformed CoNLL line {line!r}: expected token<TAB>tag")
            tokens.append(cells[0])
            tags.append(cells[1].strip())
        out = []
        for toks, tgs in sentences:
            ex = {"tokens": toks, "tags": tgs}
            if self.formatter:
                ex.update(self.formatter(toks, tgs))
            out.append(ex)
        return out


class ListSource(Source):
    """In-memory examples: {"train": [{"inputs": ..., "targets": ...}, ...], ...}."""

    def __init__(self, examples: Mapping[str, Sequence[Mapping]]):
        self.examples = {k: list(v) for k, v in examples.items()}
        self.splits = tuple(self.examples)

    def get_dataset(self, split, data_dir=None, counter=None):
        del data_dir
        self.check_split(split)
        examples = self.examples[split]
        if not examples:
            raise ValueError(f"split {split!r} has no examples")
        keys = set(examples[0])
        for i, ex in enumerate(examples):
            if set(ex) != keys:
                missing = sorted(keys - set(ex)) or sorted(set(ex) - keys)
                raise ValueError(f"example {i} of split {split!r}: missing field(s) {missing} "
                                 f"(example 0 has {sorted(keys)})")
        return _drop_empty_and_build(examples, f"the {split!r} list", counter)
