"""Tasks (a source, preprocessors, output lengths, metric names), mixtures of tasks, their registry,
and batches of model features from either (`make_model_dataset`)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

import t5core.data.features as features_lib
import t5core.data.preprocessors as prep
from t5core.data.counters import DropCounter
from t5core.data.sources import Source

Preprocessor = Callable[..., tf.data.Dataset]
_INJECTABLE = ("tokenizer", "lengths", "seed", "counter", "keep_text")


def _derive_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + 7_919 * (step + 1)) % (2**31 - 1)


def _accepted(fn) -> set[str]:
    target = fn.func if isinstance(fn, functools.partial) else fn
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return set()
    bound = set(fn.keywords) if isinstance(fn, functools.partial) else set()
    return {p for p in params if p in _INJECTABLE and p not in bound}


@dataclasses.dataclass
class Task:
    """A named text-to-text (or unsupervised) dataset definition.

    Attributes:
      name: registry key.
      source: where raw examples come from (`t5core.data.sources`).
      preprocessors: raw examples -> {"inputs", "targets"} int32 ids with EOS.
      output_lengths: default {"inputs": L, "targets": T}.
      metrics: metric names (t5core.metrics), e.g. "accuracy".
      truncate: cut over-long examples (EOS last); False: one is an error.
      template: the prompt template that rendered the examples, if any: every evaluation scores
        with its `postprocess` and label words (`t5core.evaluation.evaluators`).
    """

    name: str
    source: Source
    preprocessors: Sequence[Preprocessor]
    output_lengths: Mapping[str, int]
    metrics: Sequence[str] = ()
    truncate: bool = True
    description: str = ""
    template: object = None
    counter: DropCounter = dataclasses.field(default_factory=DropCounter, repr=False)

    @property
    def splits(self) -> Sequence[str]:
        return self.source.splits

    def get_dataset(self, split: str, tokenizer, *, lengths: Mapping[str, int] | None = None,
                    data_dir: str | None = None, shuffle: bool = False, seed: int = 0,
                    num_epochs: int | None = 1, shuffle_buffer_size: int = 10_000,
                    keep_text: bool = False, overlong: str = "cut",
                    counter: DropCounter | None = None) -> tf.data.Dataset:
        """Token examples {"inputs", "targets"} (int32, EOS appended) of one split. `shuffle`
        is seeded and per epoch (whole for a known size up to 1M, else shuffle_buffer_size);
        num_epochs=None repeats; keep_text keeps the `*_pretokenized` strings; overlong: see
        `preprocessors.truncate`; `counter` defaults to the task's."""
        lengths = dict(lengths or self.output_lengths)
        ds = self.source.get_dataset(split, data_dir=data_dir, counter=self.counter)
        if shuffle:
            size = int(ds.cardinality())
            buffer = size if 0 < size <= 1_000_000 else shuffle_buffer_size
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        if num_epochs != 1:
            ds = ds.repeat(num_epochs)
        available = {"tokenizer": tokenizer, "lengths": lengths, "counter": self.counter,
                     "keep_text": keep_text}
        for i, fn in enumerate(self.preprocessors):
            available["seed"] = _derive_seed(seed, i)
            ds = fn(ds, **{k: available[k] for k in _accepted(fn)})
        if self.truncate:
            ds = prep.truncate(ds, {k: v for k, v in lengths.items() if k in ("inputs", "targets")},
                               counter=counter or self.counter, overlong=overlong)
        return ds

    def __hash__(self):
        return hash(self.name)


