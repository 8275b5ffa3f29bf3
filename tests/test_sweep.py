"""Hyper-parameter sweeps: spaces, proposals, the trial runner, resume after a kill, bad input.

Most runner tests drive a small fake training script (written into tmp_path below) that accepts
the same kind of absl flags as scripts/train.py and writes train_log.jsonl, results.json and
checkpoint files the way the Trainer does, with a known objective, in well under a second per
trial. One test runs the real scripts/train.py for a few steps to check the two fit together.
"""

import csv
import errno
import json
import math
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest

from t5core.file_writes import WriteFailedError
from t5core.sweep import (MissingExtraError, SearchSpaceError, Sweep, SweepConfig,
                          SweepStateError, load_state, parse_space, prepare)
from t5core.sweep import evals, results, study
from t5core.sweep.space import load_space
from t5core.sweep.train_flags import EMBEDDED_TASK_METRICS, parse_fixed_flags

optuna.logging.set_verbosity(optuna.logging.WARNING)

REPO = pathlib.Path(__file__).resolve().parents[1]
SWEEP_SCRIPT = REPO / "scripts" / "sweep.py"

FAKE_TRAIN = r'''
"Stands in for scripts/train.py: same flag style, train_log.jsonl, results.json, checkpoints."
import json, math, os, signal, sys, time
from absl import app, flags
flags.DEFINE_string("model_dir", "", "")
flags.DEFINE_integer("train_steps", 100, "")
flags.DEFINE_float("learning_rate", 1e-3, "")
flags.DEFINE_integer("warmup_steps", 0, "")
flags.DEFINE_integer("batch_size", 8, "")
flags.DEFINE_integer("eval_every", 0, "")
flags.DEFINE_integer("eval_steps", 10, "")  # (the dry run's flags: the fake takes, ignores them)
flags.DEFINE_integer("eval_examples", 400, "")
flags.DEFINE_integer("save_every", 500, "")
flags.DEFINE_integer("early_stopping_patience", 0, "")
flags.DEFINE_enum("optimizer", "adamw", ["adafactor", "adamw"], "")
flags.DEFINE_enum("schedule", "cosine", ["constant", "cosine"], "")
flags.DEFINE_float("dropout_rate", None, "")
flags.DEFINE_string("task", "", "")
flags.DEFINE_string("best_metric", "", "")
flags.DEFINE_bool("progress_bar", True, "")
FLAGS = flags.FLAGS

def score(lr, warmup):  # best at lr = 10**-2.5, warmup 0
    return 1.0 - (math.log10(lr) + 2.5) ** 2 / 4 - warmup / 1000

def main(argv):
    with open(os.environ["FAKE_TRAIN_LOG"], "a") as f:
        f.write(json.dumps({"model_dir": FLAGS.model_dir, "best_metric": FLAGS.best_metric,
                            "progress_bar": FLAGS.progress_bar,
                            "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                            "affinity": sorted(os.sched_getaffinity(0))}) + "\n")
    if FLAGS.best_metric not in ("", "accuracy", "eval_loss"):  # as the real Trainer does
        raise ValueError(f"best_metric {FLAGS.best_metric!r} is not among the evaluation results")
    if FLAGS.learning_rate >= 0.5:
        raise ValueError("Step 3: the loss is nan")
    os.makedirs(FLAGS.model_dir, exist_ok=True)

    def stop(signum, frame):  # as the real trainer: save, say so in results.json, exit 0
        with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as f:
            json.dump({"stopped_by": signal.Signals(signum).name}, f)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    log = open(os.devnull if os.environ.get("FAKE_TRAIN_NO_LOG") else
               os.path.join(FLAGS.model_dir, "train_log.jsonl"), "a")
    every = FLAGS.eval_every or FLAGS.train_steps
    best = best_checkpoint = None
    for step in range(every, FLAGS.train_steps + 1, every):
        time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))
        accuracy = score(FLAGS.learning_rate, FLAGS.warmup_steps) * step / FLAGS.train_steps
        loss = None if os.environ.get("FAKE_TRAIN_NAN_LOSS") else 2 - accuracy  # null: NaN
        log.write(json.dumps({"step": step, "eval/eval_loss": loss,
                              "eval/accuracy": accuracy}) + "\n")
        log.flush()
        if best is None or accuracy > best:
            best = accuracy
            best_checkpoint = os.path.join(FLAGS.model_dir, "best", f"ckpt-{step}")
            os.makedirs(os.path.join(FLAGS.model_dir, "best"), exist_ok=True)
            with open(os.path.join(FLAGS.model_dir, "best", "checkpoint"), "w") as f:
                f.write(f'model_checkpoint_path: "ckpt-{step}"\n')
            open(best_checkpoint + ".index", "w").close()
    log.close()
    with open(os.path.join(FLAGS.model_dir, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "ckpt-{FLAGS.train_steps}"\n')
    open(os.path.join(FLAGS.model_dir, f"ckpt-{FLAGS.train_steps}.index"), "w").close()
    with open(os.path.join(FLAGS.model_dir, "results.json"), "w") as f:
        json.dump({"step": FLAGS.train_steps, "best_checkpoint": best_checkpoint}, f)

if __name__ == "__main__":
    app.run(main)
'''


def fake_score(learning_rate, warmup_steps=0):
    lr, warmup = learning_rate, warmup_steps
    return 1.0 - (math.log10(lr) + 2.5) ** 2 / 4 - warmup / 1000


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_TRAIN_LOG", str(calls))
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "0")

    def invocations():
        if not calls.exists():
            return []
        return [json.loads(line) for line in calls.read_text().splitlines()]

    return {"script": str(script), "invocations": invocations, "dir": tmp_path}


def quiet(*args):
    pass


