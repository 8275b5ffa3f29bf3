"""Adafactor against a NumPy reference written from the algorithm; schedules; the factory."""

import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from t5core.optimizers import (
    Adafactor,
    ConstantSchedule,
    CosineDecaySchedule,
    LinearDecaySchedule,
    ReplicaConsistentClipping,
    RsqrtSchedule,
    factored_axes,
    make_optimizer,
    make_schedule,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------------------------
# NumPy reference, from the description in the paper / T5X docs (float64 throughout).
# For a factored variable the two largest dims R (second largest) and C (largest) are used:
#   r = running mean of mean_C(g^2 + eps1), c = running mean of mean_R(g^2 + eps1),
#   v_hat = r * c / mean_R(r), written here with keepdims instead of axis bookkeeping.


def _reference_adafactor(params, grads_per_step, lrs, beta1=None, weight_decay_rate=None,
                         clipping_threshold=1.0, eps1=1e-30, eps2=1e-3, min_dim=128):
    params = [np.asarray(p, np.float64).copy() for p in params]
    state = []
    for p in params:
        s = {}
        dims = sorted(range(p.ndim), key=lambda i: (p.shape[i], i))
        if p.ndim >= 2 and p.shape[dims[-2]] >= min_dim:
            s["axes"] = (dims[-2], dims[-1])  # (R, C)
            s["r"] = np.zeros_like(p.mean(axis=dims[-1], keepdims=True))
            s["c"] = np.zeros_like(p.mean(axis=dims[-2], keepdims=True))
        else:
            s["v"] = np.zeros_like(p)
        if beta1 is not None:
            s["m"] = np.zeros_like(p)
        state.append(s)
    clipped = 0
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs)):
        rho = 1.0 - (t + 1.0) ** -0.8
        for i, (p, g) in enumerate(zip(params, grads)):
            g = np.asarray(g, np.float64)
            s = state[i]
            g2 = g * g + eps1
            if "axes" in s:
                ax_r, ax_c = s["axes"]
                s["r"] = rho * s["r"] + (1 - rho) * g2.mean(axis=ax_c, keepdims=True)
                s["c"] = rho * s["c"] + (1 - rho) * g2.mean(axis=ax_r, keepdims=True)
                v_hat = s["r"] * s["c"] / s["r"].mean(axis=ax_r, keepdims=True)
            else:
                s["v"] = rho * s["v"] + (1 - rho) * g2
                v_hat = s["v"]
            u = g / np.sqrt(v_hat)
            rms_u = np.sqrt(np.mean(u * u))
            if rms_u > clipping_threshold:
                clipped += 1
            u = u / max(1.0, rms_u / clipping_threshold)
            d = lr * max(eps2, np.sqrt(np.mean(p * p))) * u
            if beta1 is not None:
                s["m"] = beta1 * s["m"] + (1 - beta1) * d
                d = s["m"]
            if weight_decay_rate is not None:
                params[i] = (1 - weight_decay_rate) * p - d
            else:
                params[i] = p - d
    return params, state, clipped


# Shapes: factored 2-D (both >= 128), 3-D factored over its two largest dims, unfactored
# because one dim < 128, small matrix, vector, and a zero vector (parameter-scale floor eps2).
SHAPES = [(130, 140), (3, 128, 130), (100, 300), (3, 5), (200,), (16,)]
NUM_STEPS = 5
BASE_LR = 0.01
WARMUP = 2


def _initial_params():
    rng = np.random.default_rng(0)
    params = []
    for shape in SHAPES[:-1]:
        # |p| in [0.5, 1.5]: no element crosses zero in 5 steps, so a relative check is fair.
        sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
        params.append((sign * rng.uniform(0.5, 1.5, shape)).astype(np.float32))
    params.append(np.zeros(SHAPES[-1], np.float32))
    return params


def _gradients():
    rng = np.random.default_rng(1)
    steps = []
    for t in range(NUM_STEPS):
        # Row/column scales make the factored estimate differ from the full one; step 3 is
        # 20x larger than the history, which triggers update clipping.
        factor = 20.0 if t == 3 else 1.0
        grads = []
        for shape in SHAPES:
            g = rng.normal(size=shape)
            if len(shape) >= 2:
                g = g * np.exp(rng.normal(size=shape[-2:-1] + (1,)))
            grads.append((factor * g).astype(np.float32))
        steps.append(grads)
    return steps


