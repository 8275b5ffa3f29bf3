"""Inputs for the classification head: encoder tokens and a label id from the label words."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from t5core.metrics import compute_metrics
from t5core.training.evaluation import pad_rows
from t5core.training.inputs import pad_batches


def _labelled(task, split, tokenizer, lengths, labels, data_dir, shuffle, seed, num_epochs):
    """(encoder tokens, label id) examples; a target outside `labels` is an error naming it."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(labels), tf.range(len(labels))), -1)
    ds = task.get_dataset(split, tokenizer, lengths=lengths, data_dir=data_dir, shuffle=shuffle,
                          seed=seed, num_epochs=num_epochs, keep_text=True)

    def to_features(x):
        label = table.lookup(x["targets_pretokenized"])
        tf.debugging.assert_non_negative(
            label, message=f"{task.name} ({split}): a target is not one of the labels {labels}")
        tokens = x["inputs"][:lengths["inputs"]]
        tokens = tf.pad(tokens, [[0, lengths["inputs"] - tf.shape(tokens)[0]]])
        return {"encoder_input_tokens": tf.ensure_shape(tokens, [lengths["inputs"]]),
                "label": tf.cast(label, tf.int32)}

    return ds.map(to_features, num_parallel_calls=tf.data.AUTOTUNE)


class ClassifierEvaluator:
    """Scores `model.predict` (class ids) as label words with the task's metrics."""

    def __init__(self, inputs, targets, labels, metric_names, inputs_length):
        self.inputs = pad_rows([row[:inputs_length] for row in inputs], inputs_length)
        self.targets, self.labels, self.metric_names = list(targets), list(labels), metric_names

    def __call__(self, model):
        predictions = [self.labels[i] for i in np.asarray(model.predict(self.inputs))]
        metrics = compute_metrics(self.metric_names, self.targets, predictions)
        samples = [f"-> {p!r} (target {t!r})" for p, t in zip(predictions[:8], self.targets)]
        return metrics, samples


def classifier_inputs(task, tokenizer, config, labels, *, data_dir, eval_examples):
    from t5core.training.task_inputs import eval_split_of

    lengths = {"inputs": config.inputs_length, "targets": config.targets_length}
    data_dir = data_dir or None
    train = _labelled(task, "train", tokenizer, lengths, labels, data_dir, True, config.seed,
                      None).batch(config.batch_size, drop_remainder=True).prefetch(2)
    split = eval_split_of(task)
    if split is None:
        return train, None, None
    eval_data = pad_batches(_labelled(task, split, tokenizer, lengths, labels, data_dir, False,
                                      config.seed, 1).batch(config.batch_size), config.batch_size)
    examples = task.get_dataset(split, tokenizer, lengths=lengths, data_dir=data_dir,
                                keep_text=True).take(eval_examples or 1_000_000)
    inputs, targets = [], []
    for example in examples.as_numpy_iterator():
        inputs.append(example["inputs"].tolist())
        targets.append(example["targets_pretokenized"].decode("utf-8"))
    metrics = list(getattr(task, "metrics", ())) or ["accuracy"]
    return train, eval_data, ClassifierEvaluator(inputs, targets, labels, metrics,
                                                 config.inputs_length)
