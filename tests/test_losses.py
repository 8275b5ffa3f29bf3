"""cross_entropy_loss against a NumPy reference written from T5X's definition."""

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core.losses import (
    cross_entropy_loss,
    global_normalizer,
    parse_loss_normalization,
)
from t5core.training.steps import StepBuilder

B, T, V = 3, 7, 11
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _inputs():
    rng = np.random.default_rng(0)
    logits = (3.0 * rng.normal(size=(B, T, V))).astype(np.float32)
    targets = rng.integers(1, V, size=(B, T)).astype(np.int32)
    targets[0, 5:] = 0          # padding at the end of rows 0 and 1
    targets[1, 2:] = 0
    weights = (targets > 0).astype(np.float32)
    return logits, targets, weights


def _reference_token_losses(logits, targets, label_smoothing=0.0, z_loss=0.0):
    """Per-token loss with an explicit one-hot soft target, float64."""
    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    log_z = (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]
    log_probs = x - log_z[..., None]
    vocab = x.shape[-1]
    on = 1.0 - label_smoothing
    off = label_smoothing / (vocab - 1)
    soft = np.full(x.shape, off)
    np.put_along_axis(soft, targets[..., None].astype(np.int64), on, axis=-1)
    entropy = -np.sum(np.where(soft > 0, soft * np.log(np.where(soft > 0, soft, 1.0)), 0.0),
                      axis=-1)
    z = z_loss * log_z ** 2
    return -np.sum(soft * log_probs, axis=-1) - entropy + z, z


def test_plain_cross_entropy_matches_reference_and_ignores_padding():
    logits, targets, weights = _inputs()
    loss, aux = cross_entropy_loss(logits, targets, weights)
    ref, _ = _reference_token_losses(logits, targets)
    ref_sum = float(np.sum(ref * weights))
    np.testing.assert_allclose(float(aux["loss_sum"]), ref_sum, rtol=1e-5)
    np.testing.assert_allclose(float(aux["num_tokens"]), weights.sum())
    np.testing.assert_allclose(float(loss), ref_sum / weights.sum(), rtol=1e-5)
    acc = np.sum((logits.argmax(-1) == targets) * weights) / weights.sum()
    np.testing.assert_allclose(float(aux["accuracy"]), acc, rtol=1e-6)
    assert float(aux["z_loss_sum"]) == 0.0

    # Padding: whatever the logits at weight-0 positions, nothing changes.
    noisy = logits.copy()
    noisy[weights == 0] = 1e3 * np.random.default_rng(5).normal(size=noisy[weights == 0].shape)
    loss2, aux2 = cross_entropy_loss(noisy, targets, weights)
    assert float(loss2) == pytest.approx(float(loss), rel=1e-6)
    assert float(aux2["accuracy"]) == pytest.approx(float(aux["accuracy"]), rel=1e-6)
    # weights=None derives them from targets > 0.
    loss3, _ = cross_entropy_loss(logits, targets)
    assert float(loss3) == pytest.approx(float(loss), rel=1e-7)


@pytest.mark.parametrize("label_smoothing,z_loss", [(0.1, 0.0), (0.0, 1e-4), (0.2, 1e-2)])
def test_label_smoothing_and_z_loss_match_reference(label_smoothing, z_loss):
    logits, targets, weights = _inputs()
    loss, aux = cross_entropy_loss(logits, targets, weights, label_smoothing=label_smoothing,
                                   z_loss=z_loss)
    ref, ref_z = _reference_token_losses(logits, targets, label_smoothing, z_loss)
    n = weights.sum()
    np.testing.assert_allclose(float(loss), np.sum(ref * weights) / n, rtol=1e-5)
    np.testing.assert_allclose(float(aux["z_loss_sum"]), np.sum(ref_z * weights), rtol=1e-5,
                               atol=1e-12)
    np.testing.assert_allclose(float(aux["cross_entropy_sum"]),
                               np.sum((ref - ref_z) * weights), rtol=1e-5)
    if z_loss:
        assert float(aux["z_loss"]) > 0


def test_label_smoothed_perfect_prediction_costs_zero():
    # Logits equal to the log of the smoothed target: the normalizing constant makes this 0.
    s, vocab = 0.1, 50
    targets = np.array([[3, 7, 49, 1]], np.int32)
    soft = np.full((1, 4, vocab), s / (vocab - 1))
    np.put_along_axis(soft, targets[..., None], 1 - s, axis=-1)
    logits = np.log(soft).astype(np.float32) + 4.0   # a shift does not change the softmax
    loss, _ = cross_entropy_loss(logits, targets, label_smoothing=s)
    assert abs(float(loss)) < 1e-5
    # and the unsmoothed loss of the same logits is positive (the constant matters)
    plain, _ = cross_entropy_loss(logits, targets)
    assert float(plain) > 0.1


