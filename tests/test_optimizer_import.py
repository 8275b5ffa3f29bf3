"""Continuing a T5X or Mesh-TF run: Adafactor slots and step imported with the weights.

Each check takes one t5core step after the import and compares it with the update T5X
(`t5x/adafactor.py`, `apply_param_gradient`) or Mesh-TF (`mesh_tensorflow/optimize.py`,
`AdafactorOptimizer.apply_grad`) computes from the checkpoint's own slots, in the checkpoint's own
layout, written out in NumPy below from those formulas. The real T5X fixture's state is what T5X
saved at step 0 (zeros, nothing factored at its sizes); synthetic checkpoints in the same layouts
add a later step, non-zero slots, factored slots (through the relative-attention table's
transpose, and Mesh-TF's square kernels, whose `slot_vr` is t5core's `v_col`) and momentum.
"""

import json
import os
import shutil
import subprocess
import sys

import msgpack
import numpy as np
import pytest
import tensorflow as tf

from conftest import FIXTURES
from t5core.checkpoints import load_pretrained, open_checkpoint, plan_mapping
from t5core.checkpoints.optimizer_state import (
    OptimizerStateMismatchError,
    import_optimizer_state,
)
from t5core.errors import CheckpointError, FlagError
from t5core.optimizers import Adafactor, make_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T5X_DIR = FIXTURES / "t5x_tiny"
T5X_FILE = T5X_DIR / "test_t5_tiny.checkpoint_0"
T5X_GINS = [str(T5X_DIR / "t5_1_1_base.gin"), str(T5X_DIR / "tiny.gin")]
MTF_INDEX = FIXTURES / "mtf_tiny_t5_index"
LR = 0.01


# -- the reference: one Adafactor update in the checkpoint's layout ----------------------------

def t5x_factored_dims(shape):
    """T5X `_factored_dims` (heuristic): (d1, d0) = argsort's second-to-last and last."""
    order = np.argsort(shape, kind="stable")
    return int(order[-2]), int(order[-1])


def mesh_tf_factored_dims(shape):
    """Mesh-TF `_factored_dims`: dims sorted by decreasing size (stable), d0 first."""
    order = sorted(range(len(shape)), key=lambda i: -shape[i])
    return order[1], order[0]


def reference_update(param, grad, slots, step, dims, lr=LR, beta1=None, decay_exponent=0.8,
                     clipping_threshold=1.0, epsilon1=1e-30, epsilon2=1e-3):
    """New (param, slots) by the shared T5X / Mesh-TF rule, float64. `slots`: "v", or "v_row"
    (averaged over d0) and "v_col" (averaged over d1) with dims = (d1, d0); "m" with beta1."""
    param, grad = np.float64(param), np.float64(grad)
    decay = 1.0 - (step + 1.0) ** -decay_exponent
    scale = lr * max(np.sqrt(np.mean(param ** 2)), epsilon2)
    grad_sq = grad ** 2 + epsilon1
    new = {}
    if "v" in slots:
        new["v"] = decay * slots["v"] + (1 - decay) * grad_sq
        x = grad / np.sqrt(new["v"])
    else:
        d1, d0 = dims
        new["v_row"] = decay * slots["v_row"] + (1 - decay) * grad_sq.mean(axis=d0)
        new["v_col"] = decay * slots["v_col"] + (1 - decay) * grad_sq.mean(axis=d1)
        r_factor = new["v_row"] / new["v_row"].mean()  # v_row keeps only d1 in a 2-D weight
        x = grad / np.sqrt(np.expand_dims(r_factor, d0)) / np.sqrt(
            np.expand_dims(new["v_col"], d1))
    x = x / max(1.0, np.sqrt(np.mean(x ** 2)) / clipping_threshold)
    subtrahend = scale * x
    if beta1 is not None:
        new["m"] = beta1 * slots["m"] + (1 - beta1) * subtrahend
        subtrahend = new["m"]
    return param - subtrahend, new


def second_moment(slots, dims):
    """The full second-moment estimate the slots stand for (v, or v_row x v_col / mean)."""
    if "v" in slots:
        return np.float64(slots["v"])
    d1, d0 = dims
    row, col = np.float64(slots["v_row"]), np.float64(slots["v_col"])
    return np.expand_dims(row / row.mean(), d0) * np.expand_dims(col, d1)


def t5core_slots(opt, variable):
    return {k: s.numpy() for k, s in opt.slots(variable).items() if s is not None}