def proposals(space, method, seed, count, startup_trials=5):
    """The first `count` proposals of the sweep's sampler, seeded with `seed`, in a study without
    history (Optuna's seeded stream)."""
    fresh = optuna.create_study(sampler=study.sampler(method, space, seed, startup_trials))
    return [space.suggest(fresh.ask()) for _ in range(count)]


def proposed(space, method, seed, number, startup_trials=5):
    """What the sweep's sampler proposes for trial `number` in a study without history."""
    return proposals(space, method, seed, number + 1, startup_trials)[-1]


def grid_seed(space, order):
    """A --seed for which Optuna's GridSampler visits `space` (a dict) in `order`."""
    space = parse_space(space)
    return next(seed for seed in range(1000)
                if proposals(space, "grid", seed, len(order)) == order)


def in_memory(space, method, max_trials, seed=0, startup_trials=5, storage=None):
    """The sweep's study over `space` in memory, as the runner drives it (no processes)."""
    config = SweepConfig(sweep_dir="unused", space=space, objective="loss", direction="min",
                         train_script="unused", method=method, max_trials=max_trials, seed=seed,
                         startup_trials=startup_trials)
    sweep = optuna.create_study(
        study_name="sweep", storage=storage or optuna.storages.InMemoryStorage(),
        sampler=study.sampler(method, space, seed, startup_trials), load_if_exists=True)
    return sweep, config


def scalars(folder):
    """{step: {tag: value}} of the scalar summaries in a folder's event files (TensorBoard's own
    reader)."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        for event in acc.Tensors(tag):
            array = tensor_util.make_ndarray(event.tensor_proto)
            if array.size == 1 and array.dtype.kind in "fiu":  # not text (predictions)
                out.setdefault(event.step, {})[tag] = float(array.reshape(()))
    return out


def run_sweep(fake, space, objective="accuracy", train_args=("--train_steps=10",), **options):
    options.setdefault("poll_seconds", 0.05)
    config = prepare(str(fake["dir"] / "sweep"), space, objective, fake["script"], train_args,
                     log=quiet, **options)
    return Sweep(config, log=quiet).run(), config


# -- spaces --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, message", [
    ({}, "empty"),
    ({"learning_rate": {"type": "log_uniform", "low": 0.0, "high": 1e-2}}, "low must be > 0"),
    ({"learning_rate": {"type": "uniform", "low": 0.1, "high": 0.1}}, "empty range"),
    ({"warmup_steps": {"type": "int", "low": 5, "high": 1}}, "low 5 > high 1"),
    ({"learning_rate": {"type": "normal", "mean": 1}}, "type must be one of"),
    ({"optimizer": []}, "no values"),
    ({"optimizer": ["adamw", "adamw"]}, "twice"),
    ({"learning_rate": {"type": "uniform", "low": 0.1}}, "needs 'high'"),
    ({"learning_rate": 0.001}, "pass it after '--'"),
    ({"learning_rate": {"type": "uniform", "low": 0.1, "high": 1, "step": 2}}, "unknown keys"),
])
def test_bad_spaces_are_named(spec, message):
    with pytest.raises(SearchSpaceError, match=message):
        parse_space(spec)


def test_space_files(tmp_path):
    (tmp_path / "s.yaml").write_text("learning_rate: {type: log_uniform, low: 1.0e-4, "
                                     "high: 1.0e-2}\nwarmup_steps: [0, 50]\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "bad.json").write_text('{"a": [1,\n 2,]}')
    space = load_space(str(tmp_path / "s.yaml"))
    assert space.names == ["learning_rate", "warmup_steps"]
    assert load_space('{"warmup_steps": [0, 50]}').grid() == [{"warmup_steps": 0},
                                                             {"warmup_steps": 50}]
    with pytest.raises(SearchSpaceError, match="empty"):
        load_space(str(tmp_path / "empty.yaml"))
    with pytest.raises(SearchSpaceError, match="bad.json, line 2"):
        load_space(str(tmp_path / "bad.json"))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_space(str(tmp_path / "nope.yaml"))


def test_grid_and_random_trial_sets():
    space = parse_space({"learning_rate": [1e-3, 3e-3], "optimizer": ["adamw", "adafactor"],
                         "warmup_steps": {"type": "int", "low": 0, "high": 2}})
    grid = space.grid()
    assert len(grid) == space.grid_size() == 12
    assert grid[0] == {"learning_rate": 1e-3, "optimizer": "adamw", "warmup_steps": 0}
    assert grid[1] == {"learning_rate": 1e-3, "optimizer": "adamw", "warmup_steps": 1}
    assert len({json.dumps(g, sort_keys=True) for g in grid}) == 12

    cont = parse_space({"learning_rate": {"type": "log_uniform", "low": 1e-4, "high": 1e-1},
                        "dropout_rate": {"type": "uniform", "low": 0.0, "high": 0.3},
                        "batch_size": {"type": "int", "low": 8, "high": 64, "log": True}})
    with pytest.raises(SearchSpaceError, match="grid search needs a finite set"):
        cont.grid()
    draws = proposals(cont, "random", 3, 400)
    assert draws[7] == proposed(cont, "random", 3, 7)  # a pure function of (seed, index)
    assert draws[7] != proposed(cont, "random", 4, 7)
    lrs = np.array([d["learning_rate"] for d in draws])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1
    # Log-uniform: the median is near the geometric mean (1e-2.5), far below the arithmetic one.
    assert abs(np.log10(np.median(lrs)) + 2.5) < 0.2
    sizes = [d["batch_size"] for d in draws]
    assert min(sizes) >= 8 and max(sizes) <= 64 and all(isinstance(s, int) for s in sizes)
    assert np.median(sizes) < 36  # log spacing favours the small end


def test_bayesian_search_is_optunas_tpe_seeded_per_trial():
    """TPE (random sampling for --startup_trials, then the model), seeded by (seed, trial): the
    same seed proposes the same trials, and on the fake objective its best after 30 trials
    beats random search's on average over 5 seeds."""
    space = parse_space({"learning_rate": {"type": "log_uniform", "low": 1e-5, "high": 1e-0},
                         "warmup_steps": {"type": "int", "low": 0, "high": 500},
                         "optimizer": ["adamw", "adafactor", "sgd"]})
    assert isinstance(study.sampler("bayesian", space, 0, 8), optuna.samplers.TPESampler)
    assert isinstance(study.sampler("random", space, 0), optuna.samplers.RandomSampler)

    def loss(p):
        return -fake_score(p["learning_rate"], p["warmup_steps"]) + (p["optimizer"] != "adamw")

    def search(method, seed, n=30):
        sweep, _ = in_memory(space, method, n, seed=seed, startup_trials=8)
        tried = []
        for _ in range(n):
            trial = study.next_trial(sweep, space, n)
            sweep.tell(trial, loss(trial.params))
            tried.append(trial.params)
        return tried

    tpe = [search("bayesian", seed) for seed in range(5)]
    assert search("bayesian", 3) == tpe[3]
    assert tpe[3][:8] == proposals(space, "random", 3, 8)  # the start-up
    tpe_best = [min(map(loss, tried)) for tried in tpe]
    random_best = [min(map(loss, search("random", seed))) for seed in range(5)]
    assert np.mean(tpe_best) < np.mean(random_best)
    # Both searches start from the same 8 random trials, so a tie is a best from the start-up.
    assert sum(t <= r for t, r in zip(tpe_best, random_best)) >= 4