def test_normalisations():
    logits, targets, weights = _inputs()
    ref, _ = _reference_token_losses(logits, targets)
    token_sum = float(np.sum(ref * weights))

    loss, aux = cross_entropy_loss(logits, targets, weights, loss_normalization="total_tokens")
    np.testing.assert_allclose(float(loss), token_sum / (B * T), rtol=1e-5)
    loss, _ = cross_entropy_loss(logits, targets, weights, loss_normalization="constant:233472")
    np.testing.assert_allclose(float(loss), token_sum / 233472, rtol=1e-5)
    loss, _ = cross_entropy_loss(logits, targets, weights, loss_normalization=512.0)
    np.testing.assert_allclose(float(loss), token_sum / 512, rtol=1e-5)
    loss, _ = cross_entropy_loss(logits, targets, weights, loss_normalization="none")
    np.testing.assert_allclose(float(loss), token_sum, rtol=1e-5)

    # sequences: the mean over sequences of each sequence's mean token loss
    loss, aux = cross_entropy_loss(logits, targets, weights, loss_normalization="sequences")
    per_seq = [np.sum(ref[b] * weights[b]) / weights[b].sum() for b in range(B)]
    np.testing.assert_allclose(float(loss), np.mean(per_seq), rtol=1e-5)
    assert float(aux["normalizer"]) == pytest.approx(B)
    assert float(aux["num_tokens"]) == weights.sum()


def test_sequences_normalisation_with_packed_segments():
    logits, targets, weights = _inputs()
    # Row 2 packs three segments (ids 1, 2, 3) and ends in padding; row 0 holds one.
    segment_ids = np.zeros((B, T), np.int32)
    segment_ids[0, :5] = 1
    segment_ids[1, :2] = 1
    segment_ids[2] = [1, 1, 1, 2, 2, 3, 0]
    targets[2, 6] = 0
    weights = (targets > 0).astype(np.float32)
    ref, _ = _reference_token_losses(logits, targets)
    per_segment = []
    for b in range(B):
        for seg in set(segment_ids[b]) - {0}:
            mask = (segment_ids[b] == seg) * weights[b]
            per_segment.append(np.sum(ref[b] * mask) / mask.sum())
    loss, aux = cross_entropy_loss(logits, targets, weights, loss_normalization="sequences",
                                   segment_ids=segment_ids)
    assert float(aux["normalizer"]) == pytest.approx(len(per_segment)) == 5
    np.testing.assert_allclose(float(loss), np.mean(per_segment), rtol=1e-5)


def test_bfloat16_logits_computed_in_float32():
    logits, targets, weights = _inputs()
    bf16 = tf.cast(tf.constant(logits), tf.bfloat16)
    loss, aux = cross_entropy_loss(bf16, targets, weights, z_loss=1e-4)
    assert loss.dtype == tf.float32 and aux["loss_sum"].dtype == tf.float32
    # Reference on the bf16-rounded logits: only the rounding of the input differs.
    ref, _ = _reference_token_losses(tf.cast(bf16, tf.float32).numpy(), targets, 0.0, 1e-4)
    np.testing.assert_allclose(float(loss), np.sum(ref * weights) / weights.sum(), rtol=1e-5)


# Without label smoothing the loss is one fused kernel (sparse softmax cross-entropy); with it,
# logsumexp minus the expected logit. Both must give T5X's gradient, under XLA and in graph mode.
@pytest.mark.parametrize("label_smoothing,z_loss", [(0.1, 1e-3), (0.0, 0.0), (0.0, 1e-3)])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_gradient_and_xla(label_smoothing, z_loss, jit_compile):
    logits, targets, weights = _inputs()
    x = tf.Variable(logits)

    @tf.function(jit_compile=jit_compile)
    def grad_fn():
        with tf.GradientTape() as tape:
            loss, _ = cross_entropy_loss(x, targets, weights, label_smoothing=label_smoothing,
                                         z_loss=z_loss)
        return loss, tape.gradient(loss, x)

    loss, grad = grad_fn()
    eager_loss, _ = cross_entropy_loss(logits, targets, weights, label_smoothing=label_smoothing,
                                       z_loss=z_loss)
    np.testing.assert_allclose(float(loss), float(eager_loss), rtol=1e-6)
    # d loss / d logits = w/N * ((1 + 2 z log_z) softmax - q), as in T5X's custom VJP.
    x64 = logits.astype(np.float64)
    log_z = np.log(np.exp(x64).sum(-1))
    p = np.exp(x64 - log_z[..., None])
    q = np.full(x64.shape, label_smoothing / (V - 1))
    np.put_along_axis(q, targets[..., None].astype(np.int64), 1 - label_smoothing, axis=-1)
    expected = (weights / weights.sum())[..., None] * ((1 + 2 * z_loss * log_z)[..., None] * p - q)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-4, atol=1e-7)


def test_empty_batch_gives_zero_not_nan():
    logits, targets, _ = _inputs()
    loss, aux = cross_entropy_loss(logits, targets, np.zeros((B, T), np.float32))
    assert float(loss) == 0.0 and float(aux["accuracy"]) == 0.0