def t5core_dims(opt, variable):
    axes = opt.factored_axes(tuple(variable.shape))
    return None if axes is None else axes  # (second, largest): v_row averages over largest


def check_one_step(path, model, opt, factored_dims, slot_names, beta1=None):
    """Imports, takes one step with fixed gradients, compares every variable and slot."""
    fmt, reader, rules, location = open_checkpoint(path)
    variables = model.variables_by_name()
    plan = plan_mapping(reader.shapes, rules, {k: tuple(v.shape) for k, v in variables.items()})
    imported = import_optimizer_state(path, model, opt)
    step = imported.step
    assert int(opt.iterations.numpy()) == step
    rng = np.random.default_rng(step)
    grads = {}
    for target, var in variables.items():
        g = rng.normal(size=var.shape)
        if len(var.shape) == 2:  # rows of different scale: factoring matters
            g = g * np.exp(rng.normal(size=(var.shape[0], 1)))
        grads[target] = g.astype(np.float32)
    before = {t: v.numpy() for t, v in variables.items()}
    opt.apply_gradients([(grads[t], variables[t]) for t in variables])
    assert int(opt.iterations.numpy()) == step + 1
    factored = 0
    for name, target, transform in plan.assignments:
        param = np.asarray(reader.read(name), np.float32)
        # A transpose, or a layout change that leaves these 2-D kernels as they are: each is
        # its own inverse, so it also takes t5core's gradient to the checkpoint's layout.
        assert transform.name == "transpose" or transform(param).shape == param.shape
        np.testing.assert_array_equal(transform(param), before[target])
        stored = {k: np.asarray(reader.read(n), np.float64)
                  for k, n in slot_names(reader.shapes, name).items()}
        dims = None if "v" in stored else factored_dims(param.shape)
        factored += dims is not None
        ref_param, ref_slots = reference_update(param, transform(grads[target]), stored, step,
                                                dims, beta1=beta1)
        got = variables[target].numpy()
        atol = 2 * np.finfo(np.float32).eps * np.abs(param).max()
        np.testing.assert_allclose(got - before[target], transform(ref_param - param),
                                   rtol=1e-5, atol=atol, err_msg=target)
        ours = t5core_slots(opt, variables[target])
        np.testing.assert_allclose(second_moment(ours, t5core_dims(opt, variables[target])),
                                   transform(second_moment(ref_slots, dims)), rtol=1e-5,
                                   err_msg=target)
        if beta1 is not None:
            np.testing.assert_allclose(ours["m"], transform(ref_slots["m"]), rtol=1e-5,
                                       atol=1e-6 * np.abs(ref_slots["m"]).max(), err_msg=target)
    assert factored == imported.factored
    return imported


# -- T5X checkpoints ----------------------------------------------------------------------------

def t5x_slot_names(shapes, name):
    """The used slots, read off T5X's layout (placeholders have shape (1,))."""
    base = name.replace("optimizer/target/", "optimizer/state/param_states/")
    used = {k: f"{base}/{k}" for k in ("v", "m") if tuple(shapes[f"{base}/{k}"]) == shapes[name]}
    if "v" not in used:
        used.update(v_row=f"{base}/v_row", v_col=f"{base}/v_col")
    return used


def _read_t5x(path):
    def ext_hook(code, data):
        if code == 1:
            shape, dtype, buffer = msgpack.unpackb(data, raw=False)
        else:  # 3: a numpy scalar
            (dtype, buffer), shape = msgpack.unpackb(data, raw=False), ()
        return np.frombuffer(buffer, np.dtype(dtype)).reshape(shape).copy()
    return msgpack.unpackb(path.read_bytes(), ext_hook=ext_hook, raw=False,
                           strict_map_key=False)


def _write_t5x(tree, path):
    def default(obj):
        if isinstance(obj, (np.ndarray, np.generic)):
            obj = np.asarray(obj)
            return msgpack.ExtType(1, msgpack.packb([list(obj.shape), obj.dtype.name,
                                                     obj.tobytes()]))
        raise TypeError(type(obj))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgpack.packb(tree, default=default))


def _positive(rng, shape):
    return rng.uniform(0.2, 2.0, shape).astype(np.float32)


def _factor_pair(rng, shape, d1, d0):
    """v_row (averaged over d0) and v_col (over d1) with equal means, as in any real run (both
    average the same squared gradients)."""
    v_row = _positive(rng, np.delete(shape, d0))
    v_col = _positive(rng, np.delete(shape, d1))
    return v_row, (v_col * (v_row.mean() / v_col.mean())).astype(np.float32)


