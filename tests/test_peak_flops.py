"""MFU's peak: given as a number, measured once per machine and cached (--peak_flops=auto), or
absent (no MFU, said once); training never benchmarks unasked."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import t5core
from conftest import mirrored
from t5core.data.pairs import batched
from t5core.errors import FlagError
from t5core.training import flops
from t5core.training.trainer import TrainConfig, Trainer

CONFIG = t5core.T5Config(vocab_size=32, d_model=8, d_kv=4, num_heads=2, d_ff=16, num_layers=1,
                         num_decoder_layers=1, dropout_rate=0.0)


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """Counts matmul benchmarks (a fake one, 2e9 FLOP/s) and keeps the cache in tmp_path."""
    calls = []

    def fake_measure(dtype, seconds=1.0, **kwargs):
        calls.append((tf.as_dtype(dtype).name, seconds))
        return 2e9

    monkeypatch.setattr(flops, "measure_matmul_peak", fake_measure)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return calls


@pytest.mark.parametrize("value,parsed", [
    ("auto", "auto"), (" AUTO ", "auto"), ("4.7e11", 4.7e11), (1e11, 1e11), (3, 3.0),
    ("", None), (None, None), (0, None), ("0", None)])
def test_parse_peak_flops(value, parsed):
    assert flops.parse_peak_flops(value) == parsed


@pytest.mark.parametrize("value", ["-1", -1.0, "nan", float("inf"), "fast", "1e11x"])
def test_bad_peak_flops_is_a_flag_error(value):
    with pytest.raises(FlagError, match="--peak_flops"):
        TrainConfig(model_dir="unused", peak_flops=value).check()


def test_a_given_number_is_used_without_measuring(measured):
    assert flops.resolve_peak_flops("4.7e11", tf.float32, log=print) == 4.7e11
    assert measured == []


def test_unset_reports_no_mfu_and_says_so(measured):
    lines = []
    assert flops.resolve_peak_flops("", tf.float32, log=lines.append) is None
    assert measured == [] and len(lines) == 1 and "--peak_flops=auto" in lines[0]


def test_auto_measures_once_per_machine_then_reads_the_cache(measured, tmp_path):
    lines = []
    assert flops.resolve_peak_flops("auto", tf.float32, log=lines.append) == 2e9
    assert measured == [("float32", 0.5)]
    cache = json.loads((tmp_path / "cache" / "t5core" / "peak_flops.json").read_text())
    assert list(cache.values()) == [2e9] and "float32" in next(iter(cache))
    assert flops.resolve_peak_flops("auto", tf.float32, log=lines.append) == 2e9
    assert len(measured) == 1 and len(lines) == 1  # the second run neither measured nor logged
    flops.resolve_peak_flops("auto", tf.bfloat16, log=lines.append)  # another dtype: its own
    assert [d for d, _ in measured] == ["float32", "bfloat16"]
    assert len(json.loads((tmp_path / "cache" / "t5core" / "peak_flops.json").read_text())) == 2


def test_auto_remeasures_over_an_unreadable_cache(measured, tmp_path):
    path = tmp_path / "cache" / "t5core" / "peak_flops.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert flops.resolve_peak_flops("auto", tf.float32, log=lambda *a: None) == 2e9
    assert len(measured) == 1 and json.loads(path.read_text())


def _train(tmp_path, peak_flops):
    lines = []
    config = TrainConfig(model_dir=str(tmp_path / "run"), train_steps=2, batch_size=2,
                         inputs_length=4, targets_length=3, log_every=1, save_every=0,
                         progress_bar=False, optimizer="adafactor", peak_flops=peak_flops)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 32, (4, 4)).astype(np.int32)
    targets = rng.integers(2, 32, (4, 3)).astype(np.int32)
    data = batched({"encoder_input_tokens": tokens, "decoder_target_tokens": targets,
                    "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
                    "decoder_loss_weights": np.ones((4, 3), np.float32)}, 2, seed=0)
    trainer = Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"),
                      lambda: t5core.T5Model(CONFIG), data, log=lines.append)
    history = [r for r in trainer.train() if "loss" in r]
    return history, lines


def test_training_without_peak_flops_neither_benchmarks_nor_reports_mfu(measured, tmp_path):
    history, lines = _train(tmp_path, "")
    assert measured == [] and len(history) == 2
    assert all("mfu" not in r for r in history)
    assert sum("MFU is not reported" in line for line in lines) == 1


def test_training_with_a_given_peak_reports_mfu(measured, tmp_path):
    history, _ = _train(tmp_path, 1e11)
    assert measured == [] and all(r["mfu"] > 0 for r in history)


# -- the numerator and the denominator of MFU -----------------------------------------------------


def _matmul_flops(graph) -> int:
    """2 x m x n x k of every MatMul, BatchMatMul and Einsum the traced graph runs (its
    functions included): the model's FLOPs counted from what TensorFlow executes."""
    total = 0
    for op in graph.get_operations():
        if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"):
            out = op.outputs[0].shape.as_list()
            if op.type == "Einsum":
                inputs, output = op.get_attr("equation").decode().split("->")
                left = inputs.split(",")[0].replace("...", "")
                shape = op.inputs[0].shape.as_list()[-len(left):]
                contracted = [n for c, n in zip(left, shape) if c not in output]
            else:
                a = op.inputs[0].shape.as_list()
                flip = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
                contracted = [a[-2] if flip else a[-1]]
            total += 2 * int(np.prod(out)) * int(np.prod(contracted))
    for function in graph._functions.values():
        total += _matmul_flops(function.graph) if hasattr(function, "graph") else 0
    return total


def test_training_flops_is_three_forward_passes_of_the_matmuls_tensorflow_runs():
    """Each projection charged to the tokens it runs over (cross-attention's keys and values
    run over the encoder's: they were charged to the decoder's, 4-10% low on real shapes)."""
    config = t5core.T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=3, d_ff=32,
                             num_layers=2, num_decoder_layers=3, feed_forward_proj="gated-gelu",
                             dropout_rate=0.0)
    model = t5core.T5Model(config)
    batch, inputs_length, targets_length = 2, 12, 5
    forward = tf.function(lambda e, d: model({"encoder_input_tokens": e,
                                              "decoder_input_tokens": d}))
    graph = forward.get_concrete_function(tf.TensorSpec([batch, inputs_length], tf.int32),
                                          tf.TensorSpec([batch, targets_length], tf.int32)).graph
    assert flops.training_flops(config, batch, inputs_length, targets_length) == \
        3 * _matmul_flops(graph)
    # The encoder alone (a classifier head's model): its blocks and no decoder.
    encode = tf.function(lambda e: model.encode(e))
    graph = encode.get_concrete_function(tf.TensorSpec([batch, inputs_length], tf.int32)).graph
    assert flops.training_flops(config, batch, inputs_length, targets_length,
                                decoder=False) == 3 * _matmul_flops(graph)


def test_the_peak_is_that_of_the_devices_a_step_runs_on():
    """One device's --peak_flops times the accelerators; CPU replicas of one machine share its
    cores and count once."""
    assert flops.accelerators(tf.distribute.get_strategy()) == 1
    assert flops.accelerators(mirrored()) == 1
