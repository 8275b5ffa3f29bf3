"""A sweep's record, kept by Optuna in sweep_dir/journal.log: trials' parameters, states and
evaluations; which trial comes next (docs/architecture.md, The sweep's record).
"""

from __future__ import annotations

import json
import os
import random

from t5core import file_writes
from t5core.errors import T5CoreError, UserFileNotFoundError
from t5core.file_reads import parse_json, read_bytes

JOURNAL = "journal.log"
TRIALS = "trials"  # sweep_dir/trials/<trial id>: each trial's model_dir
STUDY_NAME = "sweep"
STATUS = {"RUNNING": "running", "COMPLETE": "done", "PRUNED": "pruned", "FAIL": "failed"}
REPEATS = 10


class SweepStateError(T5CoreError, ValueError):
    """sweep_dir holds a different sweep or a damaged record, or another sweep is using it."""


class MissingExtraError(T5CoreError, ImportError):
    """An optional dependency of the sweep is not installed."""


def optuna():
    """The optuna module, or an error that says how to install it."""
    try:
        import optuna as module
    except ImportError:
        raise MissingExtraError("the sweep needs Optuna: pip install t5core[sweep]") from None
    return module


def trial_name(number: int) -> str:
    return f"trial_{number:04d}"


def sampler(method: str, space, seed: int, startup_trials: int = 5, trials: int = 0):
    """The Optuna sampler of a sweep's method over `space`, for a study holding `trials`."""
    samplers = optuna().samplers
    if method == "grid":  # its seed shuffles the grid: the same for the whole sweep
        grid = samplers.GridSampler(space.axes(), seed=seed)
        # Its Study.stop at the grid's end works only inside Study.optimize; the sweep stops
        # after its planned trials.
        grid.after_trial = lambda *args: None
        return grid
    # A sampler seeded as when the sweep began would propose its first trials again on resume.
    seed += trials
    if method == "bayesian":
        return samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)
    return samplers.RandomSampler(seed=seed)


def check_journal(path: str, repair: bool) -> str | None:
    """Checks an untrusted journal: each line a JSON object. A torn last line is cut off when
    `repair` (the sweep's lock held), returning a note; any other bad line is a SweepStateError
    naming file and line."""
    data = read_bytes(path, SweepStateError)
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], 1):
        try:
            # Optuna writes it with Python's json: a trial's NaN metric is a bare NaN there.
            record = parse_json(line, path, ValueError, nonfinite=True)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise SweepStateError(f"{path}, line {number}: not an Optuna journal record; the "
                                  "sweep's record is damaged: use a new --sweep_dir")
    if lines[-1] and repair:
        file_writes.write_bytes(path, data[:len(data) - len(lines[-1])])
        return f"{path}: removed a torn last record (a write cut short when the sweep was killed)"
    return None


def load_study(sweep_dir: str, create: dict | None = None, log=print):
    """The study in sweep_dir's journal; `create`: optuna.create_study's arguments, to make it
    if missing (the caller holds the sweep's lock, so a torn tail is repaired)."""
    o = optuna()
    path = os.path.join(sweep_dir, JOURNAL)
    file_writes.refuse_link(path)  # Optuna appends to it (and locks beside it) by itself
    if os.path.exists(path):
        note = check_journal(path, repair=create is not None)
        if note:
            log(note)
    elif create is None:
        raise UserFileNotFoundError(f"{sweep_dir}: no sweep there ({JOURNAL} is missing)")
    journal = o.storages.journal
    # An O_EXCL lock file: it needs no symlinks, which some shared file systems lack.
    storage = journal.JournalStorage(journal.JournalFileBackend(
        path, journal.JournalFileOpenLock(path)))
    try:
        if create is None:
            return o.load_study(study_name=STUDY_NAME, storage=storage)
        return o.create_study(study_name=STUDY_NAME, storage=storage, load_if_exists=True,
                              **create)
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise SweepStateError(f"{path}: Optuna cannot replay it ({type(err).__name__}: {err}); "
                              "use a new --sweep_dir") from None


def listed(trial) -> bool:
    """Trials that never run (waiting, or skipped as repeats) are not listed."""
    return trial.state.name in STATUS and "skipped" not in trial.user_attrs


def record(trial, sweep_dir: str) -> dict:
    """The sweep's view of an Optuna trial, as the results table and best.json show it."""
    name = trial_name(trial.number)
    return {"index": trial.number, "id": name, "params": dict(trial.params),
            "status": STATUS[trial.state.name],
            "model_dir": os.path.join(sweep_dir, TRIALS, name), **trial.user_attrs}


def records(study, sweep_dir: str) -> list[dict]:
    return [record(t, sweep_dir) for t in study.get_trials(deepcopy=False) if listed(t)]


def best(study, sweep_dir: str) -> dict | None:
    try:
        return record(study.best_trial, sweep_dir)
    except ValueError:  # no trial is complete
        return None


def load_state(sweep_dir: str) -> dict:
    """A sweep's definition, trials and best trial id, from its journal (also while it runs)."""
    study = load_study(sweep_dir)
    top = best(study, sweep_dir)
    return {"identity": study.user_attrs.get("identity"),
            "known_metrics": study.user_attrs.get("known_metrics", []),
            "trials": records(study, sweep_dir), "best": top["id"] if top else None}


def _key(params) -> str:
    return json.dumps(params, sort_keys=True)


def resumed_trials(study, space) -> list:
    """Live Trials of those a killed sweep left RUNNING, their parameters suggested in full (the
    kill may have come between two suggestions)."""
    o = optuna()
    trials = []
    for frozen in study.get_trials(deepcopy=False, states=(o.trial.TrialState.RUNNING,)):
        trial = o.trial.Trial(study, frozen._trial_id)  # (Optuna's way to reopen a trial)
        space.suggest(trial)
        trials.append(trial)
    return trials


def retry_failed(study) -> int:
    """Enqueues each failed trial not retried yet as a new trial; returns how many."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    failed = [t for t in trials if t.state.name == "FAIL" and listed(t)
              and trial_name(t.number) not in retried]
    for t in failed:
        study.enqueue_trial(t.params, user_attrs={"retry_of": trial_name(t.number)})
    return len(failed)


def next_trial(study, space, planned: int):
    """The next trial to run (a live Trial, its parameters suggested); None when `planned`
    trials were proposed. An enqueued retry comes first."""
    trials = study.get_trials(deepcopy=False)
    proposed = [t for t in trials if listed(t) and "retry_of" not in t.user_attrs]
    if not any(t.state.name == "WAITING" for t in trials):
        if len(proposed) >= planned:
            return None
        tried = {_key(t.params): t for t in proposed}
        for _ in range(REPEATS):
            trial = study.ask()
            params = space.suggest(trial)
            earlier = tried.get(_key(params)) if space.is_finite else None
            if earlier is None:
                return trial
            trial.set_user_attr("skipped", f"repeats {trial_name(earlier.number)}")
            if earlier.state.name == "COMPLETE":
                study.tell(trial, earlier.value)
            else:
                study.tell(trial, state=optuna().trial.TrialState.FAIL)
        untried = [g for g in space.grid() if _key(g) not in tried]
        study.enqueue_trial(random.Random(len(study.trials)).choice(untried))
    trial = study.ask()
    space.suggest(trial)
    return trial