@pytest.mark.parametrize("method", ["random", "bayesian"])
def test_small_discrete_space_runs_each_combination_once(method):
    """Proposals that repeat a tried combination are not run; the sweep ends with the space."""
    space = parse_space({"warmup_steps": [0, 50, 100], "optimizer": ["adamw", "adafactor"]})
    sweep, config = in_memory(space, method, max_trials=10, startup_trials=2)
    assert config.planned_trials() == 6
    tried = []
    while (trial := study.next_trial(sweep, space, config.planned_trials())) is not None:
        sweep.tell(trial, float(trial.params["warmup_steps"]))
        tried.append(json.dumps(trial.params, sort_keys=True))
    assert len(tried) == len(set(tried)) == 6
    assert [r["status"] for r in study.records(sweep, "unused")] == ["done"] * 6  # (repeats are
    # not listed)


def test_a_trial_asked_for_but_never_launched_runs_on_resume():
    """Killed between asking Optuna for a trial and starting it: its parameters may be half
    suggested; a restart suggests the rest (the grid point Optuna gave it) and runs it."""
    space = parse_space({"learning_rate": [1e-3, 2e-3], "warmup_steps": [0, 5]})
    storage = optuna.storages.InMemoryStorage()
    first, _ = in_memory(space, "grid", 0, storage=storage)
    trial = study.next_trial(first, space, 4)
    trial.set_user_attr("attempts", 1)
    first.tell(trial, 1.0)
    first.ask()  # the sweep dies before suggesting any parameter of trial 1
    resumed, _ = in_memory(space, "grid", 0, storage=storage)
    [trial] = study.resumed_trials(resumed, space)
    order = proposals(space, "grid", 0, 4)  # Optuna's grid order for the seed
    assert trial.number == 1 and trial.params == order[1]
    assert study.next_trial(resumed, space, 4).params == order[2]
    assert [r["id"] for r in study.records(resumed, "unused")] == [
        "trial_0000", "trial_0001", "trial_0002"]


# -- flags and objective checks: all before any trial --------------------------------------------
def test_fixed_flag_parsing():
    fixed = parse_fixed_flags(["--train_steps=5", "--noprogress_bar", "--optimizer", "adafactor"])
    assert fixed == {"train_steps": "5", "progress_bar": "false", "optimizer": "adafactor"}
    with pytest.raises(SearchSpaceError, match="Did you mean --train_steps"):
        parse_fixed_flags(["--train_step=5"])
    with pytest.raises(SearchSpaceError, match="set by the sweep"):
        parse_fixed_flags(["--model_dir=/tmp/x"])
    with pytest.raises(SearchSpaceError, match="not a valid int"):
        parse_fixed_flags(["--train_steps=1e3x"])
    with pytest.raises(SearchSpaceError, match="one of adafactor, adamw"):
        parse_fixed_flags(["--optimizer=sgd"])


@pytest.mark.parametrize("space, args, kwargs, message", [
    ({"learning_rate": [1e-3]}, ["--learning_rate=0.01"], {}, "both searched .* and fixed"),
    ({"learnin_rate": [1e-3]}, [], {}, "Did you mean --learning_rate"),
    ({"warmup_steps": {"type": "uniform", "low": 0, "high": 10}}, [], {}, "use type: int"),
    ({"optimizer": ["adamw", "sgd"]}, [], {}, "'sgd' is not a valid value for --optimizer"),
    ({"model_dir": ["a", "b"]}, [], {}, "set by the sweep"),
    ({"learning_rate": [1e-3]}, [], {"objective": "bleu"}, "not a metric .* produces"),
    ({"learning_rate": [1e-3]}, [], {"objective": "eval_loss", "direction": "max"},
     "contradicts the trainer"),
    ({"learning_rate": [1e-3]}, ["--best_metric=eval_loss"], {}, "contradicts --objective"),
    ({"learning_rate": [1e-3, -0.5]}, [], {}, "--learning_rate must be a finite number > 0"),
    ({"warmup_steps": [0, 20]}, ["--early_stopping_patience=2", "--eval_every=0"], {},
     "--early_stopping_patience needs --eval_every > 0"),
    ({"learning_rate": [1e-3]}, [], {"median_stopping": True}, "--eval_every=N"),
    ({"learning_rate": {"type": "log_uniform", "low": 1e-4, "high": 1e-2}}, [],
     {"method": "grid"}, "grid search needs a finite set"),
    ({"learning_rate": [1e-3]}, [], {"method": "random"}, "needs --max_trials > 0"),
])
def test_bad_input_fails_before_any_trial(fake, space, args, kwargs, message):
    kwargs = dict({"objective": "accuracy", "method": "grid"}, **kwargs)
    objective = kwargs.pop("objective")
    with pytest.raises(SearchSpaceError, match=message):
        prepare(str(fake["dir"] / "sweep"), space, objective, fake["script"],
                ["--train_steps=10"] + args, log=quiet, **kwargs)
    assert fake["invocations"]() == []
    assert not (fake["dir"] / "sweep" / "trials").exists()