def _reference_lrs():
    # ConstantSchedule(0.01, warmup_steps=2): lr_t = 0.01 * min(1, t / 2)
    return [BASE_LR * min(1.0, t / WARMUP) for t in range(NUM_STEPS)]


def _run_tf(mode, beta1=None, weight_decay_rate=None):
    variables = [keras.Variable(p, name=f"p{i}") for i, p in enumerate(_initial_params())]
    opt = Adafactor(ConstantSchedule(BASE_LR, warmup_steps=WARMUP), beta1=beta1,
                    weight_decay_rate=weight_decay_rate)
    opt.build(variables)

    def apply(grads):
        opt.apply_gradients(zip(grads, variables))

    if mode == "xla":
        apply = tf.function(apply, jit_compile=True)
    elif mode == "graph":
        apply = tf.function(apply)
    for grads in _gradients():
        apply([tf.constant(g) for g in grads])
    return variables, opt


def _assert_matches_reference(variables, opt, beta1=None, weight_decay_rate=None):
    p0 = _initial_params()
    ref_params, ref_state, clipped = _reference_adafactor(
        p0, _gradients(), _reference_lrs(), beta1=beta1, weight_decay_rate=weight_decay_rate)
    assert clipped > 0, "test data should exercise update clipping"
    assert int(opt.iterations.numpy()) == NUM_STEPS
    for i, (var, ref) in enumerate(zip(variables, ref_params)):
        got = var.numpy().astype(np.float64)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-12, err_msg=f"param {SHAPES[i]}")
        # The step itself, not only the (larger) parameter, must match.
        delta_ref, delta_got = ref - p0[i], got - p0[i]
        assert np.linalg.norm(delta_got - delta_ref) <= 1e-4 * np.linalg.norm(delta_ref)
    for i, s in enumerate(ref_state):
        idx = opt._get_variable_index(variables[i])
        if "axes" in s:
            np.testing.assert_allclose(opt._v_row[idx].numpy(), np.squeeze(s["r"], s["axes"][1]),
                                       rtol=1e-5)
            np.testing.assert_allclose(opt._v_col[idx].numpy(), np.squeeze(s["c"], s["axes"][0]),
                                       rtol=1e-5)
            assert opt._v[idx] is None
        else:
            np.testing.assert_allclose(opt._v[idx].numpy(), s["v"], rtol=1e-5)
            assert opt._v_row[idx] is None
        if beta1 is not None:
            # m is a running sum of steps whose signs alternate: elements that cancel to ~0
            # carry float32 round-off of the terms, so the tolerance is relative to max |m|.
            np.testing.assert_allclose(opt._m[idx].numpy(), s["m"], rtol=1e-5,
                                       atol=1e-5 * np.max(np.abs(s["m"])))
    last = _gradients()[-1]
    expected_norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in last))
    np.testing.assert_allclose(float(opt.gradient_norm.numpy()), expected_norm, rtol=1e-5)


def test_factored_axes():
    assert factored_axes((130, 140)) == (0, 1)
    assert factored_axes((140, 130)) == (1, 0)
    assert factored_axes((128, 128)) == (0, 1)      # tie: the later dim is "largest"
    assert factored_axes((3, 128, 130)) == (1, 2)
    assert factored_axes((200, 3, 150)) == (2, 0)
    assert factored_axes((100, 300)) is None
    assert factored_axes((127, 4096)) is None
    assert factored_axes((200,)) is None
    assert factored_axes((3, 5), min_dim_size_to_factor=3) == (0, 1)


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_adafactor_matches_numpy_reference(mode):
    variables, opt = _run_tf(mode)
    _assert_matches_reference(variables, opt)


def test_adafactor_momentum_and_weight_decay_match_reference():
    variables, opt = _run_tf("graph", beta1=0.9, weight_decay_rate=1e-2)
    _assert_matches_reference(variables, opt, beta1=0.9, weight_decay_rate=1e-2)


