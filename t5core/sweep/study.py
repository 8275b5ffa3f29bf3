"""A sweep's record, kept by Optuna: every trial's parameters, state and evaluations.

`sweep_dir/journal.log` is an Optuna JournalStorage file, an append-only log of operations, each
written whole and fsync'ed, that Optuna replays to rebuild the study. A sweep killed at any
moment (SIGKILL included) therefore restarts knowing every trial it had begun. The study's user
attributes hold the sweep's definition, so a restart with another definition is refused; each
trial's user attributes hold the sweep's notes on it (attempts, command, seconds, the step and
metrics of its value, the error of a failed run).

Trial states: RUNNING = running, COMPLETE = done, PRUNED = pruned, FAIL = failed. Trials that
never run (enqueued and waiting, or skipped) are not listed. Which trial comes next:
- grid: the declared grid in its order (the last flag varying fastest), one point enqueued
  (`Study.enqueue_trial`) per trial. Optuna's GridSampler visits the points in a shuffled order,
  and ends a study with `Study.stop`, which only works inside `Study.optimize`.
- random: `RandomSampler`; bayesian: `TPESampler` after `startup_trials` random trials. The
  sampler of trial n is seeded by (seed, n): a sampler seeded once would restart its stream when
  a killed sweep resumes, and propose trial 0's parameters again.
- In a finite space, a proposal that repeats an earlier trial is skipped: it is told the earlier
  trial's value, as Optuna's FAQ recommends, so the sampler learns it is known, and the sampler
  is asked again; after a few repeats in a row, an untried combination is picked at random.
- A trial still RUNNING when the sweep starts belonged to a sweep that was killed: if it had
  been launched, it runs again under its own number, in its own model_dir; if not, it is skipped
  (its parameters may be half suggested). A failed trial cannot run again in Optuna, so
  --retry_failed enqueues its parameters as a new trial.
"""

from __future__ import annotations

import json
import os

import numpy as np

from t5core.errors import T5CoreError, UserFileNotFoundError

JOURNAL = "journal.log"
TRIALS = "trials"  # sweep_dir/trials/<trial id>: each trial's model_dir
STUDY_NAME = "sweep"
LEGACY_STATE = "state.json"  # where sweeps kept their record before the Optuna journal
REPEATS_BEFORE_PICKING = 10
STATUS = {"RUNNING": "running", "COMPLETE": "done", "PRUNED": "pruned", "FAIL": "failed"}


class SweepStateError(T5CoreError, ValueError):
    """sweep_dir holds a different sweep, or another sweep process is using it."""


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


def sampler(method: str, seed: int, number: int, startup_trials: int = 5):
    """The sampler that proposes trial `number` of a random or bayesian sweep."""
    samplers = optuna().samplers
    trial_seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
    if method == "bayesian":
        return samplers.TPESampler(seed=trial_seed, n_startup_trials=startup_trials)
    return samplers.RandomSampler(seed=trial_seed)


def first_params(config) -> dict:
    """The parameters trial 0 of a new sweep gets (for the dry run)."""
    if config.method == "grid":
        return config.space.grid()[0]
    study = optuna().create_study(sampler=sampler(config.method, config.seed, 0,
                                                  config.startup_trials))
    return config.space.suggest(study.ask())


def refuse_legacy(sweep_dir: str) -> None:
    """A sweep_dir of an older t5core: its trials' model_dirs must not be taken over."""
    if os.path.exists(os.path.join(sweep_dir, LEGACY_STATE)) \
            and not os.path.exists(os.path.join(sweep_dir, JOURNAL)):
        raise SweepStateError(
            f"{sweep_dir} holds a sweep of an older t5core ({LEGACY_STATE}), which this one cannot "
            f"resume (it keeps its record in {JOURNAL}): use a new --sweep_dir")


def journal_storage(sweep_dir: str, create: bool = True):
    """The Optuna storage of a sweep_dir (its journal file)."""
    path = os.path.join(sweep_dir, JOURNAL)
    if create:
        refuse_legacy(sweep_dir)
    elif not os.path.exists(path):
        raise UserFileNotFoundError(f"{sweep_dir}: no sweep there ({JOURNAL} is missing)")
    journal = optuna().storages.journal
    # An O_EXCL lock file: it needs no symlinks, which some shared file systems lack.
    return journal.JournalStorage(journal.JournalFileBackend(path,
                                                             journal.JournalFileOpenLock(path)))


def record(trial, sweep_dir: str) -> dict:
    """The sweep's view of an Optuna trial, as the results table and best.json show it."""
    name = trial_name(trial.number)
    return {"index": trial.number, "id": name, "params": dict(trial.params),
            "status": STATUS[trial.state.name],
            "model_dir": os.path.join(sweep_dir, TRIALS, name), **trial.user_attrs}


def _listed(trial) -> bool:
    return trial.state.name in STATUS and "skipped" not in trial.user_attrs


def _best(study):
    try:
        return study.best_trial
    except ValueError:  # no trial is complete
        return None


def load_state(sweep_dir: str) -> dict:
    """A sweep's definition, trials and best trial id, from its journal (also while it runs)."""
    study = optuna().load_study(study_name=STUDY_NAME,
                                storage=journal_storage(sweep_dir, create=False))
    best = _best(study)
    return {"identity": study.user_attrs.get("identity"),
            "known_metrics": study.user_attrs.get("known_metrics", []),
            "trials": [record(t, sweep_dir) for t in study.get_trials(deepcopy=False)
                       if _listed(t)],
            "best": trial_name(best.number) if best is not None else None}


def _key(params) -> str:
    return json.dumps(params, sort_keys=True)