def test_objective_checked_by_dry_run_for_other_data(fake):
    """Not the embedded task: the metric names come from a one-step dry run of trial 0."""
    with pytest.raises(SearchSpaceError, match=r"produces accuracy, eval_loss\)"):
        prepare(str(fake["dir"] / "sweep"), {"learning_rate": [1e-3]}, "rouge1", fake["script"],
                ["--train_steps=10", "--task=sst2"], method="grid", log=quiet)
    assert len(fake["invocations"]()) == 1  # the dry run only
    assert not (fake["dir"] / "sweep" / "_dry_run").exists()
    # A good objective: the sweep runs; resuming it does not dry-run again.
    args = ["--train_steps=10", "--task=sst2"]
    config = prepare(str(fake["dir"] / "sweep"), {"learning_rate": [1e-3]}, "eval_loss",
                     fake["script"], args, method="grid", log=quiet, poll_seconds=0.05)
    Sweep(config, log=quiet).run()
    assert len(fake["invocations"]()) == 3  # a dry run and the trial
    prepare(str(fake["dir"] / "sweep"), {"learning_rate": [1e-3]}, "eval_loss",
            fake["script"], args, method="grid", log=quiet, poll_seconds=0.05)
    assert len(fake["invocations"]()) == 3
    with pytest.raises(SearchSpaceError, match="dry run of the first trial's flags failed"):
        prepare(str(fake["dir"] / "sweep2"), {"learning_rate": [0.9]}, "accuracy",
                fake["script"], ["--train_steps=10", "--task=sst2"], method="grid", log=quiet)


def test_train_log_reader_keeps_the_last_record_of_a_step(tmp_path):
    """A resumed trainer appends from its checkpoint's step; a line may be half written."""
    assert evals.read_evals(str(tmp_path)) is None  # no train_log: nothing to read
    (tmp_path / "train_log.jsonl").write_text(
        '{"step": 1, "loss": 3.0}\n'
        '{"step": 2, "eval/eval_loss": 2.5, "eval/accuracy": 10.0}\n'
        '{"step": 4, "eval/eval_loss": 2.0, "eval/accuracy": 20.0}\n'
        '{"step": 2, "eval/eval_loss": 2.25, "eval/accuracy": 15.0}\n'  # resumed from step 1
        '{"step": 4, "eval/eval_loss": 1.5')
    read = evals.read_evals(str(tmp_path))
    assert read == {2: {"eval_loss": 2.25, "accuracy": 15.0},
                    4: {"eval_loss": 2.0, "accuracy": 20.0}}
    assert evals.pick(read, "accuracy", "max") == (4, {"eval_loss": 2.0, "accuracy": 20.0})
    assert evals.pick(read, "eval_loss", "min", "last")[0] == 4
    assert evals.pick(read, "eval_loss", "min") == (4, {"eval_loss": 2.0, "accuracy": 20.0})


# -- running sweeps -----------------------------------------------------------------------------
def test_grid_sweep_runs_every_trial_and_names_the_best(fake):
    space = {"learning_rate": [1e-3, 3e-3], "warmup_steps": [0, 5]}
    best, config = run_sweep(fake, space, method="grid")
    sweep = fake["dir"] / "sweep"
    state = load_state(str(sweep))
    expected = parse_space(space).grid()
    # Every grid point once, in Optuna's order for the seed.
    assert [t["params"] for t in state["trials"]] == proposals(parse_space(space), "grid", 0, 4)
    assert sorted(expected, key=str) == sorted([t["params"] for t in state["trials"]], key=str)
    assert all(t["status"] == "done" for t in state["trials"])
    for t in state["trials"]:  # the value read back from train_log.jsonl is the fake's score
        assert t["value"] == pytest.approx(fake_score(**t["params"]), abs=1e-6)
        assert t["step"] == 10
    want = max(expected, key=lambda p: fake_score(**p))
    assert best["params"] == want
    info = json.loads((sweep / "best.json").read_text())
    assert info["params"] == want and info["trial"] == best["id"]
    assert (sweep / info["checkpoint"]).with_suffix(".index").exists()
    assert (sweep / "best_trial").resolve() == (sweep / "trials" / best["id"]).resolve()
    # Each trial got its own model_dir, the objective as --best_metric, no progress bar.
    calls = fake["invocations"]()
    assert sorted(c["model_dir"] for c in calls) == sorted(t["model_dir"]
                                                            for t in state["trials"])
    assert {c["best_metric"] for c in calls} == {"accuracy"}
    assert not any(c["progress_bar"] for c in calls)
    # Tables and the HParams dashboard.
    rows = (sweep / "results.csv").read_text().splitlines()
    assert rows[0].startswith("trial,status,accuracy,learning_rate,warmup_steps")
    assert len(rows) == 5
    assert len((sweep / "results.jsonl").read_text().splitlines()) == 4
    assert list(sweep.glob("events.out.tfevents.*"))
    for t in state["trials"]:
        assert scalars(t["model_dir"])[10]["sweep/objective"] == pytest.approx(t["value"],
                                                                                abs=1e-6)