def synthetic_t5x(directory, step, min_dim_size_to_factor=128, beta1=None, seed=0):
    """The real fixture's weights with the state T5X's Adafactor would keep at `step` under
    these settings (`init_param_state`: unused slots are (1,) placeholders), non-zero."""
    tree = _read_t5x(T5X_FILE)
    rng = np.random.default_rng(seed)

    def fill(params, states):
        for key, value in params.items():
            if isinstance(value, dict):
                fill(value, states[key])
                continue
            shape, state = value.shape, {k: np.zeros((1,), np.float32)
                                         for k in ("v_row", "v_col", "v", "m")}
            dims = t5x_factored_dims(shape) if len(shape) == 2 else None
            if dims and shape[dims[0]] >= min_dim_size_to_factor:
                state["v_row"], state["v_col"] = _factor_pair(rng, shape, *dims)
            else:
                state["v"] = _positive(rng, shape)
            if beta1 is not None:
                state["m"] = (rng.normal(size=shape) * 1e-3).astype(np.float32)
            states[key] = state

    fill(tree["optimizer"]["target"], tree["optimizer"]["state"]["param_states"])
    tree["optimizer"]["state"]["step"] = np.int32(step)
    _write_t5x(tree, directory / f"checkpoint_{step}" / "checkpoint")
    return str(directory)


def _t5x_model(path):
    return load_pretrained(path, config=T5X_GINS)


def test_real_t5x_fixture_state_imports_and_steps_as_t5x():
    # T5X saved this state at step 0 with the T5.1.1 gin's Adafactor (decay 0.8, no momentum,
    # min_dim_size_to_factor 128): v all zeros, nothing factored (every dim of this tiny model
    # is below 128). The step still runs the imported slots through both layouts.
    model = _t5x_model(str(T5X_FILE))
    opt = Adafactor(LR)
    opt.build(model.trainable_variables)
    imported = check_one_step(str(T5X_FILE), model, opt, t5x_factored_dims, t5x_slot_names)
    assert (imported.step, imported.variables, imported.factored) == (0, 52, 0)
    assert not imported.momentum and not imported.untrained


def test_synthetic_t5x_factored_with_momentum_at_step_37(tmp_path):
    path = synthetic_t5x(tmp_path, 37, min_dim_size_to_factor=4, beta1=0.9)
    model = _t5x_model(path)
    opt = Adafactor(LR, beta1=0.9, min_dim_size_to_factor=4)
    opt.build(model.trainable_variables)
    imported = check_one_step(path, model, opt, t5x_factored_dims, t5x_slot_names, beta1=0.9)
    # Factored: all 40 2-D weights (the kernels, the embedding, the logits and both [heads,
    # buckets] tables, which t5core keeps transposed); whole: the 12 norm scales.
    assert (imported.step, imported.factored, imported.momentum) == (37, 40, True)
    table = model.variables_by_name()["encoder/block_0/self_attention/relative_attention_bias/"
                                      "embeddings"]
    assert tuple(table.shape) == (32, 4)
    assert tuple(opt.slots(table)["v_row"].shape) == (4,)  # per head, as T5X's v_row


def test_t5x_settings_that_cannot_hold_the_state(tmp_path):
    path = synthetic_t5x(tmp_path, 5, min_dim_size_to_factor=4)
    model = _t5x_model(path)
    whole = Adafactor(LR)  # min_dim_size_to_factor 128: keeps every second moment whole
    whole.build(model.trainable_variables)
    with pytest.raises(OptimizerStateMismatchError,
                       match=r"(?s)factors the second moment, t5core's Adafactor keeps it whole "
                             r"\(factored=True, min_dim_size_to_factor=128\).*and \d+ more"):
        import_optimizer_state(path, model, whole)
    momentum = Adafactor(LR, beta1=0.9, min_dim_size_to_factor=4)
    momentum.build(model.trainable_variables)
    with pytest.raises(OptimizerStateMismatchError, match="checkpoint has no momentum slot m"):
        import_optimizer_state(path, model, momentum)
    # Nothing was assigned: all checks run before the first value is read.
    for opt in (whole, momentum):
        assert int(opt.iterations.numpy()) == 0
        for variable in model.trainable_variables:
            assert not any(np.any(s.numpy()) for s in opt.slots(variable).values()
                           if s is not None)


