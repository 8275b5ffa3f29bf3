"""(input, target) text pairs held in memory -> padded feature arrays and tf.data pipelines."""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from t5core.model_inputs import model_features, shift_right

log = logging.getLogger(__name__)


def pad_rows(rows, length):
    """list of int lists -> int32 [N, length]: each row cut to `length`, padded with 0."""
    out = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        row = row[:length]
        out[i, :len(row)] = row
    return out


def encode_pairs(pairs, tokenizer, inputs_length, targets_length, source="examples",
                 decoder_start_token_id=0):
    """(input, target) text pairs -> (padded feature arrays, number of rows cut, EOS kept)."""
    enc, tgt, truncated = [], [], 0
    for inputs, targets in pairs:
        e = tokenizer.encode(inputs, add_eos=True)
        t = tokenizer.encode(targets, add_eos=True)
        if len(e) > inputs_length or len(t) > targets_length:
            truncated += 1
            eos = [tokenizer.eos_id]
            e = e[:inputs_length - 1] + eos if len(e) > inputs_length else e
            t = t[:targets_length - 1] + eos if len(t) > targets_length else t
        enc.append(e)
        tgt.append(t)
    if not enc:
        raise ValueError(f"{source}: no examples")
    targets = pad_rows(tgt, targets_length)
    features = {
        "encoder_input_tokens": pad_rows(enc, inputs_length),
        "decoder_target_tokens": targets,
        # Teacher forcing: the decoder sees the targets shifted right, after the start id.
        "decoder_input_tokens": shift_right(targets, decoder_start_token_id).numpy(),
        "decoder_loss_weights": (targets > 0).astype(np.float32),
    }
    return features, truncated


def batched(features, batch_size, seed, repeat=True, shuffle=True):
    """A tf.data pipeline over in-memory features, its iterator checkpointable: repeated with full
    batches (training), or once with the last batch filled up by `pad_batches` (evaluation)."""
    dataset = tf.data.Dataset.from_tensor_slices(features)
    if shuffle:
        # reshuffle_each_iteration with a fixed seed keeps the stream reproducible and resumable.
        dataset = dataset.shuffle(len(features["encoder_input_tokens"]), seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        return dataset.repeat().batch(batch_size, drop_remainder=True).prefetch(2)
    return pad_batches(dataset.batch(batch_size), batch_size).prefetch(2)


def pad_batches(dataset, batch_size):
    """Fills every batch of a finite, batched dataset up to `batch_size` rows with zeros: one
    shape for the compiled eval step, and a zero row has no loss weight, so it changes no sum."""
    def pad(batch):
        def pad_rows_of(value):
            missing = batch_size - tf.shape(value)[0]
            padded = tf.pad(value, [[0, missing]] + [[0, 0]] * (value.shape.rank - 1))
            return tf.ensure_shape(padded, [batch_size] + value.shape[1:].as_list())
        return tf.nest.map_structure(pad_rows_of, batch)

    return dataset.map(pad)


def pairs_dataset(pairs, tokenizer, inputs_length, targets_length, batch_size, *,
                  shuffle=False, seed=0):
    """A tf.data.Dataset for Keras' `fit`, `evaluate` and `predict` from (input, target) texts,
    encoded once and held in memory; longer texts are truncated (EOS kept), with a warning, as
    are texts the vocabulary cannot spell (`unknown_tokens_warning`).

    Args:
      pairs: (input text, target text) pairs.
      tokenizer: the model's `Tokenizer` or `ByteTokenizer`.
      inputs_length: L, EOS included.
      targets_length: T, EOS included.
      batch_size: B; the last batch holds the remainder.
      shuffle: reshuffle every epoch, reproducibly for a `seed`; False keeps the order.
      seed: the shuffle's seed.

    Returns:
      `(features, targets, weights)` batches: int32 encoder_input_tokens [B, L] and
      decoder_input_tokens [B, T], int32 targets [B, T], float32 weights [B, T] (0 on padding).

    Raises:
      ValueError: `pairs` is empty.
    """
    pairs = list(pairs)
    features, truncated = encode_pairs(pairs, tokenizer, inputs_length, targets_length, "pairs")
    warning = tokenizer.unknown_tokens_warning(
        {"inputs": [i for i, _ in pairs[:200]], "targets": [t for _, t in pairs[:200]]},
        f"the first {min(len(pairs), 200)} pairs")
    if warning:
        log.warning("%s", warning)
    if truncated:
        log.warning(
            "%d of %d pairs are longer than inputs_length=%d / targets_length=%d tokens and were "
            "truncated", truncated, len(pairs), inputs_length, targets_length)
    dataset = tf.data.Dataset.from_tensor_slices(features)
    if shuffle:
        dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(
        lambda f: (model_features(f), f["decoder_target_tokens"],
                   f["decoder_loss_weights"])).prefetch(2)
