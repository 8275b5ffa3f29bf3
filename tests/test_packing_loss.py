"""Packing changes nothing the model computes: the loss of each example inside a packed row equals
its loss alone in a padded row (tiny random T5)."""

import numpy as np
import pytest
import tensorflow as tf

from t5core import model as model_lib
from t5core.config import T5Config
from t5core.data import features


def _tiny_config(**overrides):
    kw = {"vocab_size": 128, "d_model": 32, "d_kv": 8, "d_ff": 48, "num_heads": 4,
          "num_layers": 2, "num_decoder_layers": 2, "feed_forward_proj": "relu",
          "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
          "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6, "tie_word_embeddings": True,
          "model_type": "t5", "initializer_factor": 1.0}
    return T5Config(**{**kw, **overrides})


def _examples(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(3, 128, size=rng.integers(2, 12)).tolist() + [1],
             rng.integers(3, 128, size=rng.integers(1, 7)).tolist() + [1]) for _ in range(n)]


def _dataset(examples):
    return tf.data.Dataset.from_tensor_slices({
        "inputs": tf.ragged.constant([e[0] for e in examples], dtype=tf.int32),
        "targets": tf.ragged.constant([e[1] for e in examples], dtype=tf.int32)})


def _token_losses(model, batch):
    inputs = {k: v for k, v in batch.items()
              if k not in ("decoder_target_tokens", "decoder_loss_weights")}
    logits = model(inputs, training=False)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=batch["decoder_target_tokens"], logits=tf.cast(logits, tf.float32))
    return (losses * tf.cast(batch["decoder_loss_weights"], tf.float32)).numpy()


@pytest.mark.parametrize("overrides", [
    {},  # T5 v1.0: relu, tied embeddings
    {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},  # v1.1
])
def test_packed_loss_equals_unpacked_loss(overrides):
    tf.keras.utils.set_random_seed(0)
    model = model_lib.T5Model(_tiny_config(**overrides))
    examples = _examples()
    lengths = {"inputs": 32, "targets": 16}

    padded = next(iter(features.pad_to_model_features(
        _dataset(examples), {"inputs": 12, "targets": 7}).batch(len(examples))))
    unpacked = _token_losses(model, padded).sum(axis=1)          # one loss per example

    packed_rows = features.pack_to_model_features(_dataset(examples), lengths).batch(64)
    packed = next(iter(packed_rows))
    assert packed["encoder_input_tokens"].shape[0] < len(examples)  # several examples per row
    token_losses = _token_losses(model, packed)
    per_example = []
    seg = packed["decoder_segment_ids"].numpy()
    for row in range(seg.shape[0]):
        for s in range(1, seg[row].max() + 1):
            per_example.append(token_losses[row][seg[row] == s].sum())
    np.testing.assert_allclose(per_example, unpacked, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(token_losses.sum(), unpacked.sum(), rtol=1e-4)
