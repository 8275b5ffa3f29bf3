"""Counts of examples the pipeline drops (empty examples, ...), readable while it runs."""

from __future__ import annotations

import tensorflow as tf


class DropCounter:
    """Named int64 counters. Eager code calls `add`; in-graph filters use `filter`, which counts
    the examples it drops in a tf.Variable.

    The in-graph counts are diagnostics: they include examples read ahead by shuffle/prefetch and
    are not part of the iterator's checkpoint. Datasets using `filter` carry the tf.data option
    that lets their iterator be checkpointed despite that stateful counter.
    """

    def __init__(self):
        self._vars: dict[str, tf.Variable] = {}

    def _var(self, name: str) -> tf.Variable:
        if name not in self._vars:
            # init_scope: created eagerly even when first asked for inside a tf.data trace.
            with tf.init_scope():
                self._vars[name] = tf.Variable(0, dtype=tf.int64, trainable=False,
                                               name=f"dropped_{name}")
        return self._vars[name]

    def add(self, name: str, n: int) -> None:
        self._var(name).assign_add(int(n))

    def filter(self, ds: tf.data.Dataset, predicate, name: str) -> tf.data.Dataset:
        """ds.filter(predicate), counting the dropped elements under `name`."""
        var = self._var(name)

        def keep_and_count(*args):
            keep = predicate(*args)
            with tf.control_dependencies([var.assign_add(tf.cast(tf.logical_not(keep), tf.int64))]):
                return tf.identity(keep)

        options = tf.data.Options()
        options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
        return ds.filter(keep_and_count).with_options(options)

    def counts(self) -> dict[str, int]:
        return {k: int(v.numpy()) for k, v in self._vars.items()}

    def __getitem__(self, name: str) -> int:
        return int(self._var(name).numpy())

    def __repr__(self):
        return f"DropCounter({self.counts()})"
