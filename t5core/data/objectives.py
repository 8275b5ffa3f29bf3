"""Unsupervised objectives of the T5 paper: span corruption, i.i.d. denoising, prefix LM."""

from __future__ import annotations

import tensorflow as tf

from t5core.config import check_int
from t5core.data.preprocessors import AUTOTUNE, map_with_seeds, stateless_shuffle
from t5core.tokenizer import ByteTokenizer

# ----------------------------------------------------------------------------- lengths


def random_spans_helper(inputs_length: int = 512, noise_density: float = 0.15,
                        mean_noise_span_length: float = 3.0, extra_tokens_per_span_inputs: int = 1,
                        extra_tokens_per_span_targets: int = 1) -> tuple[int, int]:
    """(raw tokens per example, targets length) so that inputs come out at `inputs_length`, counting
    the extra tokens per span (one sentinel) and one EOS on each side (512 -> (568, 114))."""
    def lengths(tokens):
        noise, spans = 0, 0  # density 0: no noise, as the mask
        if noise_density:
            noise, spans = (int(n) for n in _noise_counts(tokens, noise_density,
                                                          mean_noise_span_length))
        return (tokens - noise + spans * extra_tokens_per_span_inputs + 1,
                noise + spans * extra_tokens_per_span_targets + 1)
    tokens = _inputs_length({"inputs": inputs_length}) - 1
    while lengths(tokens + 1)[0] <= inputs_length:
        tokens += 1
    inputs, targets = lengths(tokens)
    if noise_density == 0.5 and targets > inputs:  # T5 keeps targets <= inputs here
        tokens, targets = tokens - 1, targets - 1
    return tokens, targets


# ----------------------------------------------------------------------------- noise masks


def _random_segmentation(num_items, num_segments, seed):
    """Random composition of num_items into num_segments positive parts, all equally likely."""
    is_cut = stateless_shuffle(tf.range(num_items - 1) < num_segments - 1, seed)
    segment_of_item = tf.cumsum(tf.pad(tf.cast(is_cut, tf.int32), [[1, 0]]))
    return tf.math.unsorted_segment_sum(tf.ones_like(segment_of_item), segment_of_item,
                                        num_segments)


def _noise_counts(length, noise_density, mean_noise_span_length):
    """(noise tokens, noise spans) of a `length`-token piece, at least one of each and room for
    one non-noise token. The lengths helper counts with these too: its own rounding gave short
    pieces 0 spans, so their inputs came out longer than it promised."""
    length = tf.maximum(length, 2)
    num_noise = tf.cast(tf.round(tf.cast(length, tf.float32) * noise_density), tf.int32)
    num_noise = tf.clip_by_value(num_noise, 1, length - 1)
    num_spans = tf.cast(tf.round(tf.cast(num_noise, tf.float32) / mean_noise_span_length), tf.int32)
    return num_noise, tf.maximum(num_spans, 1)


def random_spans_noise_mask(length, seeds, noise_density: float = 0.15,
                            mean_noise_span_length: float = 3.0):
    """bool [length]: round(length * noise_density) noise tokens in spans alternating with
    non-noise, ending with noise, all such masks equally likely; seeds [2, 2]. Density 0: no
    noise (as T5); else at least one token."""
    if noise_density == 0:
        return tf.zeros([length], tf.bool)
    orig_length = length
    length = tf.maximum(length, 2)
    num_noise, num_spans = _noise_counts(length, noise_density, mean_noise_span_length)
    noise_lengths = _random_segmentation(num_noise, num_spans, seeds[0])
    nonnoise_lengths = _random_segmentation(length - num_noise, num_spans, seeds[1])
    # [nonnoise_0, noise_0, nonnoise_1, noise_1, ...]: odd span numbers are noise.
    span_lengths = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=1), [-1])
    span_number = tf.repeat(tf.range(2 * num_spans), span_lengths)
    return tf.equal(span_number % 2, 1)[:orig_length]


def iid_noise_mask(length, seeds, noise_density: float = 0.15):
    """Each token is noise independently with probability noise_density."""
    return tf.random.stateless_uniform([length], seed=seeds[0]) < noise_density


