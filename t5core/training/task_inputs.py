"""Trainer inputs from a registered task or mixture, or from local TSV/JSONL files."""

from __future__ import annotations

import os

from t5core.training.evaluation import DecodeEvaluator, RankEvaluator
from t5core.training.inputs import pad_batches


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


def file_task(train_file, eval_file, inputs_field, targets_field, lengths, metrics, labels=()):
    """A Task over local files: TSV (with a header) or JSONL, one example a line.

    Every example is checked as it is read: an empty field or a label outside `labels` is an
    error naming the file and line.
    """
    from t5core.data.builtin_tasks import TOKENIZE
    from t5core.data.sources import JsonlSource, TsvSource
    from t5core.data.tasks import Task

    files = {"train": train_file}
    if eval_file:
        files["validation"] = eval_file
    kinds = {os.path.splitext(f[:-3] if f.endswith(".gz") else f)[1] for f in files.values()}
    if len(kinds) != 1 or kinds.pop() not in (".tsv", ".jsonl", ".json"):
        raise ValueError(f"--train_file/--eval_file must both be .tsv or .jsonl (optionally .gz): "
                         f"{', '.join(files.values())}")
    fields = {"inputs": inputs_field, "targets": targets_field}
    kind = TsvSource if train_file.endswith((".tsv", ".tsv.gz")) else JsonlSource
    source = kind(files, fields=fields, check=example_check(labels, fields))
    return Task(name=f"file:{os.path.basename(train_file)}", source=source,
                preprocessors=list(TOKENIZE), output_lengths=lengths, metrics=list(metrics))


def eval_split_of(task):
    splits = getattr(task, "splits", ("validation",))
    for name in ("validation", "test"):
        if name in splits:
            return name
    return None


def task_inputs(task, tokenizer, config, *, data_dir, pack, eval_examples, eval_batch_size=64,
                rank_labels=(), decoder_start_token_id=0):
    """(train dataset, eval dataset or None, evaluator or None) for a Task or Mixture."""
    from t5core.data.tasks import make_model_dataset

    lengths = {"inputs": config.inputs_length, "targets": config.targets_length}
    data_dir = data_dir or None
    train = make_model_dataset(task, "train", tokenizer, batch_size=config.batch_size,
                               lengths=lengths, pack=pack, shuffle=True, seed=config.seed,
                               num_epochs=None, data_dir=data_dir,
                               decoder_start_token_id=decoder_start_token_id)
    split = eval_split_of(task)
    if split is None:
        return train, None, None
    eval_data = pad_batches(make_model_dataset(
        task, split, tokenizer, batch_size=config.batch_size, lengths=lengths, pack=False,
        shuffle=False, seed=config.seed, num_epochs=1, data_dir=data_dir, drop_remainder=False,
        decoder_start_token_id=decoder_start_token_id), config.batch_size)
    evaluator = None
    metrics = list(getattr(task, "metrics", ()))
    if metrics and eval_examples:
        examples = task.get_dataset(split, tokenizer, lengths=lengths, data_dir=data_dir,
                                    keep_text=True).take(eval_examples)
        inputs, targets = [], []
        for example in examples.as_numpy_iterator():
            inputs.append(example["inputs"].tolist())
            targets.append(example["targets_pretokenized"].decode("utf-8"))
        kind = RankEvaluator if rank_labels else DecodeEvaluator
        extra = {"labels": rank_labels} if rank_labels else {}
        evaluator = kind(inputs, targets, tokenizer, metrics, config.inputs_length,
                         config.targets_length, batch_size=eval_batch_size, **extra)
    return train, eval_data, evaluator