def test_adafactor_slots_are_float32_for_bf16_variables():
    value = np.linspace(-1, 1, 130 * 140, dtype=np.float32).reshape(130, 140)
    start = tf.cast(tf.constant(value), tf.bfloat16)
    grad = tf.cast(tf.constant(np.cos(value * 7)), tf.bfloat16)
    var = keras.Variable(start, dtype="bfloat16", name="w")
    opt = Adafactor(0.1)
    opt.apply_gradients([(grad, var)])
    assert var.dtype == "bfloat16"
    assert all(s.dtype == "float32" for s in opt.variables if s.name != "iteration")
    start32 = tf.cast(start, tf.float32).numpy()
    ref, _, _ = _reference_adafactor([start32], [[tf.cast(grad, tf.float32).numpy()]], [0.1])
    got = tf.cast(var, tf.float32).numpy()
    # One rounding to bfloat16 (8 significant bits) of the float32 result: half an ulp, 2^-9.
    np.testing.assert_allclose(got, ref[0], rtol=2.0 ** -8, atol=1e-6)
    assert np.mean(got != start32) > 0.9


def test_adafactor_checkpoint_resume_continues_identically(tmp_path):
    grads = _gradients()

    def make():
        variables = [keras.Variable(p, name=f"p{i}") for i, p in enumerate(_initial_params())]
        opt = Adafactor(ConstantSchedule(BASE_LR, warmup_steps=WARMUP), beta1=0.5)
        return variables, opt

    variables, opt = make()
    for g in grads[:2]:
        opt.apply_gradients(zip(g, variables))
    path = tf.train.Checkpoint(optimizer=opt, params=variables).save(str(tmp_path / "ckpt"))
    for g in grads[2:]:
        opt.apply_gradients(zip(g, variables))
    uninterrupted = [v.numpy() for v in variables]

    # Restore into a fresh, unbuilt optimizer (the slots are created later, on build) ...
    variables2, opt2 = make()
    status = tf.train.Checkpoint(optimizer=opt2, params=variables2).restore(path)
    opt2.build(variables2)
    status.assert_consumed()
    assert int(opt2.iterations.numpy()) == 2
    for a, b in zip(opt.variables[3:], opt2.variables[3:]):
        assert a.name == b.name
    for g in grads[2:]:
        opt2.apply_gradients(zip(g, variables2))
    for a, b in zip(uninterrupted, variables2):
        np.testing.assert_array_equal(a, b.numpy())
    # ... and a resumed run that lost its slots would not match: the slots matter.
    variables3, opt3 = make()
    tf.train.Checkpoint(params=variables3).restore(path).expect_partial()
    opt3.build(variables3)
    opt3.iterations.assign(2)
    for g in grads[2:]:
        opt3.apply_gradients(zip(g, variables3))
    assert not np.allclose(uninterrupted[0], variables3[0].numpy(), rtol=1e-6)


def test_adafactor_config_round_trip_and_bad_arguments():
    opt = Adafactor(RsqrtSchedule(1.0, 100), beta1=0.9, min_dim_size_to_factor=64,
                    weight_decay_rate=1e-4, global_clipnorm=1.0)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(clone, Adafactor)
    assert clone.get_config() == opt.get_config()
    assert isinstance(clone._learning_rate, RsqrtSchedule)
    with pytest.raises(ValueError, match="weight_decay_rate"):
        Adafactor(0.01, weight_decay=0.1)
    with pytest.raises(ValueError, match="beta1"):
        Adafactor(0.01, beta1=1.5)
    with pytest.raises(ValueError, match="min_dim_size_to_factor must be >= 0"):
        Adafactor(0.01, min_dim_size_to_factor=-1)