def test_checkpoints_without_optimizer_state(tmp_path):
    model = _t5x_model(str(T5X_FILE))
    opt = Adafactor(LR)
    opt.build(model.trainable_variables)
    tree = _read_t5x(T5X_FILE)
    tree = {"version": tree["version"], "target": tree["optimizer"]["target"]}
    _write_t5x(tree, tmp_path / "weights_only" / "checkpoint")
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        import_optimizer_state(str(tmp_path / "weights_only"), model, opt)
    hf = FIXTURES / "hf_tiny_random_t5"
    hf_model = load_pretrained(str(hf))
    hf_opt = Adafactor(LR)
    hf_opt.build(hf_model.trainable_variables)
    with pytest.raises(CheckpointError, match="hf-safetensors|hf-bin|hf-h5"):
        import_optimizer_state(str(hf), hf_model, hf_opt)
    adamw = make_optimizer("adamw", LR)
    adamw.build(model.trainable_variables)
    with pytest.raises(FlagError, match="--optimizer=adafactor"):
        import_optimizer_state(str(T5X_FILE), model, adamw)


def test_frozen_variables_keep_no_state():
    model = _t5x_model(str(T5X_FILE))
    embedding = model.variables_by_name()["shared/embeddings"]
    opt = Adafactor(LR)
    opt.build([v for v in model.trainable_variables if v is not embedding])
    imported = import_optimizer_state(str(T5X_FILE), model, opt)
    assert imported.untrained == ["shared/embeddings"] and imported.variables == 51


# -- Mesh-TF checkpoints -----------------------------------------------------------------------

def mesh_tf_slot_names(shapes, name):
    return {k: f"{name}_slot_{s}" for k, s in (("v_row", "vr"), ("v_col", "vc"), ("v", "v"),
                                                ("m", "m")) if f"{name}_slot_{s}" in shapes}


def synthetic_mesh_tf(directory, step, attention_width=128, min_dim_size_to_factor=128,
                      seed=0):
    """A Mesh-TF checkpoint with the names, dtypes and shapes of the real index fixture
    (attention width 2 heads x 64 = 128, or `attention_width`), random weights, and the slots
    Mesh-TF's Adafactor creates under these settings (`_slot_vr`/`_slot_vc` or `_slot_v`)."""
    index = tf.train.load_checkpoint(str(MTF_INDEX / "model.ckpt-0"))
    dtypes = index.get_variable_to_dtype_map()
    rng = np.random.default_rng(seed)
    tensors = {"global_step": tf.constant(step, tf.int64)}
    for name, shape in sorted(index.get_variable_to_shape_map().items()):
        if "_slot_" in name or name == "global_step":
            continue
        shape = tuple(attention_width if d == 128 else d for d in shape)  # only heads are 128
        tensors[name] = tf.constant(rng.normal(size=shape) * 0.5, dtypes[name])
        dims = mesh_tf_factored_dims(shape) if len(shape) >= 2 else None
        if dims and shape[dims[0]] >= min_dim_size_to_factor:
            vr, vc = _factor_pair(rng, shape, *dims)
            tensors[name + "_slot_vr"], tensors[name + "_slot_vc"] = tf.constant(vr), \
                tf.constant(vc)
        else:
            tensors[name + "_slot_v"] = tf.constant(_positive(rng, shape))
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(directory / f"model.ckpt-{step}"), tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=[tensors[n] for n in names])
    (directory / "checkpoint").write_text(f'model_checkpoint_path: "model.ckpt-{step}"\n')
    shutil.copyfile(MTF_INDEX / "operative_config.gin", directory / "operative_config.gin")
    return str(directory)


def test_mesh_tf_index_names_whole_second_moments(tmp_path):
    # The real index's layout: every weight with `_slot_v` (no dim pair reaches 128), bfloat16
    # weights, float32 slots, an int64 global_step.
    path = synthetic_mesh_tf(tmp_path, 1234)
    model = load_pretrained(path)
    opt = Adafactor(LR)
    opt.build(model.trainable_variables)
    imported = check_one_step(path, model, opt, mesh_tf_factored_dims, mesh_tf_slot_names)
    assert (imported.step, imported.factored) == (1234, 0)