_TWO_REPLICA_SCRIPT = textwrap.dedent("""
    import json, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from t5core.losses import cross_entropy_loss, global_normalizer
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 6, 9)).astype(np.float32)
    targets = rng.integers(1, 9, size=(4, 6)).astype(np.int32)
    targets[0, 2:] = 0   # replica 0 gets far fewer real tokens than replica 1
    targets[1, 1:] = 0
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {}
    for norm in ["tokens", "sequences", "constant:50"]:
        whole, _ = cross_entropy_loss(logits, targets, loss_normalization=norm)
        def replica_fn(ctx):
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            rows = rid * 2 + tf.range(2)
            lg, tg = tf.gather(logits, rows), tf.gather(targets, rows)
            _, aux = cross_entropy_loss(lg, tg, loss_normalization=norm)
            n = global_normalizer(aux["normalizer"], norm)
            loss, _ = cross_entropy_loss(lg, tg, loss_normalization=norm, normalizer=n)
            return loss
        per_replica = strategy.run(tf.function(replica_fn), args=(0,))
        summed = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        naive = strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(
            tf.function(lambda: cross_entropy_loss(
                tf.gather(logits, tf.distribute.get_replica_context().replica_id_in_sync_group * 2
                          + tf.range(2)),
                tf.gather(targets, tf.distribute.get_replica_context().replica_id_in_sync_group * 2
                          + tf.range(2)), loss_normalization=norm)[0])), axis=None)
        out[norm] = [float(whole), float(summed), float(naive)]
    print(json.dumps(out))
""")


def test_global_normaliser_two_replicas_equal_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, "-c", _TWO_REPLICA_SCRIPT], capture_output=True,
                          check=False,
                          text=True, env=env, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for norm, (whole, summed, naive) in result.items():
        np.testing.assert_allclose(summed, whole, rtol=1e-6, err_msg=norm)
    # Averaging per-replica means would be wrong for token counts that differ by replica.
    assert abs(result["tokens"][2] - result["tokens"][0]) > 1e-3 * abs(result["tokens"][0])


def test_global_normalizer_needs_replica_context():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    tokens = strategy.run(lambda n: global_normalizer(n, "tokens"), args=(tf.constant(7.0),))
    assert float(tokens) == 7.0
    with pytest.raises(ValueError, match="replica context"), strategy.scope():
        global_normalizer(tf.constant(1.0), "tokens")


def test_global_normalizer_of_a_constant_is_the_constant_whatever_was_summed():
    # The trainer sums each micro-batch's normaliser: a constant must not be counted k times.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    for norm, expected in (("constant:50", 50.0), ("none", 1.0), ("tokens", 150.0)):
        value = strategy.run(lambda n: global_normalizer(n, norm), args=(tf.constant(150.0),))
        assert float(value) == expected, norm


def test_bad_arguments():
    logits, targets, weights = _inputs()
    with pytest.raises(ValueError, match="tokens, total_tokens, sequences"):
        cross_entropy_loss(logits, targets, loss_normalization="per_batch")
    with pytest.raises(ValueError, match="positive"):
        parse_loss_normalization("constant:-3")
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        cross_entropy_loss(logits[0], targets)
    with pytest.raises(ValueError, match="disagree"):
        cross_entropy_loss(logits, targets[:, :3])
    with pytest.raises(ValueError, match="weights"):
        cross_entropy_loss(logits, targets, weights[:, :3])
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy_loss(logits, targets, label_smoothing=1.0)
    assert parse_loss_normalization("Constant:2048") == ("constant", 2048.0)
    assert parse_loss_normalization(math.pi) == ("constant", math.pi)
    with pytest.raises(TypeError, match="string or a number"):
        parse_loss_normalization(None)


@pytest.mark.parametrize("norm", ["constant:50", "none", "tokens"])
def test_trainer_step_loss_does_not_depend_on_gradient_accumulation(norm):
    """The step's loss is the whole batch's, however many micro-batches summed it."""
    config = t5core.T5Config(vocab_size=32, d_model=8, d_kv=4, num_heads=2, d_ff=16,
                             num_layers=1, num_decoder_layers=1, dropout_rate=0.0)
    rng = np.random.default_rng(0)
    targets = rng.integers(1, 32, (4, 5)).astype(np.int32)
    targets[0, 3:] = 0
    batch = {"encoder_input_tokens": rng.integers(1, 32, (4, 6)).astype(np.int32),
             "decoder_target_tokens": targets,
             "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
             "decoder_loss_weights": (targets > 0).astype(np.float32)}
    losses = []
    for k in (1, 2):
        keras.utils.set_random_seed(0)
        model = t5core.T5Model(config)
        step = StepBuilder(model, keras.optimizers.SGD(0.0), tf.distribute.get_strategy(),
                           grad_accum_steps=k, loss_normalization=norm).train_step()
        losses.append(float(step(batch)["loss"]))
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
