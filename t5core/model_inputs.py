"""The model's input contract: feature names, the decoder-input shift and the token-id range.

The data pipelines build these features, and the model, the trainer, evaluation, decoding and
inspection read or check them, so each rule is written once, here (with nothing heavier than
TensorFlow beside it, so the data side can import it without the model).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# What `T5Model` reads: token ids, then the segment ids and positions of packed rows.
MODEL_FEATURES = ("encoder_input_tokens", "decoder_input_tokens", "encoder_segment_ids",
                  "encoder_positions", "decoder_segment_ids", "decoder_positions")
# What the loss reads besides the logits; a model's feature dict may carry them along.
TARGET_FEATURES = ("decoder_target_tokens", "decoder_loss_weights")
PACKING_FEATURES = ("encoder_segment_ids", "encoder_positions", "decoder_segment_ids",
                    "decoder_positions")


def model_features(features: dict) -> dict:
    """The entries of `features` the model reads (targets and anything else dropped)."""
    return {k: v for k, v in features.items() if k in MODEL_FEATURES}


def check_features(features) -> None:
    """ValueError for a key neither a model feature nor a target, or a missing token feature."""
    unknown = sorted(set(features) - set(MODEL_FEATURES) - set(TARGET_FEATURES))
    if unknown:
        raise ValueError(f"Unknown model feature(s) {unknown}; expected {MODEL_FEATURES}")
    for key in ("encoder_input_tokens", "decoder_input_tokens"):
        if key not in features:
            raise ValueError(f"Missing model feature {key!r}")


def shift_right(targets, start_id: int, segment_ids=None, positions=None) -> tf.Tensor:
    """Teacher forcing's decoder inputs: `targets [..., T]` shifted right after `start_id`.

    Packed rows restart each example with `start_id` where its position is 0; padding (segment
    0) is 0. As SeqIO's `make_autoregressive_inputs`, an unpacked row's last target lands on the
    first padding position, which nothing reads.

    Args:
      targets: int ids [..., T], a tensor or an array (graph mode and tf.data included).
      start_id: the config's `decoder_start_token_id`.
      segment_ids, positions: int [..., T] of packed rows, or both None.

    Returns:
      A tensor of the targets' dtype and shape.
    """
    targets = tf.convert_to_tensor(targets)
    start = tf.cast(start_id, targets.dtype)
    shifted = tf.concat([tf.fill(tf.shape(targets[..., :1]), start), targets[..., :-1]], axis=-1)
    if segment_ids is None:
        return shifted
    shifted = tf.where(positions == 0, start, shifted)
    return tf.where(segment_ids == 0, tf.zeros_like(shifted), shifted)


def check_token_ids(tokens, vocab_size: int, name: str) -> None:
    """Refuses ids outside [0, vocab_size): GPUs read them as zeros, CPUs fail obscurely.
    Symbolic tensors are not checked.

    Args:
      tokens: int ids: an eager tensor, an array or nested lists.
      vocab_size: the config's vocab_size.
      name: what the ids are, for the message ("encoder_input_tokens", "example 3").

    Raises:
      ValueError: some id lies outside [0, vocab_size).
    """
    if isinstance(tokens, (tf.Tensor, tf.Variable)):
        if not tf.executing_eagerly() or tf.size(tokens) == 0:
            return
        low, high = int(tf.reduce_min(tokens)), int(tf.reduce_max(tokens))
    else:
        array = np.asarray(tokens)
        if array.size == 0:
            return
        low, high = int(array.min()), int(array.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"{name} holds token ids in [{low}, {high}], outside the model's "
                         f"vocabulary [0, {vocab_size}) (vocab_size of the config; is the "
                         "tokenizer the model's?)")
