"""From the sweep's inputs to a checked SweepConfig: every mistake is reported before any trial
(the checks and the dry run: docs/architecture.md, Preparing a sweep).
"""

from __future__ import annotations

import os
import subprocess

from t5core import file_writes
from t5core import model_dir as run_files
from t5core.errors import UserFileNotFoundError
import t5core.sweep.study as study
from t5core.sweep.evals import read_evals
from t5core.sweep.results import log_tail
from t5core.sweep.runner import Sweep, SweepConfig
from t5core.sweep.space import SearchSpace, SearchSpaceError, load_space, parse_space
from t5core.sweep.train_flags import (EMBEDDED_TASK_METRICS, check_objective, check_space,
                                      check_trials, default_direction, parse_fixed_flags,
                                      uses_embedded_task)

# The dry run's flags after the first trial's: one step, one batch, the objective not asked for.
DRY_RUN = {"train_steps": 1, "warmup_steps": 0, "eval_every": 0, "eval_steps": 1,
           "eval_examples": 8, "early_stopping_patience": 0, "save_every": 0, "best_metric": ""}


def dry_run_metrics(config: SweepConfig, log=print) -> list[str]:
    """Metric names of one 1-step run of the first trial's flags, in sweep_dir/_dry_run."""
    folder = os.path.join(config.sweep_dir, "_dry_run")
    file_writes.remove(folder, inside=config.sweep_dir)
    first = study.optuna().create_study(sampler=study.sampler(
        config.method, config.space, config.seed, config.startup_trials)).ask()
    cmd = Sweep(config, log=lambda *a: None).command(config.space.suggest(first), folder)
    cmd += [f"--{k}={v}" for k, v in DRY_RUN.items()]
    log(f"Checking --objective with a one-step dry run in {folder} ...")
    file_writes.make_dirs(folder)
    log_path = run_files.path(folder, run_files.TRIAL_LOG)
    with file_writes.open_append(log_path) as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode != 0:
        raise SearchSpaceError(f"the dry run of the first trial's flags failed (exit code "
                               f"{proc.returncode}); no trial was started. Its log "
                               f"({log_path}) ends:\n{log_tail(folder)}")
    evals = read_evals(folder)
    if evals is None:
        raise SearchSpaceError(
            f"the dry run of {config.train_script} wrote no {run_files.TRAIN_LOG}, where the "
            "sweep reads each trial's evaluations (t5core's trainer appends one record per "
            "evaluation); no trial was started")
    file_writes.remove(folder, inside=config.sweep_dir)
    return sorted({k for v in evals.values() for k in v})


def _checked_before(config: SweepConfig) -> list | None:
    """The metric names a resumed sweep recorded, if it is the same sweep."""
    if not os.path.exists(os.path.join(config.sweep_dir, study.JOURNAL)):
        return None
    state = study.load_state(config.sweep_dir)
    same = state["identity"] == config.identity()
    return list(state["known_metrics"] or []) if same else None


def prepare(sweep_dir: str, space, objective: str, train_script: str, train_args=(),
            direction: str = "auto", validate: str = "auto", log=print, **options) -> SweepConfig:
    """Checks everything and returns the SweepConfig (options: SweepConfig's other fields)."""
    study.optuna()  # without it no trial can run: say so before any check or dry run
    if not objective:
        raise SearchSpaceError("--objective is required (e.g. accuracy, eval_loss)")
    if validate not in ("auto", "dry", "none"):
        raise SearchSpaceError(f"--validate must be auto, dry or none (got {validate!r})")
    if not os.path.exists(train_script):
        raise UserFileNotFoundError(f"--train_script={train_script} does not exist")
    if isinstance(space, str):
        space = load_space(space)
    elif not isinstance(space, SearchSpace):
        space = parse_space(space)
    fixed = parse_fixed_flags(train_args)
    check_space(space, fixed)
    objective = objective.removeprefix(run_files.EVAL_RECORD_PREFIX)  # 'eval/accuracy' too
    if direction == "auto":
        direction = default_direction(objective)
    best_metric = fixed.pop("best_metric", "")
    if best_metric not in ("", objective):
        raise SearchSpaceError(f"--best_metric={best_metric} passed to the trials contradicts "
                               f"--objective={objective}")
    # The trial's best/ checkpoint follows the objective; trial logs are files: no progress bars.
    added = {"best_metric": objective, **({} if "progress_bar" in fixed
                                          else {"progress_bar": "false"})}
    check_trials(space, fixed, options.get("median_stopping", False))
    config = SweepConfig(sweep_dir=sweep_dir, space=space, objective=objective,
                         direction=direction, train_script=train_script, train_flags=fixed,
                         added_flags=added, **options)
    config.check()
    check_objective(objective, direction, None, "")  # the cheap part first
    checked = _checked_before(config)
    if validate == "none":
        available, source = None, ""
    elif uses_embedded_task(space, fixed) and validate == "auto":
        available, source = list(EMBEDDED_TASK_METRICS), "the embedded task set"
    elif checked and validate == "auto":  # a resumed sweep: its flags were dry-run already
        available, source = checked, "the earlier dry run of this sweep"
    else:
        file_writes.make_dirs(sweep_dir)
        available = dry_run_metrics(config, log)
        source = "a one-step run of these flags"
    check_objective(objective, direction, available, source)
    config.known_metrics = tuple(available or (objective,))
    return config