def test_adafactor_slots_by_variable():
    # min_dim_size_to_factor=0 (T5X's test_init_state uses it) factors any matrix.
    matrix, vector = keras.Variable(np.ones((3, 2), np.float32)), keras.Variable(np.ones(4))
    opt = Adafactor(0.1, beta1=0.5, min_dim_size_to_factor=0)
    opt.build([matrix, vector])
    shapes = {k: None if s is None else tuple(s.shape) for k, s in opt.slots(matrix).items()}
    assert shapes == {"v_row": (2,), "v_col": (3,), "v": None, "m": (3, 2)}
    assert opt.factored_axes((3, 2)) == (1, 0)
    assert opt.slots(vector)["v"].shape == (4,) and opt.slots(vector)["v_row"] is None
    with pytest.raises(KeyError):
        opt.slots(keras.Variable(np.ones(2)))


def test_adafactor_differs_from_keras_builtin():
    # The point of writing our own: Keras' Adafactor factors a 3x5 matrix and caps the step.
    init = np.linspace(0.5, 1.5, 15, dtype=np.float32).reshape(3, 5)
    grad = tf.constant(np.linspace(-2, 3, 15, dtype=np.float32).reshape(3, 5))
    ours, theirs = keras.Variable(init), keras.Variable(init)
    Adafactor(0.01).apply_gradients([(grad, ours)])
    keras.optimizers.Adafactor(0.01).apply_gradients([(grad, theirs)])
    ref, _, _ = _reference_adafactor([init], [[grad.numpy()]], [0.01])
    np.testing.assert_allclose(ours.numpy(), ref[0], rtol=1e-5)
    assert not np.allclose(theirs.numpy(), ref[0], rtol=1e-5)


# --------------------------------------------------------------------------------- schedules

def test_schedule_values():
    steps = [0, 1, 5, 10, 50, 99, 100, 150, 10_000, 40_000]

    def values(s):
        return [float(s(tf.constant(t, tf.int64))) for t in steps]

    def close(got, want):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)

    close(values(make_schedule("constant", 1e-3)), [1e-3] * len(steps))
    close(values(make_schedule("constant", 1e-3, warmup_steps=10)),
          [1e-3 * min(1.0, t / 10) for t in steps])
    # T5 pretraining: 1/sqrt(max(step, 10000))
    close(values(make_schedule("rsqrt", 1.0, warmup_steps=10_000)),
          [1 / math.sqrt(max(t, 10_000)) for t in steps])
    close(values(make_schedule("rsqrt", 1.0, warmup_steps=100, linear_warmup=True)),
          [min(1.0, t / 100) / math.sqrt(max(t, 100)) for t in steps])
    close(values(make_schedule("rsqrt", 0.5, warmup_steps=0)),
          [0.5 / math.sqrt(max(t, 1)) for t in steps])
    close(values(make_schedule("linear", 2e-3, warmup_steps=10, total_steps=100)),
          [2e-3 * min(1, t / 10) * min(1, max(0, (100 - t) / 90)) for t in steps])
    close(values(make_schedule("cosine", 1e-3, warmup_steps=10, total_steps=100, alpha=0.1)),
          [1e-3 * min(1, t / 10) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(
              1, max(0, (t - 10) / 90))))) for t in steps])
    close(values(make_schedule("linear", 1.0, total_steps=100, end_learning_rate=0.25)),
          [1.0 - 0.75 * min(1, t / 100) for t in steps])


def test_schedules_serialise_and_reject_bad_input():
    for schedule in [ConstantSchedule(1e-3, 5), RsqrtSchedule(1.0, 10_000, linear_warmup=True),
                     LinearDecaySchedule(1e-3, 100, 10, 1e-5), CosineDecaySchedule(1e-3, 100, 10)]:
        clone = keras.optimizers.schedules.deserialize(
            keras.optimizers.schedules.serialize(schedule))
        assert type(clone) is type(schedule)
        assert clone.get_config() == schedule.get_config()
        assert float(clone(37)) == float(schedule(37))
    with pytest.raises(ValueError, match="constant, rsqrt, linear, cosine"):
        make_schedule("exponential", 1e-3)
    with pytest.raises(ValueError, match="total_steps"):
        make_schedule("cosine", 1e-3, warmup_steps=10)
    with pytest.raises(ValueError, match="total_steps"):
        make_schedule("linear", 1e-3, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="warmup_steps"):
        make_schedule("constant", 1e-3, warmup_steps=-1)