def test_random_sweep_trials_follow_the_seed(fake):
    space = {"learning_rate": {"type": "log_uniform", "low": 1e-4, "high": 1e-1},
             "warmup_steps": {"type": "int", "low": 0, "high": 9}}
    run_sweep(fake, space, method="random", max_trials=3, seed=11)
    state = load_state(str(fake["dir"] / "sweep"))
    assert [t["params"] for t in state["trials"]] == [proposed(parse_space(space), "random", 11, i)
                                                      for i in range(3)]
    assert state["trials"][0]["params"] != proposed(parse_space(space), "random", 12, 0)


def test_bayesian_sweep_starts_random_then_proposes(fake):
    space = {"learning_rate": {"type": "log_uniform", "low": 1e-5, "high": 1e-1},
             "warmup_steps": {"type": "int", "low": 0, "high": 9}}
    best, _ = run_sweep(fake, space, method="bayesian", max_trials=7, startup_trials=3, seed=5,
                        keep_checkpoints="best")
    state = load_state(str(fake["dir"] / "sweep"))
    params = [t["params"] for t in state["trials"]]
    assert params[:3] == [proposed(parse_space(space), "random", 5, i) for i in range(3)]
    assert params[3:] != [proposed(parse_space(space), "random", 5, i) for i in range(3, 7)]
    assert [t["status"] for t in state["trials"]] == ["done"] * 7
    assert best["value"] == max(t["value"] for t in state["trials"])
    # --keep_checkpoints=best: only the best trial keeps checkpoints; every trial keeps its events.
    for t in state["trials"]:
        kept = list(pathlib.Path(t["model_dir"]).glob("**/ckpt-*"))
        assert bool(kept) == (t["id"] == best["id"])
        assert evals.read_evals(t["model_dir"])


def test_failed_trials_are_recorded_not_rerun_unless_asked(fake):
    space = {"learning_rate": [1e-3, 0.9]}  # the fake fails on lr >= 0.5 like a NaN loss
    seed = grid_seed(space, [{"learning_rate": 1e-3}, {"learning_rate": 0.9}])
    best, _ = run_sweep(fake, space, method="grid", seed=seed)
    state = load_state(str(fake["dir"] / "sweep"))
    assert [t["status"] for t in state["trials"]] == ["done", "failed"]
    assert "the loss is nan" in state["trials"][1]["error"]
    assert best["params"] == {"learning_rate": 1e-3}
    run_sweep(fake, space, method="grid", seed=seed)
    assert len(fake["invocations"]()) == 2  # nothing rerun
    run_sweep(fake, space, method="grid", retry_failed=True, seed=seed)
    assert len(fake["invocations"]()) == 3
    # A finished Optuna trial cannot run again: the retry is a new trial with its parameters.
    retry = load_state(str(fake["dir"] / "sweep"))["trials"][2]
    assert retry["retry_of"] == "trial_0001" and retry["params"] == {"learning_rate": 0.9}
    assert retry["status"] == "failed"


def test_restart_with_another_definition_is_refused(fake):
    run_sweep(fake, {"learning_rate": [1e-3]}, method="grid")
    with pytest.raises(SweepStateError, match="holds a different sweep .*space"):
        run_sweep(fake, {"learning_rate": [2e-3]}, method="grid")


def test_a_sweep_dir_of_the_state_file_era_is_refused(fake):
    """Its trials' model_dirs hold checkpoints of other parameters: never resume them (nor those
    of any trial the journal did not start)."""
    (fake["dir"] / "sweep" / "trials" / "trial_0000").mkdir(parents=True)
    (fake["dir"] / "sweep" / "state.json").write_text("{}")
    (fake["dir"] / "sweep" / "trials" / "trial_0000" / "checkpoint").write_text("")
    with pytest.raises(SweepStateError, match="older t5core .*new --sweep_dir"):
        run_sweep(fake, {"learning_rate": [1e-3]}, method="grid")
    assert fake["invocations"]() == []