def test_mesh_tf_square_kernels_swap_vr_and_vc(tmp_path):
    # 2 heads x 16: q, k, v, o are 32 x 32. Mesh-TF's tie rule averages slot_vr over dim 0, so
    # it keeps dim 1: t5core's v_col (T5X's rule averages v_row over dim 1 instead).
    path = synthetic_mesh_tf(tmp_path, 300, attention_width=32, min_dim_size_to_factor=32)
    model = load_pretrained(path)
    opt = Adafactor(LR, min_dim_size_to_factor=32)
    opt.build(model.trainable_variables)
    reader = tf.train.load_checkpoint(path)
    q = model.variables_by_name()["encoder/block_0/self_attention/q/kernel"]
    vr = reader.get_tensor("encoder/block_000/layer_000/SelfAttention/q_slot_vr")
    imported = import_optimizer_state(path, model, opt)
    np.testing.assert_array_equal(opt.slots(q)["v_col"].numpy(), vr)
    assert imported.factored == 38  # every 2-D weight but the two [2, 32] relative tables
    model = load_pretrained(path)
    opt = Adafactor(LR, min_dim_size_to_factor=32)
    opt.build(model.trainable_variables)
    check_one_step(path, model, opt, mesh_tf_factored_dims, mesh_tf_slot_names)


# -- the trainer and the command line ----------------------------------------------------------

def _run_options(tmp_path, checkpoint, train_steps, **overrides):
    from t5core.training.run import RunOptions
    from t5core.training.trainer import TrainConfig

    config = tmp_path / "config.json"
    if not config.exists():
        from t5core.checkpoints.t5x import config_from_gin

        config_from_gin(T5X_GINS).to_json(str(config))
    train = TrainConfig(model_dir=str(tmp_path / "run"), train_steps=train_steps, batch_size=4,
                        inputs_length=16, targets_length=8, eval_every=0, eval_steps=1,
                        save_every=1, log_every=1, optimizer="adafactor", learning_rate=1e-3,
                        schedule="constant", peak_flops=1e12, progress_bar=False)
    options = dict(model=str(config), init_checkpoint=checkpoint, init_optimizer_state=True,
                   eval_examples=2, train=train)
    options.update(overrides)
    return RunOptions(**options)


def test_trainer_continues_the_run_and_a_resume_does_not_import_again(tmp_path):
    from t5core.training.run import run

    path = synthetic_t5x(tmp_path / "t5x", 37)
    lines = []
    trainer = run(_run_options(tmp_path, path, 39), log=lines.append)
    assert any("Continuing the run: Adafactor state of 52 variables (0 factored) and step 37"
               in line for line in lines)
    steps = [r["step"] for r in trainer.history if "loss" in r]
    assert steps == [38, 39] and trainer.step == 39
    lines.clear()
    trainer = run(_run_options(tmp_path, path, 40), log=lines.append)
    assert any("resuming from" in line and "ckpt-39" in line for line in lines)
    assert not any("Continuing the run" in line for line in lines)
    assert [r["step"] for r in trainer.history if "loss" in r] == [40]


def test_trainer_refuses_what_cannot_continue(tmp_path):
    from t5core.training.run import run

    path = synthetic_t5x(tmp_path / "t5x", 37)
    with pytest.raises(FlagError, match=r"--train_steps=37 is not above the step .* \(37\)"):
        run(_run_options(tmp_path, path, 37))
    with pytest.raises(ValueError, match="--init_optimizer_state needs --optimizer=adafactor"):
        options = _run_options(tmp_path, path, 40)
        options.train.optimizer = "adamw"
        run(options)
    with pytest.raises(ValueError, match=r"--init_optimizer_state needs --init_checkpoint"):
        run(_run_options(tmp_path, "", 40))


def test_train_script_flag(tmp_path):
    path = synthetic_t5x(tmp_path / "t5x", 12)
    from t5core.checkpoints.t5x import config_from_gin

    config_from_gin(T5X_GINS).to_json(str(tmp_path / "config.json"))
    model_dir = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--model_dir={model_dir}",
           f"--model={tmp_path / 'config.json'}", f"--init_checkpoint={path}",
           "--init_optimizer_state", "--optimizer=adafactor", "--schedule=constant",
           "--train_steps=13", "--batch_size=4", "--inputs_length=16", "--targets_length=8",
           "--eval_examples=2", "--eval_steps=1", "--log_every=1", "--peak_flops=1e12",
           "--progress_bar=false"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "and step 12 from" in result.stdout
    with open(model_dir / "train_log.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records if "loss" in r] == [13]
