"""T5X's loss vectors (google-research/t5x `t5x/losses_test.py`), carried over as data.

How T5X's settings map onto `t5core.losses.cross_entropy_loss(loss_normalization=...)`:
  loss_normalizing_factor=None      -> "none" (the plain sum)
  a number N                        -> N (or "constant:N")
  NUM_REAL_TARGET_TOKENS            -> "tokens"
  NUM_TOTAL_TARGET_TOKENS           -> "total_tokens"
  AVERAGE_PER_SEQUENCE              -> "sequences"
T5X's `test_xent` is a smoke test with random inputs and no expected values; here its inputs and
settings are kept, and the expected loss, z-loss and gradient are T5X's formulas
(`compute_weighted_cross_entropy`, `cross_entropy_with_logits` and its custom gradient
(1 + 2 z log Z) softmax - q) evaluated in float64 NumPy.
"""

import numpy as np
import pytest
import tensorflow as tf

from t5core.losses import _per_sequence_weights, cross_entropy_loss

TARGETS = np.asarray([[1, 2, 3, 4, 0], [5, 6, 0, 0, 0]], np.int32)


def t5x_formula(logits, targets, weights, label_smoothing, z_loss, normalizer):
    """(loss, z_loss, weight sum, d loss / d logits) by T5X's formulas, float64."""
    logits = np.asarray(logits, np.float64)
    vocab = logits.shape[-1]
    confidence = 1.0 - label_smoothing
    low = (1.0 - confidence) / (vocab - 1)
    constant = -(confidence * np.log(confidence) + (vocab - 1) * low * np.log(low + 1e-20))
    soft = np.where(np.arange(vocab) == targets[..., None], confidence, low)
    log_z = np.log(np.exp(logits).sum(-1))
    log_softmax = logits - log_z[..., None]
    z_term = z_loss * log_z ** 2
    loss = -(soft * log_softmax).sum(-1) + z_term - constant
    grad = ((1 + 2 * z_loss * log_z)[..., None] * np.exp(log_softmax) - soft)
    return ((loss * weights).sum() / normalizer, (z_term * weights).sum() / normalizer,
            weights.sum(), grad * weights[..., None] / normalizer)