def test_a_trial_without_train_log_fails_and_says_so(fake, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_NO_LOG", "1")
    best, _ = run_sweep(fake, {"learning_rate": [1e-3]}, method="grid")
    assert best is None
    [trial] = load_state(str(fake["dir"] / "sweep"))["trials"]
    assert trial["status"] == "failed"
    assert "wrote no train_log.jsonl" in trial["error"]
    with pytest.raises(SearchSpaceError, match="dry run .* wrote no train_log.jsonl"):
        prepare(str(fake["dir"] / "sweep2"), {"learning_rate": [1e-3]}, "accuracy",
                fake["script"], ["--train_steps=10", "--task=sst2"], method="grid", log=quiet)


def test_optuna_is_optional_until_a_sweep_runs(fake, monkeypatch, tmp_path):
    out = subprocess.run([sys.executable, "-c", "import sys, t5core, t5core.sweep; "
                          "print(sorted(m for m in sys.modules if m.startswith('optuna')))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now fails
    with pytest.raises(MissingExtraError, match=r"pip install t5core\[sweep\]"):
        prepare(str(fake["dir"] / "sweep"), {"learning_rate": [1e-3]}, "accuracy",
                fake["script"], ["--train_steps=10"], method="grid", log=quiet)
    assert fake["invocations"]() == []
    # The command line: one line that says what to install, status 2, no traceback.
    blocker = tmp_path / "no_optuna" / "optuna"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named optuna')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker.parent), str(REPO)]))
    out = subprocess.run([sys.executable, str(SWEEP_SCRIPT), f"--sweep_dir={tmp_path / 's'}",
                          "--method=grid", "--objective=accuracy",
                          '--space={"learning_rate": [1e-3]}',
                          f"--train_script={fake['script']}"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error: the sweep needs Optuna: pip install t5core[sweep]" in out.stderr
    assert "Traceback" not in out.stderr


def test_median_stopping_prunes_a_trial_behind_the_median(fake, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "0.3")
    # Three good trials complete first; the fourth (lr far from the optimum) is behind their
    # median at its first evaluation and is stopped before its last.
    space = {"learning_rate": [3e-3, 2e-3, 4e-3, 1e-5]}
    seed = grid_seed(space, [{"learning_rate": lr} for lr in space["learning_rate"]])
    run_sweep(fake, space, method="grid", median_stopping=True, median_min_trials=3, seed=seed,
              train_args=("--train_steps=25", "--eval_every=5"))
    state = load_state(str(fake["dir"] / "sweep"))
    assert [t["status"] for t in state["trials"]] == ["done", "done", "done", "pruned"]
    assert state["trials"][3]["pruned_at"] < 25
    assert state["best"] != "trial_0003"


def test_a_trial_past_its_timeout_is_stopped_and_failed(fake, monkeypatch):
    """--trial_timeout: the trial is sent SIGTERM (the trainer saves and exits 0), recorded as
    failed with the reason, and the sweep goes on to the next trial."""
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "0.4")
    space = {"learning_rate": [1e-3, 2e-3]}
    best, _ = run_sweep(fake, space, method="grid", trial_timeout=0.5,
                        train_args=("--train_steps=40", "--eval_every=5"))
    assert best is None
    state = load_state(str(fake["dir"] / "sweep"))
    assert [t["status"] for t in state["trials"]] == ["failed", "failed"]
    for t in state["trials"]:
        assert t["error"] == "timed out after 0.5 s"
        assert t["last_step"] is None or t["last_step"] < 40
    assert len(fake["invocations"]()) == 2


def test_parallel_trials_get_disjoint_cpu_cores(fake):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores")
    run_sweep(fake, {"learning_rate": [1e-3, 2e-3, 3e-3, 4e-3]}, method="grid", parallel=2,
              gpus=[])
    calls = fake["invocations"]()
    assert len(calls) == 4
    groups = {tuple(c["affinity"]) for c in calls}
    assert len(groups) == 2 and not set(groups.pop()) & set(groups.pop())
    assert {c["cuda"] for c in calls} == {""}


def test_gpu_slots():
    from t5core.sweep.devices import SlotPlan

    assert SlotPlan(1, ["0", "1"]).env(0) == {}  # one trial may use every GPU
    plan = SlotPlan(2, ["0", "1", "2", "3"])
    assert [plan.env(i)["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["0,1", "2,3"]
    shared = SlotPlan(3, ["0", "1"])
    assert [shared.env(i)["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["0", "1", "0"]
    assert shared.env(2)["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_resume_after_kill_keeps_finished_trials(fake, monkeypatch):
    """Kill the sweep process (SIGKILL) mid-trial, restart: finished trials are not rerun."""
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "0.3")
    sweep = fake["dir"] / "sweep"
    cmd = [sys.executable, str(SWEEP_SCRIPT), f"--sweep_dir={sweep}", "--method=grid",
           "--objective=accuracy", "--space", '{"learning_rate": [1e-3, 2e-3, 3e-3, 4e-3]}',
           f"--train_script={fake['script']}", "--poll_seconds=0.1", "--",
           "--train_steps=20", "--eval_every=5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state, deadline = None, time.time() + 90
    while time.time() < deadline:
        time.sleep(0.1)
        try:
            state = load_state(str(sweep))
        except (OSError, KeyError):  # no journal, or no study in it yet
            continue
        statuses = [t["status"] for t in state["trials"]]
        running = [t["model_dir"] for t in state["trials"] if t["status"] == "running"]
        started = {c["model_dir"] for c in fake["invocations"]()}
        if statuses.count("done") >= 2 and running and running[0] in started:
            break  # mid-trial: the third trial's process is past its start
    else:
        proc.kill()
        pytest.fail(f"the sweep never got 2 trials done: {proc.communicate()[0][-3000:]}")
    proc.kill()
    proc.wait()
    done_before = [t["id"] for t in state["trials"] if t["status"] == "done"]
    interrupted = [t["id"] for t in state["trials"] if t["status"] == "running"]
    assert len(interrupted) == 1
    time.sleep(1.0)
    # The orphaned trial is stopped by the restarted sweep before it runs again.
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "resumed with" in out.stdout + out.stderr
    state = load_state(str(sweep))
    assert [t["status"] for t in state["trials"]] == ["done"] * 4
    runs = {}
    for call in fake["invocations"]():
        trial_id = os.path.basename(call["model_dir"])
        runs[trial_id] = runs.get(trial_id, 0) + 1
    for trial_id in done_before:
        assert runs[trial_id] == 1, f"{trial_id} finished before the kill but ran again"
    assert runs[interrupted[0]] == 2
    assert sorted(runs) == [f"trial_{i:04d}" for i in range(4)]
    best = json.loads((sweep / "best.json").read_text())
    assert best["params"] == {"learning_rate": 3e-3}


# -- with the real trainer ------------------------------------------------------------------------
def test_sweep_over_the_real_train_script(tmp_path):
    """A 2-step trial of scripts/train.py on the embedded tasks; metrics from its train_log.

    One trial only: a real trial costs ~20-50 s on the shared 2-core machine (TensorFlow start-up,
    tracing the train, eval and decode steps); the fake-trainer tests cover the rest."""
    sweep = tmp_path / "sweep"
    config = prepare(str(sweep), {"learning_rate": [3e-3]}, "eval_loss",
                     str(REPO / "scripts" / "train.py"),
                     ["--train_steps=2", "--warmup_steps=0", "--batch_size=4",
                      "--inputs_length=16", "--targets_length=8", "--eval_examples=4",
                      "--eval_steps=1", "--log_every=1"], method="grid", poll_seconds=0.5,
                     log=quiet)
    best = Sweep(config, log=quiet).run()
    state = load_state(str(sweep))
    assert [t["status"] for t in state["trials"]] == ["done"], \
        [t.get("error") for t in state["trials"]]
    for t in state["trials"]:
        # Values come from train_log.jsonl (float64); the TensorBoard events agree in float32.
        logged = evals.read_evals(t["model_dir"])
        events = scalars(os.path.join(t["model_dir"], "eval"))
        assert set(logged[2]) == set(events[2]) == set(EMBEDDED_TASK_METRICS)
        assert t["value"] == logged[2]["eval_loss"]
        assert t["value"] == pytest.approx(events[2]["eval_loss"], rel=1e-6)
        assert (pathlib.Path(t["model_dir"]) / "best" / "checkpoint").exists()
    assert best["id"] == "trial_0000" and best["params"] == {"learning_rate": 3e-3}
    assert "--best_metric=eval_loss" in best["command"]
    info = json.loads((sweep / "best.json").read_text())
    assert (sweep / (info["checkpoint"] + ".index")).exists()


# -- one rule with train.py; the record and the files the sweep writes ---------------------------
def test_the_sweep_refuses_what_train_refuses_and_nothing_else(fake, monkeypatch):
    """A warm-up longer than a short trial: train.py fits it to the run (with a note), so the
    sweep takes it too. The sweep's check is the trainer's own (RunOptions.check): a rule added
    there is the sweep's rule as well."""
    from t5core.errors import FlagError
    from t5core.training.run import RunOptions

    config = prepare(str(fake["dir"] / "sweep"), {"warmup_steps": [0, 20]}, "accuracy",
                     fake["script"], ["--train_steps=10"], method="grid", log=quiet)
    assert config.planned_trials() == 2
    checked = []

    def trainer_check(options):
        checked.append((options.train.train_steps, options.train.warmup_steps))
        raise FlagError("Bad flags: a rule only the trainer knows")

    monkeypatch.setattr(RunOptions, "check", trainer_check)
    with pytest.raises(SearchSpaceError, match="a rule only the trainer knows"):
        prepare(str(fake["dir"] / "sweep2"), {"warmup_steps": [0, 20]}, "accuracy",
                fake["script"], ["--train_steps=10"], method="grid", log=quiet)
    assert checked == [(10, 0)]
    assert fake["invocations"]() == []


def test_a_torn_journal_is_repaired_and_a_damaged_one_named(fake):
    """journal.log is read from disk: a last record cut short by a kill is removed; a bad line
    elsewhere ends the sweep in one error that names the file and the line."""
    space = {"learning_rate": [1e-3, 2e-3]}
    run_sweep(fake, space, method="grid")
    journal = fake["dir"] / "sweep" / "journal.log"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "tri')
    lines = []
    config = prepare(str(fake["dir"] / "sweep"), space, "accuracy", fake["script"],
                     ["--train_steps=10"], method="grid", log=quiet, poll_seconds=0.05)
    Sweep(config, log=lines.append).run()
    assert any("removed a torn last record" in line for line in lines)
    assert journal.read_bytes().startswith(whole) and b"tri\n" not in journal.read_bytes()
    assert [t["status"] for t in load_state(str(fake["dir"] / "sweep"))["trials"]] == ["done"] * 2
    assert len(fake["invocations"]()) == 2  # nothing ran again
    journal.write_bytes(whole.replace(b"\n", b"\nnot json\n", 1))
    with pytest.raises(SweepStateError, match=r"journal.log, line 2: not an Optuna journal"):
        load_state(str(fake["dir"] / "sweep"))


KILLED_AFTER_TELL = r'''
import os, sys
from t5core.sweep import Sweep, prepare
import t5core.sweep.results as results

calls = []


def publish_best(*args, **kwargs):  # the second best is in the journal: kill -9 before it shows
    calls.append(args)
    if len(calls) == 2:
        os._exit(9)
    return real(*args, **kwargs)


real, results.publish_best = results.publish_best, publish_best
config = prepare(sys.argv[1], {"learning_rate": [1e-4, 3e-3]}, "accuracy", sys.argv[2],
                 ["--train_steps=10"], method="grid", seed=int(sys.argv[3]),
                 keep_checkpoints="best", poll_seconds=0.05, log=lambda *a: None)
Sweep(config, log=lambda *a: None).run()
'''


def test_a_kill_after_a_result_is_recorded_is_caught_up_on_resume(fake):
    """Killed between a trial's result reaching the journal and best_trial, best.json, its
    HParams session and --keep_checkpoints=best: the resumed sweep, with no trial left to run,
    derives them from the journal."""
    space = {"learning_rate": [1e-4, 3e-3]}
    seed = grid_seed(space, [{"learning_rate": 1e-4}, {"learning_rate": 3e-3}])
    sweep, script = fake["dir"] / "sweep", fake["dir"] / "killed.py"
    script.write_text(KILLED_AFTER_TELL)
    killed = subprocess.run([sys.executable, str(script), str(sweep), fake["script"], str(seed)],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr[-3000:]
    state = load_state(str(sweep))
    assert [t["status"] for t in state["trials"]] == ["done", "done"]
    assert state["best"] == "trial_0001"
    assert json.loads((sweep / "best.json").read_text())["trial"] == "trial_0000"
    assert list((sweep / "trials" / "trial_0000").glob("**/ckpt-*"))
    best, _ = run_sweep(fake, space, method="grid", seed=seed, keep_checkpoints="best")
    assert best["id"] == "trial_0001"
    assert json.loads((sweep / "best.json").read_text())["trial"] == "trial_0001"
    assert (sweep / "best_trial").resolve() == (sweep / "trials" / "trial_0001").resolve()
    assert scalars(sweep / "trials" / "trial_0001")[10]["sweep/objective"] == \
        pytest.approx(best["value"], abs=1e-6)
    assert not list((sweep / "trials" / "trial_0000").glob("**/ckpt-*"))
    assert list((sweep / "trials" / "trial_0001").glob("**/ckpt-*"))
    assert len(fake["invocations"]()) == 2  # nothing ran again


def test_a_failed_best_trial_link_is_removed_not_left_naming_the_previous_best(fake, monkeypatch):
    """Only a file system without symbolic links leaves best.json alone to name the best trial;
    any other failure (a full disk) removes the stale link and is raised."""
    best, _ = run_sweep(fake, {"learning_rate": [1e-3]}, method="grid")
    sweep = fake["dir"] / "sweep"
    before = (sweep / "best.json").read_text()

    def fail(errno_):
        def replace_link(path, target):
            raise OSError(errno_, os.strerror(errno_))
        return replace_link

    monkeypatch.setattr(results.file_writes, "replace_link", fail(errno.ENOSPC))
    with pytest.raises(WriteFailedError, match="No space left"):
        results.publish_best(str(sweep), best, "accuracy", "max")
    assert not os.path.lexists(sweep / "best_trial")
    assert (sweep / "best.json").read_text() == before
    monkeypatch.setattr(results.file_writes, "replace_link", fail(errno.EPERM))
    assert results.publish_best(str(sweep), best, "accuracy", "max")["best_trial_link"] is None
    assert json.loads((sweep / "best.json").read_text())["best_trial_link"] is None


def test_results_csv_holds_the_values_results_jsonl_holds(tmp_path):
    """Both tables read back to the same numbers: a sampled learning rate, the objective, a
    metric and a long run's seconds (to the tenth both tables show) are not rounded in the CSV,
    only in the markdown."""
    trials = [{"id": "t0", "status": "done", "value": 2 / 3, "step": 10, "seconds": 1234567.84,
               "params": {"learning_rate": math.sqrt(1e-5), "warmup_steps": 7},
               "metrics": {"accuracy": 2 / 3, "loss": 1 / 7, "rouge": float("nan")}},
              {"id": "t1", "status": "failed", "value": None, "step": None, "seconds": 3.0,
               "params": {"learning_rate": 1e-3, "warmup_steps": 0}, "metrics": {},
               "error": "Traceback\nValueError: bad, \"quoted\""}]
    results.write_tables(str(tmp_path), trials, ["learning_rate", "warmup_steps"], "accuracy")
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["trial"] for r in rows] == [t["id"] for t in lines]
    for row, t in zip(rows, lines):
        expected = {"status": t["status"], "accuracy": t["value"], "step": t["step"],
                    "seconds": round(t["seconds"], 1), "loss": t["metrics"].get("loss"),
                    "rouge": t["metrics"].get("rouge"), **t["params"]}
        for column, value in expected.items():
            if value is None:
                assert row[column] in ("", "nan"), column
            elif isinstance(value, str):
                assert row[column] == value, column
            else:
                assert float(row[column]) == value, column
    assert rows[1]["error"] == 'ValueError: bad, "quoted"'


def test_a_sweep_whose_trials_saw_a_nan_metric_reads_back(fake, monkeypatch):
    """Optuna writes its journal with Python's json, a NaN metric of a trial's picked step as
    NaN: the sweep's own reader takes it back (status, resume) as the NaN it was."""
    monkeypatch.setenv("FAKE_TRAIN_NAN_LOSS", "1")
    best, _ = run_sweep(fake, {"learning_rate": [1e-3, 1e-2]}, method="grid")
    state = load_state(str(fake["dir"] / "sweep"))
    assert [t["status"] for t in state["trials"]] == ["done", "done"]
    for t in state["trials"]:
        assert math.isnan(t["metrics"]["eval_loss"])
        assert t["metrics"]["accuracy"] == pytest.approx(fake_score(t["params"]["learning_rate"]))
    assert state["best"] == best["id"]
    run_sweep(fake, {"learning_rate": [1e-3, 1e-2]}, method="grid")  # a resume reads it too


def test_the_best_trial_link_never_replaces_a_folder(fake):
    """best_trial is swapped atomically through t5core.file_writes; a real folder there is
    refused, not deleted with what it holds."""
    from t5core.file_writes import UnsafeWriteError

    planted = fake["dir"] / "sweep" / "best_trial"
    planted.mkdir(parents=True)
    (planted / "keep.txt").write_text("mine")
    with pytest.raises(UnsafeWriteError, match="not a link"):
        run_sweep(fake, {"learning_rate": [1e-3]}, method="grid")
    assert (planted / "keep.txt").read_text() == "mine"


def test_a_sweep_recorded_with_the_old_proposals_is_refused(fake):
    """Sweeps of an older t5core enqueued grid points and seeded each trial; Optuna's GridSampler
    would propose their trials again: such a journal is refused, not resumed."""
    run_sweep(fake, {"learning_rate": [1e-3]}, method="grid")
    journal = fake["dir"] / "sweep" / "journal.log"
    assert b'"proposals":2' in journal.read_bytes()
    journal.write_bytes(journal.read_bytes().replace(b',"proposals":2', b""))
    with pytest.raises(SweepStateError, match="holds a different sweep .*proposals: saved None"):
        run_sweep(fake, {"learning_rate": [1e-3]}, method="grid")
    assert len(fake["invocations"]()) == 1
