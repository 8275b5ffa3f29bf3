"""Token examples {"inputs", "targets"} -> the model's fixed-length features (SeqIO/T5X names),
one example per row (`pad_to_model_features`) or packed (`pack_to_model_features`)."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from t5core.data.preprocessors import AUTOTUNE
from t5core.data.preprocessors import truncate as truncate_step
from t5core.model_inputs import shift_right


def _check_fits(ids, length: int, name: str):
    n = tf.size(ids)
    return tf.debugging.assert_less_equal(
        n, length, message=f"an example's {name} is longer than the row length {length}: "
                           f"truncate it first (truncate=True / preprocessors.truncate)")


def pad_to_model_features(ds: tf.data.Dataset, lengths: Mapping[str, int],
                          truncate: bool = False,
                          decoder_start_token_id: int = 0) -> tf.data.Dataset:
    """One example per row, padded to lengths["inputs"] / lengths["targets"]."""
    L, T = lengths["inputs"], lengths["targets"]
    if truncate:
        ds = truncate_step(ds, {"inputs": L, "targets": T})

    def fn(x):
        inputs, targets = tf.cast(x["inputs"], tf.int32), tf.cast(x["targets"], tf.int32)
        with tf.control_dependencies([_check_fits(inputs, L, "inputs"),
                                      _check_fits(targets, T, "targets")]):
            enc = tf.pad(inputs, [[0, L - tf.size(inputs)]])
            dec = tf.pad(targets, [[0, T - tf.size(targets)]])
        segment = tf.cast(tf.range(T) < tf.size(targets), tf.int32)
        out = {"encoder_input_tokens": tf.ensure_shape(enc, [L]),
               "decoder_target_tokens": tf.ensure_shape(dec, [T]),
               "decoder_input_tokens": shift_right(dec, decoder_start_token_id),
               "decoder_loss_weights": tf.cast(segment, tf.float32)}
        return out
    return ds.map(fn, num_parallel_calls=AUTOTUNE)


def pack_to_model_features(ds: tf.data.Dataset, lengths: Mapping[str, int],
                           truncate: bool = False,
                           decoder_start_token_id: int = 0) -> tf.data.Dataset:
    """Greedy next-fit packing of examples into rows of `lengths`, a finite stream's last too."""
    L, T = lengths["inputs"], lengths["targets"]
    if truncate:
        ds = truncate_step(ds, {"inputs": L, "targets": T})
    ds = ds.map(lambda x: {"inputs": tf.cast(x["inputs"], tf.int32),
                           "targets": tf.cast(x["targets"], tf.int32),
                           "flush": tf.constant(False)}, num_parallel_calls=AUTOTUNE)
    # One empty "flush" element closes the last row of a finite stream.
    flush = tf.data.Dataset.from_tensors({"inputs": tf.zeros([0], tf.int32),
                                          "targets": tf.zeros([0], tf.int32),
                                          "flush": tf.constant(True)})
    ds = ds.concatenate(flush)

    def empty_row():
        return {"enc": tf.zeros([L], tf.int32), "enc_seg": tf.zeros([L], tf.int32),
                "enc_pos": tf.zeros([L], tf.int32), "dec": tf.zeros([T], tf.int32),
                "dec_seg": tf.zeros([T], tf.int32), "dec_pos": tf.zeros([T], tf.int32),
                "enc_len": tf.constant(0), "dec_len": tf.constant(0), "num": tf.constant(0)}

    def place(buf, start, values):
        idx = tf.expand_dims(start + tf.range(tf.size(values)), 1)
        return tf.tensor_scatter_nd_update(buf, idx, values)

    def step(row, x):
        inputs, targets = x["inputs"], x["targets"]
        n_in, n_tg = tf.size(inputs), tf.size(targets)
        checks = [_check_fits(inputs, L, "inputs"), _check_fits(targets, T, "targets")]
        with tf.control_dependencies(checks):
            fits = (row["enc_len"] + n_in <= L) & (row["dec_len"] + n_tg <= T)
        emit = (row["num"] > 0) & (~fits | x["flush"])
        fresh = empty_row()
        base = {k: tf.where(emit, fresh[k], v) for k, v in row.items()}
        seg = base["num"] + 1
        new = {
            "enc": place(base["enc"], base["enc_len"], inputs),
            "enc_seg": place(base["enc_seg"], base["enc_len"], tf.fill([n_in], seg)),
            "enc_pos": place(base["enc_pos"], base["enc_len"], tf.range(n_in)),
            "dec": place(base["dec"], base["dec_len"], targets),
            "dec_seg": place(base["dec_seg"], base["dec_len"], tf.fill([n_tg], seg)),
            "dec_pos": place(base["dec_pos"], base["dec_len"], tf.range(n_tg)),
            "enc_len": base["enc_len"] + n_in, "dec_len": base["dec_len"] + n_tg,
            "num": base["num"] + tf.cast(~x["flush"], tf.int32)}
        return new, (row, emit)

    ds = ds.scan(empty_row(), step)
    ds = ds.filter(lambda row, emit: emit)

    def to_features(row, emit):
        del emit
        return {"encoder_input_tokens": row["enc"], "encoder_segment_ids": row["enc_seg"],
                "encoder_positions": row["enc_pos"], "decoder_target_tokens": row["dec"],
                "decoder_segment_ids": row["dec_seg"], "decoder_positions": row["dec_pos"],
                "decoder_input_tokens": shift_right(row["dec"], decoder_start_token_id,
                                                    row["dec_seg"], row["dec_pos"]),
                "decoder_loss_weights": tf.cast(row["dec_seg"] > 0, tf.float32)}
    return ds.map(to_features, num_parallel_calls=AUTOTUNE)


def to_model_features(ds: tf.data.Dataset, lengths: Mapping[str, int], pack: bool = False,
                      truncate: bool = False,
                      decoder_start_token_id: int = 0) -> tf.data.Dataset:
    """`pack_to_model_features` or `pad_to_model_features` (unbatched rows)."""
    fn = pack_to_model_features if pack else pad_to_model_features
    return fn(ds, lengths, truncate=truncate, decoder_start_token_id=decoder_start_token_id)