def test_xent():
    # t5x/losses_test.py LossTest.test_xent: batch 2, length 4, vocab 8, label_smoothing 0.1,
    # z_loss 0.1, loss_normalizing_factor 0.1, all weights 1.
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 8)).astype(np.float32)
    targets = rng.integers(0, 8, size=(2, 4)).astype(np.int32)
    weights = np.ones_like(targets, np.float32)
    logits_var = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss, aux = cross_entropy_loss(logits_var, targets, weights, label_smoothing=0.1,
                                       z_loss=0.1, loss_normalization=0.1)
    grad = tape.gradient(loss, logits_var).numpy()
    expected = t5x_formula(logits, targets, weights, 0.1, 0.1, 0.1)
    np.testing.assert_allclose(float(loss), expected[0], rtol=1e-5)
    np.testing.assert_allclose(float(aux["z_loss"]), expected[1], rtol=1e-5)
    assert float(aux["num_tokens"]) == expected[2]
    np.testing.assert_allclose(grad, expected[3], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("label_smoothing, z_loss", [(0.0, 0.0), (0.0, 1e-4), (0.1, 1e-4)])
def test_xent_plain_sum_with_padding_weights(label_smoothing, z_loss):
    # The same formulas at T5X's T5.1.1 settings (z_loss 1e-4, loss_normalizing_factor None:
    # a plain sum) with padding: a token of weight 0 adds nothing.
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 5, 11)).astype(np.float32) * 3
    weights = (TARGETS > 0).astype(np.float32)
    logits_var = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss, aux = cross_entropy_loss(logits_var, TARGETS, weights,
                                       label_smoothing=label_smoothing, z_loss=z_loss,
                                       loss_normalization="none")
    expected = t5x_formula(logits, TARGETS, weights, label_smoothing, z_loss, 1.0)
    np.testing.assert_allclose(float(loss), expected[0], rtol=1e-5)
    np.testing.assert_allclose(float(aux["z_loss_sum"]), expected[1], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(tape.gradient(loss, logits_var).numpy(), expected[3], rtol=1e-4,
                               atol=1e-6)


def _loss_and_normalizer(normalization, weights=None, segment_ids=None):
    logits = np.random.default_rng(2).normal(size=TARGETS.shape + (8,)).astype(np.float32)
    loss, aux = cross_entropy_loss(logits, TARGETS, weights, loss_normalization=normalization,
                                   segment_ids=segment_ids)
    return float(loss), float(aux["normalizer"]), float(aux["loss_sum"])


def test_num_real_target_tokens():
    # t5x/losses_test.py SpecialLossNormalizingFactorTest.test_num_real_target_tokens: factor 6,
    # loss weights 1 on the non-padding targets (t5core's default weights).
    loss, normalizer, loss_sum = _loss_and_normalizer("tokens")
    assert normalizer == pytest.approx(6.0, rel=1e-3)
    assert loss == pytest.approx(loss_sum / 6.0, rel=1e-6)
    weighted = _loss_and_normalizer("none", weights=[[1.0, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    assert weighted[2] == pytest.approx(loss_sum, rel=1e-6)


def test_num_total_target_tokens():
    # SpecialLossNormalizingFactorTest.test_num_total_target_tokens: factor 10 (padding counted).
    loss, normalizer, loss_sum = _loss_and_normalizer("total_tokens")
    assert normalizer == pytest.approx(10.0, rel=1e-3)
    assert loss == pytest.approx(loss_sum / 10.0, rel=1e-6)


@pytest.mark.parametrize("weights, expected_weights", [
    # SpecialLossNormalizingFactorTest.test_average_per_sequence
    (None, [[0.25, 0.25, 0.25, 0.25, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0]]),
    # SpecialLossNormalizingFactorTest.test_average_per_sequence_with_weights
    ([[0.5, 1.0, 0.25, 2.0, 0.0], [1.0, 1.0, 0.0, 0.0, 0.0]],
     [[0.5 / 3.75, 1.0 / 3.75, 0.25 / 3.75, 2.0 / 3.75, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0]]),
])
def test_average_per_sequence(weights, expected_weights):
    given = (TARGETS > 0).astype(np.float32) if weights is None else np.asarray(weights, np.float32)
    np.testing.assert_allclose(_per_sequence_weights(tf.constant(given), None).numpy(),
                               expected_weights, rtol=1e-3)
    loss, normalizer, loss_sum = _loss_and_normalizer("sequences", weights=weights)
    assert normalizer == pytest.approx(2.0, rel=1e-3)
    assert loss == pytest.approx(loss_sum / 2.0, rel=1e-6)


PACKED_WEIGHTS = np.asarray([[0.5, 1.0, 0.25, 2.0, 1.5], [1.0, 2.0, 3.0, 4.0, 5.0]], np.float32)
PACKED_SEGMENTS = np.asarray([[1, 1, 1, 2, 3], [1, 2, 2, 3, 0]], np.int32)


def test_sum_weights_per_segment():
    # SpecialLossNormalizingFactorTest.test_sum_weights_per_segment: each token's weight over its
    # packed segment's weight sum (T5X's normalising vector [[1.75, 1.75, 1.75, 2.0, 1.5],
    # [1.0, 5.0, 5.0, 4.0, 0.0]]); padding (segment 0) gets 0.
    norm_vec = np.asarray([[1.75, 1.75, 1.75, 2.0, 1.5], [1.0, 5.0, 5.0, 4.0, 0.0]])
    expected = np.divide(PACKED_WEIGHTS, norm_vec, out=np.zeros_like(norm_vec),
                         where=norm_vec > 0)
    got = _per_sequence_weights(tf.constant(PACKED_WEIGHTS), tf.constant(PACKED_SEGMENTS))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-3)


def test_average_per_sequence_with_weights_with_packing():
    # SpecialLossNormalizingFactorTest.test_average_per_sequence_with_weights_with_packing:
    # factor 6 (six packed segments), and the weight 5.0 that sits on padding counts for nothing.
    targets = np.asarray([[1, 2, 3, 4, 5], [5, 6, 7, 8, 0]], np.int32)
    expected_weights = np.asarray([[0.5 / 1.75, 1.0 / 1.75, 0.25 / 1.75, 2.0 / 2.0, 1.5 / 1.5],
                                   [1.0 / 1.0, 2.0 / 5.0, 3.0 / 5.0, 4.0 / 4.0, 0.0]])
    logits = np.random.default_rng(3).normal(size=targets.shape + (9,)).astype(np.float32)
    loss, aux = cross_entropy_loss(logits, targets, PACKED_WEIGHTS, loss_normalization="sequences",
                                   segment_ids=PACKED_SEGMENTS)
    assert float(aux["normalizer"]) == pytest.approx(6.0, rel=1e-3)
    token_loss = -np.take_along_axis(
        logits - np.log(np.exp(logits.astype(np.float64)).sum(-1, keepdims=True)),
        targets[..., None], axis=-1)[..., 0]
    assert float(loss) == pytest.approx((token_loss * expected_weights).sum() / 6.0, rel=1e-5)
