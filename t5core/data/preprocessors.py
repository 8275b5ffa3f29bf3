"""Generic `dataset -> dataset` steps: rekey, tokenize, drop empty, append EOS, truncate, and the
per-example stateless seeds of random steps."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from t5core.data.counters import DropCounter
from t5core.special_ids import EOS_ID
from t5core.tokenizer.base import WS_RE2

AUTOTUNE = tf.data.AUTOTUNE


def rekey(ds: tf.data.Dataset, mapping: Mapping[str, str]) -> tf.data.Dataset:
    """Keeps only `mapping`'s keys: {new_name: old_name}."""
    def fn(x):
        missing = [old for old in mapping.values() if old not in x]
        if missing:
            raise KeyError(f"rekey: fields {missing} not in the example (has {sorted(x)})")
        return {new: x[old] for new, old in mapping.items()}
    return ds.map(fn, num_parallel_calls=AUTOTUNE)


def tokenize(ds: tf.data.Dataset, tokenizer, keys: Sequence[str] = ("inputs", "targets"),
             keep_text: bool = False) -> tf.data.Dataset:
    """String fields -> int32 ids (no EOS) in graph; keep_text keeps `<key>_pretokenized`."""
    graph_tok = tokenizer.in_graph()

    def fn(x):
        out = dict(x)
        for k in keys:
            if k in x:
                out[k] = graph_tok.tokenize(x[k])
                if keep_text:
                    out[f"{k}_pretokenized"] = x[k]
        return out
    return ds.map(fn, num_parallel_calls=AUTOTUNE)


def drop_empty(ds: tf.data.Dataset, keys: Sequence[str] = ("inputs", "targets"),
               counter: DropCounter | None = None) -> tf.data.Dataset:
    """Drops examples where any of `keys` (present in the example) is empty; counts them."""
    def keep(x):
        # Blank text is what Python's str.strip() empties (the file sources' rule), Unicode
        # spaces such as U+3000 included; tf.strings.strip knows only ASCII whitespace.
        present = [tf.size(x[k]) > 0 if x[k].dtype != tf.string or x[k].shape.rank
                   else ~tf.strings.regex_full_match(x[k], f"{WS_RE2}*") for k in keys if k in x]
        return tf.reduce_all(tf.stack(present)) if present else tf.constant(True)
    if counter is None:
        return ds.filter(keep)
    return counter.filter(ds, keep, "empty_examples")


def append_eos(ds: tf.data.Dataset, keys: Sequence[str] = ("inputs", "targets"),
               eos_id: int = EOS_ID) -> tf.data.Dataset:
    """Appends EOS to each of `keys` unless it already ends with EOS (as `Tokenizer.encode`)."""
    def fn(x):
        out = dict(x)
        for k in keys:
            if k in x:
                ids = x[k]
                ends = tf.logical_and(tf.size(ids) > 0, tf.equal(ids[-1:], eos_id))
                out[k] = tf.cond(tf.reduce_any(ends), lambda ids=ids: ids,
                                 lambda ids=ids: tf.concat([ids, [tf.cast(eos_id, ids.dtype)]], 0))
        return out
    return ds.map(fn, num_parallel_calls=AUTOTUNE)


# Begins the message of the error an over-long row raises with overlong="error" (the trainer
# turns the TensorFlow error carrying it into a one-line DataError).
OVERLONG_MESSAGE = "a row is longer than its length"
OVERLONG_POLICIES = ("cut", "error")


def truncate(ds: tf.data.Dataset, lengths: Mapping[str, int],
             eos_id: int | None = EOS_ID, counter=None,
             overlong: str = "cut") -> tf.data.Dataset:
    """Cuts each `lengths` key to its length, ending a cut row with `eos_id` (None: plain cut).
    `counter` counts "overlong_<key>" and "longest_<key>"; overlong="error" stops at an
    over-long row (InvalidArgumentError starting with OVERLONG_MESSAGE)."""
    if overlong not in OVERLONG_POLICIES:
        raise ValueError(f"overlong must be one of {OVERLONG_POLICIES} (got {overlong!r})")

    def fn(x):
        out = dict(x)
        for k, n in lengths.items():
            if k in x:
                ids = x[k]
                size = tf.size(ids, out_type=tf.int64)
                checks = []
                if overlong == "error":
                    checks.append(tf.debugging.assert_less_equal(
                        size, tf.constant(n, tf.int64),
                        message=f"{OVERLONG_MESSAGE} ({k}: more than {n} tokens)"))
                if counter is not None:
                    checks += counter.track_over(k, size, n)
                with tf.control_dependencies(checks):
                    ids = tf.identity(ids)
                cut = ids[:n]
                if eos_id is not None:
                    eos = tf.cast([eos_id], ids.dtype)
                    cut = tf.cond(tf.size(ids) > n,
                                  lambda ids=ids, n=n, eos=eos: tf.concat([ids[:n - 1], eos], 0),
                                  lambda cut=cut: cut)
                out[k] = cut
        return out
    ds = ds.map(fn, num_parallel_calls=AUTOTUNE)
    return ds if counter is None else ds.with_options(counter.options())


def example_seeds(seed: int, index, num_seeds: int):
    """`num_seeds` stateless seeds [num_seeds, 2] for example number `index` of stream `seed`."""
    base = tf.constant([seed & 0x7FFFFFFF, (seed >> 31) & 0x7FFFFFFF], tf.int64)
    per_example = tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))
    return tf.random.experimental.stateless_split(per_example, num_seeds)


def map_with_seeds(ds: tf.data.Dataset, fn: Callable, seed: int,
                   num_seeds: int = 1) -> tf.data.Dataset:
    """ds.map(lambda x: fn(x, seeds)) with seeds [num_seeds, 2] derived from (seed, position)."""
    return ds.enumerate().map(lambda i, x: fn(x, example_seeds(seed, i, num_seeds)),
                              num_parallel_calls=AUTOTUNE)


def stateless_shuffle(values: tf.Tensor, seed) -> tf.Tensor:
    """A uniformly random permutation of `values` along axis 0, determined by `seed`."""
    keys = tf.random.stateless_uniform(tf.shape(values)[:1], seed=seed)
    return tf.gather(values, tf.argsort(keys))