# ----------------------------------------------------------------------------------- factory

def test_make_optimizer():
    schedule = make_schedule("constant", 1e-3)
    ada = make_optimizer("adafactor", schedule, weight_decay=1e-4, clip_norm=1.0)
    assert isinstance(ada, Adafactor)
    assert ada.weight_decay_rate == 1e-4 and ada.global_clipnorm == 1.0 and ada.beta1 is None
    adamw = make_optimizer("adamw", schedule, weight_decay=0.01, clip_norm=None)
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert isinstance(adamw, ReplicaConsistentClipping)
    assert adamw.weight_decay == 0.01 and adamw.global_clipnorm is None
    with pytest.raises(ValueError, match="adafactor, adamw"):
        make_optimizer("sgd", schedule)

    # Excluded names are not decayed (the default excludes the RMS norm "scale").
    scale = keras.Variable(np.ones(4, np.float32), name="scale")
    kernel = keras.Variable(np.ones(4, np.float32), name="kernel")
    opt = make_optimizer("adafactor", 0.0, weight_decay=0.1)  # lr 0: only decay moves things
    opt.apply_gradients([(tf.ones(4), scale), (tf.ones(4), kernel)])
    np.testing.assert_allclose(scale.numpy(), 1.0)
    np.testing.assert_allclose(kernel.numpy(), 0.9, rtol=1e-6)


class _ClippedSGD(ReplicaConsistentClipping, keras.optimizers.SGD):
    """SGD moves by the (clipped) gradient itself, which makes clipping visible."""