@dataclasses.dataclass
class Mixture:
    """Tasks sampled by rate: [(task or task name, rate), ...]; rates are normalized."""

    name: str
    tasks: Sequence[tuple[str | Task, float]]
    lengths: Mapping[str, int] | None = None  # default: the largest of the tasks' output_lengths
    metrics = ()  # no metrics of its own: a mixture is trained on, its tasks are scored

    @property
    def output_lengths(self) -> dict[str, int]:
        if self.lengths:
            return dict(self.lengths)
        out: dict[str, int] = {}
        for task, _ in self.resolved():
            for k, v in task.output_lengths.items():
                out[k] = max(out.get(k, 0), v)
        return out

    def resolved(self) -> list[tuple[Task, float]]:
        out = [(get_task(t) if isinstance(t, str) else t, float(r)) for t, r in self.tasks]
        if not out or any(r < 0 for _, r in out) or sum(r for _, r in out) <= 0:
            raise ValueError(f"mixture {self.name!r}: rates must be >= 0 with a positive sum")
        return out

    def get_dataset(self, split: str, tokenizer, *, lengths=None, shuffle=True, seed: int = 0,
                    num_epochs=None, keep_text: bool = False, **options) -> tf.data.Dataset:
        """A stream sampling task i with probability rate_i / sum: endless (each task repeated)
        when num_epochs is None, else each task's examples read num_epochs times, drawn until
        every task is exhausted (an evaluation sees each example once). `options` (data_dir,
        shuffle_buffer_size, overlong, counter) go to each Task."""
        tasks = self.resolved()
        lengths = dict(lengths or self.output_lengths)
        datasets = []
        for i, (task, _) in enumerate(tasks):
            ds = task.get_dataset(split, tokenizer, lengths=lengths, shuffle=shuffle,
                                  seed=_derive_seed(seed, 1000 + i), num_epochs=num_epochs,
                                  keep_text=keep_text, **options)
            keys = ("inputs", "targets") + (("inputs_pretokenized", "targets_pretokenized")
                                            if keep_text else ())
            datasets.append(ds.map(lambda x, keys=keys: {k: x[k] for k in keys if k in x}))
        total = sum(r for _, r in tasks)
        return tf.data.Dataset.sample_from_datasets(
            datasets, weights=[r / total for _, r in tasks], seed=seed, stop_on_empty_dataset=False)


# ----------------------------------------------------------------------------- registry

_TASKS: dict[str, Task] = {}
_MIXTURES: dict[str, Mixture] = {}


def register_task(task: Task, overwrite: bool = False) -> Task:
    if not overwrite and (task.name in _TASKS or task.name in _MIXTURES):
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def register_mixture(mixture: Mixture, overwrite: bool = False) -> Mixture:
    if not overwrite and (mixture.name in _TASKS or mixture.name in _MIXTURES):
        raise ValueError(f"mixture {mixture.name!r} is already registered")
    _MIXTURES[mixture.name] = mixture
    return mixture


def get_task(name: str) -> Task:
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; registered: {sorted(_TASKS)}")
    return _TASKS[name]


def get(name: str) -> Task | Mixture:
    """A task or a mixture by name."""
    if name in _TASKS:
        return _TASKS[name]
    if name in _MIXTURES:
        return _MIXTURES[name]
    raise KeyError(f"unknown task or mixture {name!r}; tasks: {sorted(_TASKS)}, "
                   f"mixtures: {sorted(_MIXTURES)}")


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def list_mixtures() -> list[str]:
    return sorted(_MIXTURES)


# ----------------------------------------------------------------------------- model rows


def make_model_dataset(task_or_name, split: str, tokenizer, *, batch_size: int,
                       lengths: Mapping[str, int] | None = None, pack: bool = False,
                       shuffle: bool = True, seed: int = 0, num_epochs: int | None = None,
                       data_dir: str | None = None, drop_remainder: bool = True,
                       prefetch: bool = True,
                       decoder_start_token_id: int = 0, overlong: str = "cut",
                       counter: DropCounter | None = None) -> tf.data.Dataset:
    """Batches of model features from a task or mixture, each decoder row from the start id."""
    task = get(task_or_name) if isinstance(task_or_name, str) else task_or_name
    lengths = dict(lengths or task.output_lengths)
    ds = task.get_dataset(split, tokenizer, lengths=lengths, data_dir=data_dir, shuffle=shuffle,
                          seed=seed, num_epochs=num_epochs, overlong=overlong, counter=counter)
    ds = features_lib.to_model_features(ds, lengths, pack=pack,
                                        decoder_start_token_id=decoder_start_token_id)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


def task_examples(task, split, tokenizer, lengths, data_dir=None, max_examples=0,
                  inputs_as_text=False):
    """(input ids, target texts) of a split, in order, up to max_examples (0: all);
    inputs_as_text gives input texts (for prompts)."""
    dataset = task.get_dataset(split, tokenizer, lengths=lengths, data_dir=data_dir,
                               keep_text=True)
    if max_examples:
        dataset = dataset.take(max_examples)
    inputs, targets = [], []
    for example in dataset.as_numpy_iterator():
        inputs.append(example["inputs_pretokenized"].decode("utf-8") if inputs_as_text
                      else example["inputs"].tolist())
        targets.append(example["targets_pretokenized"].decode("utf-8"))
    return inputs, targets
