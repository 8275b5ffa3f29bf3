"""Counts of examples the pipeline drops (empty examples, ...), readable while it runs."""

from __future__ import annotations

import tensorflow as tf


class DropCounter:
    """Named int64 counters: eager code calls `add`, in-graph filters use `filter`. In-graph
    counts are diagnostics (read-ahead included, not in the iterator's checkpoint)."""

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

        return ds.filter(keep_and_count).with_options(self.options())

    @staticmethod
    def options() -> tf.data.Options:
        """The option that lets an iterator over a counting dataset be checkpointed."""
        options = tf.data.Options()
        options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
        return options

    def track_over(self, key: str, size, limit: int) -> list:
        """In-graph ops counting a sequence of `size` tokens over `limit` under
        "overlong_<key>" and keeping the longest such size under "longest_<key>"."""
        count, longest = self._var(f"overlong_{key}"), self._var(f"longest_{key}")
        over = size > limit
        return [count.assign_add(tf.cast(over, tf.int64)),
                longest.assign(tf.maximum(longest, tf.where(over, size, tf.zeros_like(size))))]

    def overlong_report(self, lengths) -> str:
        """'N rows were cut ...' for the counts `track_over` kept; '' when none was cut."""
        counts = self.counts()
        parts = [f"{counts[f'overlong_{k}']} {k} longer than {n} tokens (the longest "
                 f"{counts[f'longest_{k}']})" for k, n in lengths.items()
                 if counts.get(f"overlong_{k}")]
        return ("; ".join(parts) + ", cut to their lengths (--overlong=cut; --overlong=error "
                "stops instead). Counted as read, read-ahead and each epoch included.") \
            if parts else ""

    def counts(self) -> dict[str, int]:
        return {k: int(v.numpy()) for k, v in self._vars.items()}

    def __getitem__(self, name: str) -> int:
        return int(self._var(name).numpy())

    def __repr__(self):
        return f"DropCounter({self.counts()})"