class SweepStudy:
    """The Optuna study of one sweep: what runs next, and what the sweep learns of each trial."""

    def __init__(self, storage, config, pruner=None):
        o = optuna()
        self.c, self.storage = config, storage
        self.pruner = pruner or o.pruners.NopPruner()
        direction = "minimize" if config.direction == "min" else "maximize"
        self.study = o.create_study(study_name=STUDY_NAME, storage=storage, direction=direction,
                                    sampler=o.samplers.RandomSampler(), pruner=self.pruner,
                                    load_if_exists=True)
        saved, now = self.study.user_attrs.get("identity"), json.loads(
            json.dumps(config.identity()))
        if saved is None:
            self.study.set_user_attr("identity", now)
        diff = [k for k in now if saved is not None and saved.get(k) != now[k]]
        if diff:
            details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in diff)
            raise SweepStateError(f"{config.sweep_dir} holds a different sweep ({details}). Use a "
                                  "new --sweep_dir, or the same settings to resume it.")
        self.study.set_user_attr("known_metrics", list(config.known_metrics))
        self._study_id = storage.get_study_id_from_name(STUDY_NAME)

    # -- reading -----------------------------------------------------------------------------------
    def trials(self, states=None) -> list:
        return self.study.get_trials(deepcopy=False, states=states)

    def records(self) -> list[dict]:
        return [record(t, self.c.sweep_dir) for t in self.trials() if _listed(t)]

    def record(self, number: int) -> dict:
        return record(self.storage.get_trial(self._trial_id(number)), self.c.sweep_dir)

    def best(self) -> dict | None:
        best = _best(self.study)
        return record(best, self.c.sweep_dir) if best is not None else None

    # -- writing: the storage's own methods, because a resumed trial has no live Trial object ----
    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self._study_id, number)

    def note(self, number: int, **attrs) -> None:
        trial_id = self._trial_id(number)
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(trial_id, key, value)

    def report(self, number: int, step: int, value: float) -> None:
        self.storage.set_trial_intermediate_value(self._trial_id(number), step, value)

    def should_prune(self, number: int) -> bool:
        return self.pruner.prune(self.study, self.storage.get_trial(self._trial_id(number)))

    def tell(self, number: int, status: str, value: float | None = None) -> None:
        state = optuna().trial.TrialState
        if status == "done":
            self.study.tell(number, value)
        else:
            self.study.tell(number, state=state.PRUNED if status == "pruned" else state.FAIL)

    def skip(self, number: int, why: str, value: float | None = None) -> None:
        """Ends a trial that never runs; it is neither listed nor counted as proposed."""
        self.note(number, skipped=why)
        self.tell(number, "done" if value is not None else "failed", value)

    def set_aside_unstarted(self) -> None:
        """Skips the trials a killed sweep had asked for but not launched: their parameters may
        be partly suggested. (A grid point or a retry set aside is enqueued again.)"""
        for t in self.trials(states=(optuna().trial.TrialState.RUNNING,)):
            if "attempts" not in t.user_attrs:
                self.skip(t.number, "the sweep stopped before it started")

    # -- what runs next ----------------------------------------------------------------------------
    def retry_failed(self) -> int:
        """Enqueues each failed trial not retried yet as a new trial; returns how many."""
        trials = self.trials()
        retried = {t.user_attrs.get("retry_of") for t in trials if "skipped" not in t.user_attrs}
        failed = [t for t in trials if t.state.name == "FAIL" and _listed(t)
                  and trial_name(t.number) not in retried]
        for t in failed:
            self.study.enqueue_trial(t.params, user_attrs={"retry_of": trial_name(t.number)})
        return len(failed)

    def next_trial(self, planned: int) -> int | None:
        """Starts the next trial and returns its number; None when the sweep has run its course.

        An enqueued trial (a grid point or a retry) comes first; then, while fewer than `planned`
        trials were proposed, a new one.
        """
        trials = self.trials()
        if any(t.state.name == "WAITING" for t in trials):
            return self._ask(len(trials))[0]
        proposed = [t for t in trials if _listed(t) and "retry_of" not in t.user_attrs]
        if len(proposed) >= planned:
            return None
        if self.c.method == "grid":
            self.study.enqueue_trial(self.c.space.grid()[len(proposed)])
            return self._ask(len(trials))[0]
        tried = {_key(t.params): t for t in proposed}
        count = len(trials)
        for _ in range(REPEATS_BEFORE_PICKING):
            number, params = self._ask(count)
            count += 1
            earlier = tried.get(_key(params)) if self.c.space.is_finite else None
            if earlier is None:
                return number
            self.skip(number, f"repeats {trial_name(earlier.number)}",
                      earlier.value if earlier.state.name == "COMPLETE" else None)
        # The sampler keeps proposing tried combinations: pick an untried one at random.
        untried = [g for g in self.c.space.grid() if _key(g) not in tried]
        rng = np.random.default_rng([self.c.seed, count])
        self.study.enqueue_trial(untried[int(rng.integers(len(untried)))])
        return self._ask(count)[0]

    def _ask(self, number: int) -> tuple[int, dict]:
        study = optuna().load_study(
            study_name=STUDY_NAME, storage=self.storage, pruner=self.pruner,
            sampler=sampler(self.c.method, self.c.seed, number, self.c.startup_trials))
        trial = study.ask()
        return trial.number, self.c.space.suggest(trial)


def open_study(config, pruner=None) -> SweepStudy:
    """The study of config.sweep_dir: a new one, or the one a killed sweep left there."""
    return SweepStudy(journal_storage(config.sweep_dir), config, pruner)
