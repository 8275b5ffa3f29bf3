"""Short runs, resumes, every evaluation example, one unit for accuracy, one set of defaults,
and the command line's endings: what a new user meets first."""

import dataclasses
import json
import os
import subprocess
import sys
import typing

import keras
import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core.classifier import T5EncoderClassifier
from t5core.data.pairs import batched, pad_batches
from t5core.errors import FlagError
from t5core.losses import cross_entropy_loss
from t5core.model_dir import ModelDirMismatchError
from t5core.optimizers.schedules import fit_warmup, make_schedule
from t5core.training.run import RunOptions
from t5core.training.trainer import TrainConfig, Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SCRIPT = os.path.join(ROOT, "scripts", "train.py")
CONFIG = t5core.T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=2, d_ff=32, num_layers=2,
                         num_decoder_layers=2, feed_forward_proj="gated-gelu",
                         tie_word_embeddings=False, dropout_rate=0.0)
ONE_DEVICE = tf.distribute.OneDeviceStrategy("/cpu:0")


def features(n, inputs_length=12, targets_length=8, seed=0):
    rng = np.random.default_rng(seed)
    enc = rng.integers(2, 64, (n, inputs_length)).astype(np.int32)
    enc[:, -3:] = 0
    tgt = rng.integers(2, 64, (n, targets_length)).astype(np.int32)
    tgt[: n // 2, -2:] = 0
    return {"encoder_input_tokens": enc, "decoder_target_tokens": tgt,
            "decoder_input_tokens": np.concatenate([np.zeros((n, 1), np.int32), tgt[:, :-1]], 1),
            "decoder_loss_weights": (tgt > 0).astype(np.float32)}


def trainer(model_dir, eval_data=None, log=None, **overrides):
    settings = dict(model_dir=str(model_dir), train_steps=5, batch_size=8, inputs_length=12,
                    targets_length=8, log_every=1, save_every=0, progress_bar=False,
                    peak_flops=1e11)
    settings.update(overrides)
    config = TrainConfig(**settings)
    keras.utils.set_random_seed(0)
    data = batched(features(64), config.batch_size, seed=1)
    return Trainer(config, ONE_DEVICE, lambda: t5core.T5Model(CONFIG), data, eval_data,
                   log=log or (lambda *a: None))


# -- warm-up longer than the run -----------------------------------------------------------------

def test_a_warmup_as_long_as_the_run_is_shortened_with_a_note():
    assert fit_warmup("cosine", 100, 2000) == (100, None)
    steps, note = fit_warmup("cosine", 100, 30)
    assert steps == 3 and "--warmup_steps=100" in note and "--train_steps=30" in note
    assert fit_warmup("linear", 30, 30)[0] == 3
    assert fit_warmup("constant", 7, 5)[0] == 0
    # rsqrt's warmup_steps sets its scale, not a ramp: kept.
    assert fit_warmup("rsqrt", 10000, 30) == (10000, None)
    # Called directly, the schedule still refuses, naming the flags.
    with pytest.raises(FlagError, match="--train_steps.*--warmup_steps=100"):
        make_schedule("cosine", 1e-3, 100, 30)


def test_a_five_step_run_with_the_default_schedule_trains(tmp_path):
    notes = []
    run = trainer(tmp_path / "short", log=notes.append)  # defaults: cosine, warm-up 100
    history = run.train()
    assert run.step == 5
    assert any("--warmup_steps=100" in str(n) and "0 steps" in str(n) for n in notes)
    rates = [r["learning_rate"] for r in history if "learning_rate" in r]
    assert rates[0] > 0  # no warm-up left: the first logged step is near the peak


# -- resuming with another batch size ------------------------------------------------------------

def test_resume_with_another_batch_size_fails_before_training_naming_both(tmp_path):
    trainer(tmp_path / "run", train_steps=3, save_every=3).train()
    # Refused while the trainer is built, before any step or restore...
    with pytest.raises(ModelDirMismatchError, match=r"--batch_size=8, not --batch_size=16") \
            as refused:
        trainer(tmp_path / "run", train_steps=6, batch_size=16)
    # ...and holding nothing, though its traceback (which reaches the half-built trainer) lives.
    assert refused.traceback
    same = trainer(tmp_path / "run", train_steps=6)
    same.train()
    assert same.step == 6


# -- every evaluation example --------------------------------------------------------------------

def _direct_eval(model, data):
    logits = model({k: data[k] for k in ("encoder_input_tokens", "decoder_input_tokens")})
    _, aux = cross_entropy_loss(logits, data["decoder_target_tokens"],
                                data["decoder_loss_weights"])
    return (float(aux["loss_sum"]) / float(aux["num_tokens"]),
            100.0 * float(aux["correct"]) / float(aux["num_tokens"]))


@pytest.mark.parametrize("n", [5, 19])  # fewer than one batch; two batches and a remainder
def test_every_evaluation_example_counts(tmp_path, n):
    held_out = features(n, seed=3)
    eval_data = batched(held_out, 8, seed=0, repeat=False, shuffle=False)
    shapes = [b["encoder_input_tokens"].shape[0] for b in eval_data]
    assert shapes == [8] * (-(-n // 8))  # one shape for the compiled step
    run = trainer(tmp_path / f"eval{n}", eval_data, eval_steps=0)
    returned = run.evaluate()
    # What Trainer.evaluate's annotation says: (results, sample lines).
    assert typing.get_origin(typing.get_type_hints(Trainer.evaluate)["return"]) is tuple
    results, samples = returned
    assert isinstance(results, dict) and isinstance(samples, list)
    loss, accuracy = _direct_eval(run.model, held_out)
    assert results["eval_loss"] == pytest.approx(loss, rel=1e-5)
    assert results["eval_token_accuracy"] == pytest.approx(accuracy, rel=1e-5)


def test_padding_rows_weigh_nothing_for_the_classifier_head():
    keras.utils.set_random_seed(0)
    model = T5EncoderClassifier(CONFIG, num_classes=3)
    rows = {"encoder_input_tokens": features(5)["encoder_input_tokens"],
            "label": np.array([0, 1, 2, 1, 0], np.int32)}
    padded = next(iter(pad_batches(tf.data.Dataset.from_tensor_slices(rows).batch(8), 8)))
    assert padded["label"].shape == (8,)
    alone, with_padding = model.loss_sums(rows), model.loss_sums(padded)
    assert float(with_padding["num_tokens"]) == 5.0
    np.testing.assert_allclose(float(with_padding["loss_sum"]), float(alone["loss_sum"]),
                               rtol=1e-5)


# -- one unit for accuracy -----------------------------------------------------------------------

def test_token_accuracy_is_logged_in_percent(tmp_path):
    held_out = features(8, seed=3)
    run = trainer(tmp_path / "pct", batched(held_out, 8, seed=0, repeat=False, shuffle=False),
                  train_steps=2, eval_every=2)
    run.train()
    with open(tmp_path / "pct" / "train_log.jsonl") as f:
        records = [json.loads(line) for line in f]
    train = [r for r in records if "token_accuracy" in r]
    evals = [r for r in records if "eval/eval_token_accuracy" in r]
    assert train and evals and not any("accuracy" in r for r in records)
    _, accuracy = _direct_eval(run.model, held_out)
    assert evals[-1]["eval/eval_token_accuracy"] == pytest.approx(accuracy, rel=1e-5)
    for record in train:
        assert 0.0 <= record["token_accuracy"] <= 100.0


# -- one set of defaults -------------------------------------------------------------------------

def test_the_command_line_defaults_are_the_dataclass_defaults():
    from helpxml import read_flags

    flags = read_flags(TRAIN_SCRIPT)
    run, train = RunOptions(), TrainConfig()
    assert run.train == train
    checked = 0
    for name, info in flags.items():
        if name in RunOptions.__dataclass_fields__:
            value = getattr(run, name)
        elif name in TrainConfig.__dataclass_fields__:
            value = getattr(train, name)
        else:
            continue
        checked += 1
        if value is None:
            assert info.default in (None, "", "None"), name
        elif isinstance(value, bool):
            assert info.default == str(value).lower(), name
        elif isinstance(value, float):
            assert float(info.default) == value, name
        else:
            assert info.default == str(value), name
    assert checked == len(flags) - 1  # all but --verbose (t5core.cli's)
    assert "verbose" in flags
    assert (train.optimizer, train.schedule) == ("adamw", "cosine")
    field_names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert {"z_loss", "loss_normalization"} <= field_names


# -- the command line ----------------------------------------------------------------------------

def _train(*args, env=None, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, TRAIN_SCRIPT, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("flag, message", [
    ("--train_steps=-1", "--train_steps must be >= 1 (got -1)"),
    ("--warmup_steps=-5", "--warmup_steps must be >= 0"),
    ("--no_such_flag=1", "Unknown command line flag 'no_such_flag'"),
    ("--vocab=/no/such/spiece.model", "--vocab=/no/such/spiece.model does not exist"),
])
def test_a_bad_flag_ends_with_one_line_and_status_2(flag, message, tmp_path):
    result = _train(flag, f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "run").exists()  # refused before any work


def test_vocab_byte_names_the_byte_tokenizer_not_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file called "byte" here
    RunOptions(vocab="byte", train=TrainConfig(model_dir=str(tmp_path / "run"))).check()
    with pytest.raises(FlagError, match="--vocab=bytes does not exist"):
        RunOptions(vocab="bytes", train=TrainConfig(model_dir=str(tmp_path / "run"))).check()


def test_verbose_shows_the_traceback(tmp_path):
    for verbose in (["--verbose"], []):
        env = {} if verbose else {"T5CORE_VERBOSE": "1"}
        result = _train("--train_steps=-1", f"--model_dir={tmp_path / 'run'}", *verbose,
                        env=env)
        assert result.returncode == 2
        assert "Traceback" in result.stderr and "FlagError" in result.stderr
        assert len(_error_lines(result.stderr)) == 1


def test_five_steps_with_default_flags_exit_0(tmp_path):
    result = _train("--train_steps=5", f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--warmup_steps=100 is not shorter than the run" in result.stdout
    assert "eval at step 5: eval_loss" in result.stdout
    assert os.path.exists(tmp_path / "run" / "ckpt-5.index")


def test_an_argparse_script_ends_a_user_error_with_one_line_and_status_2(tmp_path):
    script = os.path.join(ROOT, "scripts", "inspect_model.py")
    missing = str(tmp_path / "no_checkpoint")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for verbose in ([], ["--verbose"]):
        result = subprocess.run([sys.executable, script, "--checkpoint", missing, *verbose],
                                capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 2, result.stderr[-2000:]
        assert _error_lines(result.stderr) == [f"error: No checkpoint at {missing}"]
        assert ("Traceback" in result.stderr) == bool(verbose)
