"""A resume continues the run in the checkpoint exactly, or is refused before any step naming
the flag; whatever point a run is stopped at, what it wrote stays readable and true.

Stops are simulated in-process at a chosen point (a signal sent to this process, a write that
fails) so that each case takes seconds.
"""

import json
import os
import re
import shutil
import signal

import keras
import pytest
import tensorflow as tf

import t5core
from t5core import model_dir as model_dir_module
from t5core.data.pairs import batched
from t5core.checkpoints.model_state import ModelState
from t5core.model_dir import ModelDirMismatchError
from t5core.training import train_log
from t5core.training.trainer import RESUME_SETTINGS, TrainConfig, Trainer

from test_trainer import CONFIG, toy_features

ONE_DEVICE = []


def one_device():
    if not ONE_DEVICE:
        ONE_DEVICE.append(tf.distribute.OneDeviceStrategy("/cpu:0"))
    return ONE_DEVICE[0]


def make_trainer(model_dir, model_config=CONFIG, **overrides):
    """A 6-step run that evaluates and saves every 2 steps."""
    settings = dict(model_dir=str(model_dir), train_steps=6, batch_size=8, inputs_length=12,
                    targets_length=8, log_every=1, save_every=2, eval_every=2, eval_steps=0,
                    progress_bar=False, optimizer="adafactor", learning_rate=1e-2,
                    peak_flops=1e11)
    settings.update(overrides)
    config = TrainConfig(**settings)
    keras.utils.set_random_seed(config.seed)
    train = batched(toy_features(), config.batch_size, seed=1)
    evaluation = batched(toy_features(8, seed=1), 8, seed=1, repeat=False, shuffle=False)
    return Trainer(config, one_device(), lambda: t5core.T5Model(model_config), train,
                   evaluation, log=lambda *a: None)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    trainer = make_trainer(tmp_path_factory.mktemp("uninterrupted") / "run")
    trainer.train()
    return trainer


def test_a_run_stopped_right_after_an_evaluation_resumes_with_its_best_value(
        tmp_path, uninterrupted):
    """The checkpoint of an evaluated step holds that evaluation's best value and patience."""
    trainer = make_trainer(tmp_path / "run")
    evaluate = trainer._evaluate

    def evaluate_then_stop(step, *preemption):
        stopping = evaluate(step, *preemption)
        if step == 4:  # SIGTERM once the evaluation is over: the trainer stops after step 4
            os.kill(os.getpid(), signal.SIGTERM)
        return stopping

    trainer._evaluate = evaluate_then_stop
    trainer.train()
    assert trainer.stopped_by == "SIGTERM"
    best_at_stop = float(trainer.best.numpy())
    logged = train_log.read(str(tmp_path / "run" / "train_log.jsonl"))
    assert best_at_stop == min(r["eval/eval_loss"] for r in logged if "eval/eval_loss" in r)
    resumed = make_trainer(tmp_path / "run")
    assert resumed.restore() == 4
    assert float(resumed.best.numpy()) == best_at_stop
    resumed.train()
    assert float(resumed.best.numpy()) == float(uninterrupted.best.numpy())
    assert int(resumed.evals_without_improvement.numpy()) == \
        int(uninterrupted.evals_without_improvement.numpy())
    results = [json.loads(open(os.path.join(t.config.model_dir, "results.json")).read())
               for t in (resumed, uninterrupted)]
    assert results[0]["best"] == results[1]["best"]
    assert os.path.basename(results[0]["best_checkpoint"]) == \
        os.path.basename(results[1]["best_checkpoint"])


CHANGED = {"batch_size": 16, "inputs_length": 10, "targets_length": 6,
           "precision": "mixed_bfloat16", "optimizer": "adamw", "learning_rate": 2e-2,
           "schedule": "constant", "warmup_steps": 7, "weight_decay": 0.1, "clip_norm": 1.0,
           "grad_accum_steps": 2, "label_smoothing": 0.1, "z_loss": 1e-4,
           "loss_normalization": "sequences", "seed": 3}


def test_every_resume_setting_has_a_changed_value_here():
    assert sorted(CHANGED) == sorted(RESUME_SETTINGS)


def test_a_resume_with_any_changed_setting_is_refused_naming_the_flag(uninterrupted):
    model_dir = uninterrupted.config.model_dir
    settings = uninterrupted.settings
    assert sorted(settings) == sorted([*RESUME_SETTINGS, "dropout_rate"])
    model_dir_module.check_resume_settings(model_dir, settings)  # the same: resumes
    for flag, value in {**CHANGED, "dropout_rate": 0.2}.items():
        now = re.escape(str(value))
        with pytest.raises(ModelDirMismatchError, match=rf"with --{flag}=.*, not --{flag}={now};"):
            model_dir_module.check_resume_settings(model_dir, {**settings, flag: value})


def test_a_trainer_refuses_a_changed_setting_before_rewriting_the_model_dir(uninterrupted):
    model_dir = uninterrupted.config.model_dir
    names = ("run.json", "config.json")
    before = {name: open(os.path.join(model_dir, name), "rb").read() for name in names}
    with pytest.raises(ModelDirMismatchError, match="--precision=float32, not "
                                                    "--precision=mixed_bfloat16"):
        make_trainer(model_dir, precision="mixed_bfloat16")
    assert before == {name: open(os.path.join(model_dir, name), "rb").read() for name in names}


def test_train_steps_and_what_only_watches_a_run_may_change_on_resume(uninterrupted, tmp_path):
    lines = []
    shutil.copytree(uninterrupted.config.model_dir, tmp_path / "run")
    trainer = make_trainer(tmp_path / "run", train_steps=7, eval_every=0, save_every=0,
                           log_every=7, keep_checkpoints=1)
    trainer.log = lines.append
    assert [r["step"] for r in trainer.train() if "loss" in r] == [7]
    assert any("now decays towards 7" in line for line in lines)


def test_a_checkpoint_of_weights_only_is_refused_as_a_model_dir_to_resume(uninterrupted, tmp_path):
    """convert_checkpoint's output handed to train as --model_dir: no optimizer step, no data
    position; resuming it would silently start over inside it."""
    converted = tmp_path / "converted"
    converted.mkdir()
    for name in ("config.json", "run.json"):
        shutil.copy(os.path.join(uninterrupted.config.model_dir, name), converted)
    tf.train.Checkpoint(model=ModelState(uninterrupted.model)).write(str(converted / "ckpt-1"))
    (converted / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    with pytest.raises(ModelDirMismatchError, match=rf"{converted}: its checkpoint ckpt-1 holds "
                                                    r"weights only .* --init_checkpoint="):
        make_trainer(converted)
    assert not (converted / "LOCK").exists()  # a refusal takes nothing (a run's best/ too)


def test_a_finished_run_killed_before_its_results_gets_them_on_the_next_start(uninterrupted,
                                                                            tmp_path):
    # A kill between the last save and results.json leaves none, or an earlier attempt's that
    # says it was stopped (which a sweep would take as unfinished, forever).
    shutil.copytree(uninterrupted.config.model_dir, tmp_path / "run")
    results = tmp_path / "run" / "results.json"
    finished = json.loads(results.read_text())
    make_trainer(tmp_path / "run").train()
    assert json.loads(results.read_text()) == finished  # up to date: left as it was
    for stale in (None, {**finished, "step": 4, "stopped_by": "SIGTERM"}):
        if stale is None:
            results.unlink()
        else:
            results.write_text(json.dumps(stale))
        make_trainer(tmp_path / "run").train()
        written = json.loads(results.read_text())
        assert written["step"] == 6 and "stopped_by" not in written
        assert written["best"] == finished["best"]