def random_prefix_noise_mask(length, seeds):
    """The first k tokens are noise (the prefix), k uniform in [1, length - 1] (prefix LM)."""
    max_prefix = length - 1
    prefix = tf.random.stateless_uniform([], minval=tf.minimum(max_prefix, 1),
                                         maxval=max_prefix + 1, dtype=tf.int32, seed=seeds[0])
    return tf.range(length) < prefix


# ----------------------------------------------------------------------------- noise -> ids


def noise_span_to_unique_sentinel(tokens, noise_mask, first_sentinel: int, sentinel_step: int = -1):
    """Each run of noise tokens -> one sentinel: first_sentinel, first_sentinel + step, ..."""
    prev_is_noise = tf.pad(noise_mask[:-1], [[1, 0]])
    starts_span = noise_mask & ~prev_is_noise
    continues_span = noise_mask & prev_is_noise
    span_index = tf.cumsum(tf.cast(starts_span, tokens.dtype)) - 1
    step = tf.cast(sentinel_step, tokens.dtype)
    sentinels = tf.cast(first_sentinel, tokens.dtype) + step * span_index
    return tf.boolean_mask(tf.where(starts_span, sentinels, tokens), ~continues_span)


def nonnoise_span_to_unique_sentinel(tokens, noise_mask, first_sentinel: int,
                                     sentinel_step: int = -1):
    return noise_span_to_unique_sentinel(tokens, ~noise_mask, first_sentinel, sentinel_step)


def drop_noise_tokens(tokens, noise_mask, *unused):
    return tf.boolean_mask(tokens, ~noise_mask)


def drop_nonnoise_tokens(tokens, noise_mask, *unused):
    return tf.boolean_mask(tokens, noise_mask)


# ----------------------------------------------------------------------------- dataset steps