def test_global_norm_clipping_and_gradient_norm():
    var = keras.Variable(np.zeros(4, np.float32))
    opt = _ClippedSGD(learning_rate=1.0, global_clipnorm=2.0)
    grad = tf.constant([3.0, 4.0, 0.0, 0.0])   # norm 5
    opt.apply_gradients([(grad, var)])
    np.testing.assert_allclose(var.numpy(), [-1.2, -1.6, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(float(opt.gradient_norm.numpy()), 5.0, rtol=1e-6)


@pytest.mark.parametrize("name", ["adamw", "adafactor"])
def test_fused_update_with_the_norm_taken_outside_equals_the_plain_update(name):
    """The trainer's single-replica update (one XLA program, gradient norm computed before it
    and handed in) moves the weights as the plain update does, clipping included."""
    import t5core
    from t5core.optimizers import make_optimizer
    from t5core.training.steps import StepBuilder

    config = t5core.T5Config(vocab_size=40, d_model=16, d_kv=4, num_heads=2, d_ff=24,
                             num_layers=1, num_decoder_layers=1, dropout_rate=0.0)
    rng = np.random.default_rng(0)
    targets = rng.integers(2, 40, (2, 5)).astype(np.int32)
    features = {"encoder_input_tokens": tf.constant(rng.integers(2, 40, (2, 6)), tf.int32),
                "decoder_input_tokens": tf.constant(np.concatenate(
                    [np.zeros((2, 1), np.int32), targets[:, :-1]], 1)),
                "decoder_target_tokens": tf.constant(targets),
                "decoder_loss_weights": tf.ones((2, 5))}
    results = []
    for fuse in (True, False):
        keras.utils.set_random_seed(1)
        model = t5core.T5Model(config)
        optimizer = make_optimizer(name, 0.05, clip_norm=0.5)  # the norm is ~2: clipping acts
        optimizer.build(model.trainable_variables)
        initial = [v.numpy() for v in model.trainable_variables]
        step = StepBuilder(model, optimizer, tf.distribute.get_strategy(),
                           fuse_update=fuse).train_step()
        for _ in range(2):
            step(features)
        results.append(([v.numpy() for v in model.trainable_variables],
                        float(optimizer.gradient_norm.numpy())))
    (fused, fused_norm), (plain, plain_norm) = results
    assert fused_norm > 0.5
    np.testing.assert_allclose(fused_norm, plain_norm, rtol=1e-5)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(fused, initial)) > 1e-3
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from t5core.optimizers import make_optimizer

    def grads_for(replica, step):
        # Replicas see gradients of very different norms, so clipping each replica's part
        # (Keras' own global_clipnorm) would give a different sum than clipping the whole.
        x = np.arange(130 * 140, dtype=np.float32).reshape(130, 140)
        return [np.sin(x * (step + 1) + replica) * (1 + 9 * replica),
                np.cos(np.arange(6, dtype=np.float32) + step) * (1 + replica)]

    def run(strategy):
        with strategy.scope():
            vs = [keras.Variable(np.full((130, 140), 0.5, np.float32)),
                  keras.Variable(np.linspace(-1, 1, 6).astype(np.float32))]
            opt = make_optimizer("adafactor", 0.01, clip_norm=3.0, beta1=0.5)
            opt.build(vs)
        norms = []
        for step in range(3):
            if strategy.num_replicas_in_sync == 1:
                total = [a + b for a, b in zip(grads_for(0, step), grads_for(1, step))]
                opt.apply_gradients(zip([tf.constant(g) for g in total], vs))
            else:
                @tf.function
                def replica_step(step_t):
                    rid = tf.distribute.get_replica_context().replica_id_in_sync_group
                    gs = tf.py_function(lambda r: grads_for(int(r), step), [rid],
                                        [tf.float32, tf.float32])
                    gs = [tf.ensure_shape(g, v.shape) for g, v in zip(gs, vs)]
                    opt.apply_gradients(zip(gs, vs))
                strategy.run(replica_step, args=(tf.constant(step),))
            norms.append(float(opt.gradient_norm.numpy()))
        return [v.numpy() for v in vs], norms

    one, n1 = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two, n2 = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print(json.dumps({"max_abs_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(one, two)),
                      "max_rel_diff": max(float(np.max(np.abs(a - b) / np.abs(a)))
                                          for a, b in zip(one, two)),
                      "moved": float(np.max(np.abs(one[0] - 0.5))), "norms1": n1, "norms2": n2}))
""")


def test_adafactor_mirrored_two_replicas_equals_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True,
                          check=False,
                          text=True, env=env, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["moved"] > 1e-4
    assert result["max_rel_diff"] < 1e-5, result
    np.testing.assert_allclose(result["norms2"], result["norms1"], rtol=1e-5)
    assert min(result["norms1"]) > 3.0   # clipping was active on every step


@pytest.mark.parametrize("name", ["adafactor", "adamw"])
@pytest.mark.parametrize("schedule", [False, True], ids=["constant", "warmup"])
def test_gradient_accumulation_equals_one_large_step(name, schedule):
    # Keras' gradient_accumulation_steps=2 on micro-batch gradients g1, g2 (each a mean over
    # its micro-batch) equals one step on (g1 + g2) / 2, including the decay-rate step count
    # and the learning rate a schedule gives each update.
    rng = np.random.default_rng(3)
    init = [rng.normal(size=(130, 140)).astype(np.float32),
            rng.normal(size=(5,)).astype(np.float32)]
    micro = [[rng.normal(size=x.shape).astype(np.float32) for x in init] for _ in range(6)]
    accumulated = [keras.Variable(x) for x in init]
    large = [keras.Variable(x) for x in init]
    rate = (lambda: make_schedule("linear", 0.01, 3, 10)) if schedule else (lambda: 0.01)
    opt_acc = make_optimizer(name, rate(), clip_norm=5.0, gradient_accumulation_steps=2)
    opt_large = make_optimizer(name, rate(), clip_norm=5.0)
    opt_acc.build(accumulated)

    @tf.function(jit_compile=True)
    def micro_step(grads):
        opt_acc.apply_gradients(zip(grads, accumulated))

    for grads in micro:
        micro_step([tf.constant(g) for g in grads])
    for i in range(0, 6, 2):
        opt_large.apply_gradients(zip([(a + b) / 2 for a, b in zip(micro[i], micro[i + 1])], large))
    assert int(opt_acc.iterations.numpy()) == int(opt_large.iterations.numpy()) == 3
    for a, b in zip(accumulated, large):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(a.numpy(), init[0] if a.shape == init[0].shape else init[1])
