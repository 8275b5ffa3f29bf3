"""From the sweep's inputs to a checked SweepConfig: every mistake is reported before any trial.

Checks, in order: the space parses and is not empty; each searched and each fixed flag exists in
the training script (by its --helpxml) with values of the right type; no flag is both searched and
fixed; the objective is a metric the trials will produce, and its direction agrees with how the
trainer picks its best checkpoint; flags that must agree across trials do (warm-up shorter than
training, evaluations for the median-stopping rule).

Which metrics a run produces: for the embedded task set they are known
(train_flags.EMBEDDED_TASK_METRICS). For any other data source the sweep does a dry run: the
first trial's flags with one training step and one evaluation batch, in sweep_dir/_dry_run, and
reads the metric names from its train_log.jsonl. That costs a model build and one decode pass,
and it also catches a bad data path or model flag before N trials all fail on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from t5core import model_dir as run_files
from t5core.sweep import study
from t5core.sweep.evals import read_evals
from t5core.sweep.runner import Sweep, SweepConfig, _log_tail
from t5core.sweep.space import SearchSpace, SearchSpaceError, load_space, parse_space
from t5core.sweep.train_flags import (EMBEDDED_TASK_METRICS, check_objective, check_space,
                                      default_direction, normalize_metric, parse_fixed_flags,
                                      read_flags, uses_embedded_task)

_WARMUP_NEEDS_TOTAL = ("linear", "cosine")  # schedules that need train_steps > warmup_steps


def _values(name, space: SearchSpace, fixed, flags):
    """Every value a flag takes across the trials (range ends for ranges); None if unknown."""
    for p in space.params:
        if p.name == name:
            return list(p.values) if p.kind == "choice" else [p.low, p.high]
    text = fixed.get(name, flags[name].default if name in flags else None)
    if text is None or text == "":
        return None
    try:
        return [float(text)] if name != "schedule" else [text]
    except ValueError:
        return [text]


def check_consistency(space, fixed, flags, median_stopping: bool) -> None:
    problems = []
    steps = _values("train_steps", space, fixed, flags)
    warmup = _values("warmup_steps", space, fixed, flags)
    schedules = _values("schedule", space, fixed, flags) or []
    if steps and warmup and any(s in _WARMUP_NEEDS_TOTAL for s in schedules) \
            and max(warmup) >= min(steps):
        problems.append(f"warmup_steps up to {max(warmup):g} but train_steps as low as "
                        f"{min(steps):g}: the {'/'.join(_WARMUP_NEEDS_TOTAL)} schedules need "
                        "train_steps > warmup_steps")
    every = _values("eval_every", space, fixed, flags)
    patience = _values("early_stopping_patience", space, fixed, flags)
    if patience and max(patience) > 0 and every is not None and min(every) == 0:
        problems.append("early_stopping_patience needs eval_every > 0")
    if median_stopping:
        if every is None or min(every) == 0:
            problems.append("--median_stopping compares intermediate evaluations: pass "
                            "--eval_every=N (N > 0) to the trials")
        elif steps and min(every) >= max(steps):
            problems.append(f"--median_stopping: eval_every={min(every):g} >= train_steps="
                            f"{max(steps):g}, so trials evaluate only at their end")
    if problems:
        raise SearchSpaceError("Contradictory trial flags: " + "; ".join(problems))


def dry_run_metrics(config: SweepConfig, known_flags=(), log=print) -> list[str]:
    """Metric names of one 1-step run of the first trial's flags (see the module docstring)."""
    folder = os.path.join(config.sweep_dir, "_dry_run")
    shutil.rmtree(folder, ignore_errors=True)
    trial = {"id": "dry_run", "params": study.first_params(config), "model_dir": folder}
    flags = Sweep(config, log=lambda *a: None).command(trial)
    overrides = {"train_steps": 1, "warmup_steps": 0, "eval_every": 0, "eval_steps": 1,
                 "eval_examples": 8, "early_stopping_patience": 0, "save_every": 0,
                 "best_metric": ""}  # the objective is what is being checked: not asked for
    flags += [f"--{k}={v}" for k, v in overrides.items() if k in known_flags]
    log(f"Checking --objective with a one-step dry run in {folder} ...")
    os.makedirs(folder, exist_ok=True)
    with open(run_files.path(folder, run_files.TRIAL_LOG), "w") as out:
        proc = subprocess.run(flags, stdout=out, stderr=subprocess.STDOUT,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode != 0:
        log_path = run_files.path(folder, run_files.TRIAL_LOG)
        raise SearchSpaceError(f"the dry run of the first trial's flags failed (exit code "
                               f"{proc.returncode}); no trial was started. Its log "
                               f"({log_path}) ends:\n{_log_tail(folder)}")
    evals = read_evals(folder)
    if evals is None:
        raise SearchSpaceError(
            f"the dry run of {config.train_script} wrote no {run_files.TRAIN_LOG}, where the "
            "sweep reads each trial's evaluations (t5core's trainer appends one record per "
            "evaluation); no trial was started")
    names = sorted({k for v in evals.values() for k in v})
    shutil.rmtree(folder, ignore_errors=True)
    return names


def _checked_before(config: SweepConfig) -> list | None:
    """The metric names a resumed sweep recorded, if it is the same sweep."""
    study.refuse_legacy(config.sweep_dir)
    if not os.path.exists(os.path.join(config.sweep_dir, study.JOURNAL)):
        return None
    state = study.load_state(config.sweep_dir)
    same = state["identity"] == json.loads(json.dumps(config.identity()))
    return list(state["known_metrics"] or []) if same else None


def prepare(sweep_dir: str, space, objective: str, train_script: str, train_args=(),
            direction: str = "auto", validate: str = "auto", log=print, **options) -> SweepConfig:
    """Checks everything and returns the SweepConfig (options: SweepConfig's other fields)."""
    study.optuna()  # without it no trial can run: say so before any check or dry run
    if not objective:
        raise SearchSpaceError("--objective is required (e.g. accuracy, eval_loss)")
    if validate not in ("auto", "dry", "none"):
        raise SearchSpaceError(f"--validate must be auto, dry or none (got {validate!r})")
    if isinstance(space, str):
        space = load_space(space)
    elif not isinstance(space, SearchSpace):
        space = parse_space(space)
    flags = read_flags(train_script, options.get("python") or sys.executable)
    fixed = parse_fixed_flags(list(train_args), flags)
    check_space(space, flags, fixed)
    objective = normalize_metric(objective)
    if direction == "auto":
        direction = default_direction(objective)
    added = {}
    if "best_metric" in flags:  # the trial's best/ checkpoint then follows the objective
        if fixed.get("best_metric") not in (None, "", objective):
            raise SearchSpaceError(f"--best_metric={fixed['best_metric']} passed to the trials "
                                   f"contradicts --objective={objective}")
        fixed.pop("best_metric", None)
        added["best_metric"] = objective
    if "progress_bar" in flags and "progress_bar" not in fixed:
        added["progress_bar"] = "false"  # trial logs are files: no carriage-return bars
    check_consistency(space, fixed, flags, options.get("median_stopping", False))
    config = SweepConfig(sweep_dir=sweep_dir, space=space, objective=objective,
                         direction=direction, train_script=train_script, train_flags=fixed,
                         added_flags=added, **options)
    steps = _values("train_steps", space, fixed, flags)
    if steps and "train_steps" not in space.names:
        config.train_steps = int(steps[0])
    config.check()
    trainer_rule = "best_metric" in flags
    check_objective(objective, direction, None, "", trainer_rule)  # the cheap part first
    embedded = uses_embedded_task(space, fixed)
    checked = _checked_before(config)
    if validate == "none":
        available, source = None, ""
    elif embedded and validate == "auto":
        available, source = list(EMBEDDED_TASK_METRICS), "the embedded task set"
    elif checked and validate == "auto":  # a resumed sweep: its flags were dry-run already
        available, source = checked, "the earlier dry run of this sweep"
    else:
        os.makedirs(sweep_dir, exist_ok=True)
        available = dry_run_metrics(config, tuple(flags), log)
        source = "a one-step run of these flags"
    check_objective(objective, direction, available, source, trainer_rule)
    config.known_metrics = tuple(available or (objective,))
    return config