def select_random_chunk(ds, seed: int, max_length: int = 65536, key: str = "targets"):
    """One random max_length-token chunk of each example's `key`; other fields, empties dropped."""
    def fn(x, seeds):
        tokens = x[key]
        n = tf.size(tokens)
        num_chunks = tf.maximum((n + max_length - 1) // max_length, 1)
        start = max_length * tf.random.stateless_uniform([], maxval=num_chunks, dtype=tf.int32,
                                                        seed=seeds[0])
        return {key: tokens[start:start + max_length]}
    ds = ds.filter(lambda x: tf.size(x[key]) > 0)
    return map_with_seeds(ds, fn, seed, 1)


def reduce_concat_tokens(ds, batch_size: int = 128, key: str = "targets"):
    """Concatenates every `batch_size` consecutive examples' `key` into one example, dropping
    id 0 (padding) as T5 does; tokenized text never holds id 0."""
    def concat(rt):
        tokens = rt.flat_values
        return {key: tf.boolean_mask(tokens, tf.not_equal(tokens, 0))}
    ds = ds.map(lambda x: x[key], num_parallel_calls=AUTOTUNE)
    ds = ds.ragged_batch(batch_size)
    return ds.map(concat, num_parallel_calls=AUTOTUNE)


def split_tokens(ds, max_tokens_per_segment: int, key: str = "targets"):
    """Cuts each example's `key` into pieces of max_tokens_per_segment (the last may be shorter)."""
    ds = ds.filter(lambda x: tf.size(x[key]) > 0)
    ds = ds.map(lambda x: _split(x[key], max_tokens_per_segment), num_parallel_calls=AUTOTUNE)
    ds = ds.unbatch()
    return ds.map(lambda t: {key: t}, num_parallel_calls=AUTOTUNE)


def _split(tokens, n):
    """[size] -> ragged [ceil(size / n), (<= n)]."""
    size = tf.size(tokens, out_type=tf.int64)
    num = (size + n - 1) // n
    lengths = tf.concat([tf.fill([num - 1], tf.constant(n, tf.int64)), [size - n * (num - 1)]], 0)
    return tf.RaggedTensor.from_row_lengths(tokens, lengths)


def denoise(ds, seed: int, noise_mask_fn, inputs_fn, targets_fn, first_sentinel: int,
            sentinel_step: int = -1, key: str = "targets"):
    """{key: tokens} -> {"inputs": inputs_fn(tokens, mask), "targets": targets_fn(tokens, mask)}."""
    def fn(x, seeds):
        tokens = x[key]
        mask = noise_mask_fn(tf.size(tokens), seeds[:2])
        return {"inputs": inputs_fn(tokens, mask, first_sentinel, sentinel_step),
                "targets": targets_fn(tokens, mask, first_sentinel, sentinel_step)}
    return map_with_seeds(ds, fn, seed, 2)


def pretraining_sentinels(tokenizer):
    """(first sentinel id, step): the sentinels the released checkpoints were pretrained with,
    counting down from the top of the vocabulary (a `ByteTokenizer`: from 258, the top byte ids,
    whatever its extra_ids; see docs/architecture.md)."""
    if isinstance(tokenizer, ByteTokenizer):
        return 256 + tokenizer.offset - 1, -1
    return tokenizer.vocab_size - 1, -1


def span_corruption(ds, tokenizer, seed: int, lengths=None, noise_density: float = 0.15,
                    mean_noise_span_length: float = 3.0, key: str = "targets",
                    first_sentinel: int | None = None, sentinel_step: int | None = None):
    """T5's pretraining objective on tokenized text in `key` (append EOS after): inputs come out
    at lengths["inputs"] (512), targets <= lengths["targets"] (114), EOS included. Sentinels
    default to `pretraining_sentinels(tokenizer)`."""
    lengths = dict(lengths or {"inputs": 512, "targets": 114})
    tokens_length, targets_length = random_spans_helper(lengths["inputs"], noise_density,
                                                        mean_noise_span_length)
    if lengths.get("targets", targets_length) < targets_length:
        raise ValueError(f"span corruption with inputs length {lengths['inputs']} needs "
                         f"targets length >= {targets_length}, got {lengths['targets']}")
    first, step = pretraining_sentinels(tokenizer)
    return _sentinel_denoising(
        ds, seed, tokens_length, key,
        lambda length, seeds: random_spans_noise_mask(length, seeds, noise_density,
                                                      mean_noise_span_length),
        first if first_sentinel is None else first_sentinel,
        step if sentinel_step is None else sentinel_step)


def iid_denoising(ds, tokenizer, seed: int, lengths=None, noise_density: float = 0.15,
                  key: str = "targets"):
    """The paper's baseline objective: i.i.d. noise tokens, each run -> one sentinel."""
    lengths = dict(lengths or {"inputs": 512})
    return _sentinel_denoising(ds, seed, _inputs_length(lengths) - 1, key,
                               lambda length, seeds: iid_noise_mask(length, seeds, noise_density),
                               *pretraining_sentinels(tokenizer))


def _inputs_length(lengths):
    """An objective's inputs length: its pieces need a token besides their EOS."""
    return check_int(lengths["inputs"], 'lengths["inputs"] (--inputs_length)', 2)


def _sentinel_denoising(ds, seed, tokens_per_example, key, mask_fn, first, step):
    """Pieces of `tokens_per_example` concatenated tokens, each run of noise -> one sentinel in
    the inputs and each run of non-noise -> one in the targets."""
    ds = select_random_chunk(ds, seed, key=key)
    ds = reduce_concat_tokens(ds, key=key)
    ds = split_tokens(ds, tokens_per_example, key=key)
    return denoise(ds, seed + 1, mask_fn, noise_span_to_unique_sentinel,
                   nonnoise_span_to_unique_sentinel, first, step, key=key)


def prefix_lm(ds, seed: int, lengths=None, key: str = "targets"):
    """Prefix LM: a random prefix of each piece is the input, the rest the target."""
    lengths = dict(lengths or {"inputs": 512})
    ds = select_random_chunk(ds, seed, key=key)
    ds = split_tokens(ds, _inputs_length(lengths) - 1, key=key)
    return denoise(ds, seed + 1, random_prefix_noise_mask, drop_nonnoise_tokens, drop_noise_tokens,
                   0, 0, key=key)
