"""Runs a sweep: each trial a `scripts/train.py` process in its own model_dir under
sweep_dir/trials/, evaluations reported to Optuna (layout, pruning, process group:
docs/architecture.md, The sweep's runner).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Callable

from t5core import file_writes
from t5core import model_dir as run_files
from t5core.dataclass_flags import (COUNT, NONNEGATIVE, POSITIVE, SEED, STEPS, OnlyWith,
                                    field_problems, option)
from t5core.locking import DirectoryLock
import t5core.sweep.results as results
import t5core.sweep.study as study
from t5core.sweep.devices import SlotPlan
from t5core.sweep.evals import pick, read_evals
from t5core.sweep.space import SearchSpace, SearchSpaceError
from t5core.sweep.study import TRIALS, SweepStateError
from t5core.sweep.train_flags import flag_arg, trial_options

METHODS = ("grid", "random", "bayesian")


def _not_a_flag(**kwargs):
    """A field that prepare derives from the inputs, not a flag of scripts/sweep.py."""
    return dataclasses.field(metadata={"flag": False}, **kwargs)


@dataclasses.dataclass
class SweepConfig:
    """A sweep's settings. The fields made with `option` are scripts/sweep.py's flags, and every
    field's choices and bounds are checked once, by `dataclass_flags.field_problems`."""
    sweep_dir: str = _not_a_flag()
    space: SearchSpace = _not_a_flag()
    objective: str = _not_a_flag()
    direction: str = dataclasses.field(metadata={"flag": False, "choices": ("max", "min")})
    train_script: str = _not_a_flag()
    method: str = option("random", "Search method (bayesian: Optuna's TPE sampler after "
                         "--startup_trials random trials).", choices=METHODS)
    max_trials: int = option(0, "Trial budget (grid: 0 = the whole grid).", bound=STEPS)
    train_flags: dict = _not_a_flag(default_factory=dict)  # fixed for every trial
    added_flags: dict = _not_a_flag(default_factory=dict)  # e.g. best_metric, progress_bar
    seed: int = option(0, "Seed of the proposals (grid: the order in which Optuna's GridSampler "
                       "visits it).", bound=SEED)
    objective_reduce: str = option("best", "A trial's value: its best evaluation (the one its "
                                   "best/ checkpoint holds) or its last.", ("best", "last"))
    startup_trials: int = option(5, "bayesian: random trials before the model proposes.",
                                 bound=STEPS, only_with=OnlyWith("method", ("bayesian",)))
    parallel: int = option(1, "Trials run at once (a GPU each, or a share of the CPU cores).",
                           bound=COUNT)
    gpus: list | None = _not_a_flag(default=None)  # None: auto-detect
    median_stopping: bool = option(False, "Stop a trial whose best objective so far is worse "
                                   "than the completed trials' median at the same step "
                                   "(Optuna's MedianPruner; needs --eval_every).")
    median_min_trials: int = option(3, "Completed trials before the median rule acts.",
                                    bound=COUNT, only_with=OnlyWith("median_stopping"))
    median_grace_evals: int = option(1, "Evaluations a trial gets before it can be stopped.",
                                     bound=STEPS, only_with=OnlyWith("median_stopping"))
    trial_timeout: float = option(0.0, "Fail a trial running longer than this (seconds; 0: no "
                                  "limit).", bound=NONNEGATIVE)
    retry_failed: bool = option(False, "On resume, run failed trials again.")
    keep_checkpoints: str = option("all", "best: delete the checkpoints of every trial but the "
                                   "best (logs and events stay).", ("all", "best"))
    poll_seconds: float = option(2.0, "How often running trials are checked.", bound=POSITIVE)
    python: str = _not_a_flag(default=sys.executable)
    known_metrics: tuple = _not_a_flag(default=())  # what the trials evaluate, for HParams

    def identity(self) -> dict:
        """What defines the sweep, as the journal holds it: a restart must agree on all of it
        (max_trials may grow)."""
        identity = {"space": self.space.to_dict(), "method": self.method,
                    "objective": self.objective, "direction": self.direction,
                    "reduce": self.objective_reduce, "seed": self.seed,
                    "train_script": os.path.abspath(self.train_script),
                    "train_flags": dict(sorted(self.train_flags.items())),
                    "startup_trials": self.startup_trials if self.method == "bayesian" else None,
                    # How trials were proposed: 2, Optuna's grid order and seeded samplers. A
                    # sweep recorded before (per-trial seeds, grid points enqueued) is refused,
                    # not resumed with proposals that would repeat its trials.
                    "proposals": 2}
        return json.loads(json.dumps(identity))  # (tuples read back from the journal as lists)

    def check(self) -> None:
        problems = field_problems(self)
        if self.method != "grid" and self.max_trials == 0:
            problems.append(f"--method={self.method} needs --max_trials > 0")
        if self.method == "grid":
            self.space.grid_size()  # raises for continuous parameters
        if problems:
            raise SearchSpaceError("Bad sweep options: " + "; ".join(problems))

    def planned_trials(self) -> int:
        if self.method == "grid":
            size = self.space.grid_size()
            return min(size, self.max_trials) if self.max_trials else size
        if self.space.is_finite:
            return min(self.max_trials, self.space.grid_size())
        return self.max_trials

    def trial_args(self, params: dict) -> list[str]:
        """The training script's arguments for a trial with `params`, but for --model_dir."""
        return [flag_arg(k, v) for k, v in {**self.train_flags, **params,
                                             **self.added_flags}.items()]


@dataclasses.dataclass
class _Running:
    """A trial process this sweep started."""
    trial: object  # the live optuna Trial
    record: dict  # study.record when it started
    proc: subprocess.Popen
    log_file: IO
    started: float
    train_steps: int
    reported: dict  # step -> objective told to Optuna
    reason: str | None = None  # why the sweep is stopping it: "pruned" or "timeout"
    pruned_at: int | None = None


class Sweep:
    def __init__(self, config: SweepConfig, log: Callable = print):
        config.check()
        self.c = config
        self.log = log
        self.dir = config.sweep_dir
        self.slots = SlotPlan(config.parallel, config.gpus)
        self.study = None
        self._stop = False

    def command(self, params: dict, model_dir: str) -> list[str]:
        return [self.c.python, self.c.train_script, *self.c.trial_args(params),
                f"--model_dir={model_dir}"]

    def records(self) -> list[dict]:
        return study.records(self.study, self.dir)

    def _frozen(self, trial):
        """The stored state of a live trial (its user attributes, intermediate values)."""
        return next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)

    # -- trials ----------------------------------------------------------------------------------
    def _launch(self, trial, slot: int) -> _Running:
        frozen = self._frozen(trial)
        rec = study.record(frozen, self.dir)
        model_dir = rec["model_dir"]
        cmd = self.command(rec["params"], model_dir)
        attempts = rec.get("attempts", 0) + 1
        device = self.slots.describe(slot)
        # Noted before its model_dir is made: a trial with attempts is one a restart runs again.
        for key, value in {"attempts": attempts, "command": shlex.join(cmd),
                           "device": device}.items():
            trial.set_user_attr(key, value)
        file_writes.check_folder_inside(model_dir, self.dir)  # the trial trains into it
        has_checkpoint = os.path.exists(run_files.path(model_dir, run_files.CHECKPOINT_STATE))
        if os.path.isdir(model_dir) and not has_checkpoint:
            # An interrupted attempt that saved no checkpoint: start clean, so that its
            # evaluations cannot mix with the new run's.
            file_writes.remove(model_dir, inside=os.path.join(self.dir, TRIALS))
        file_writes.make_dirs(model_dir)
        log_file = file_writes.open_append(run_files.path(model_dir, run_files.TRIAL_LOG))
        log_file.write(f"\n=== attempt {attempts} {time.ctime()} on {device}\n"
                       f"$ {shlex.join(cmd)}\n")
        log_file.flush()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        env.update(self.slots.env(slot))
        proc = self.slots.popen(slot, cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        trial.set_user_attr("pid", proc.pid)
        params = " ".join(f"{k}={_short(v)}" for k, v in rec["params"].items())
        resumed = "" if attempts == 1 else (
            f" (attempt {attempts}, from its last checkpoint)" if has_checkpoint
            else f" (attempt {attempts}, from scratch: no checkpoint was saved)")
        retry = f" (a retry of {rec['retry_of']})" if rec.get("retry_of") else ""
        self.log(f"{rec['id']} started on {device}{resumed}{retry}: {params}")
        steps = trial_options(self.c.trial_args(rec["params"])).train.train_steps
        return _Running(trial, rec, proc, log_file, time.time(), steps,
                        dict(frozen.intermediate_values))

    def _report(self, run: _Running, evals: dict) -> bool:
        """Tells Optuna each evaluation of the objective not told yet; True if there was one."""
        new = False
        for step, metrics in sorted(evals.items()):
            value = metrics.get(self.c.objective)
            if value is not None and math.isfinite(value) and step not in run.reported:
                run.trial.report(value, step)
                run.reported[step] = value
                new = True
        return new

    def _should_prune(self, run: _Running) -> bool:
        """Optuna's MedianPruner on the trial's evaluations so far (after the grace evaluations,
        and never at the last one, when stopping would save nothing)."""
        if not self._report(run, read_evals(run.record["model_dir"]) or {}):
            return False
        step = max(run.reported)
        if len(run.reported) < max(1, self.c.median_grace_evals) or step >= run.train_steps \
                or not run.trial.should_prune():
            return False
        best = (min if self.c.direction == "min" else max)(run.reported.values())
        run.pruned_at = step
        self.log(f"{run.record['id']} pruned at step {step}: its best {self.c.objective} so far, "
                 f"{best:.5g}, is worse than the median of the completed trials at that step")
        return True

    def _finish(self, run: _Running, stopping: bool) -> bool:
        """Records an ended trial: done, pruned or failed. True when it stays RUNNING to rerun
        on resume (a signal stopped it, or it failed while the sweep stops)."""
        rec, trial, code = run.record, run.trial, run.proc.returncode
        run.log_file.close()
        seconds = rec.get("seconds", 0.0) + time.time() - run.started
        # The trainer saves its step and exits 0 on SIGTERM/SIGINT; its results.json says so.
        signalled = code == 0 and bool(results.trainer_results(rec["model_dir"]).get("stopped_by"))
        if not run.reason and (signalled or (stopping and code)):
            trial.set_user_attr("seconds", seconds)
            return True
        evals = read_evals(rec["model_dir"])
        self._report(run, evals or {})
        reduce = "best" if run.reason == "pruned" else self.c.objective_reduce
        picked = pick(evals or {}, self.c.objective, self.c.direction, reduce)
        notes = {"seconds": seconds, "returncode": code, "last_step": max(evals) if evals else None}
        if picked is not None:
            notes["step"], notes["metrics"] = picked
            notes["value"] = picked[1][self.c.objective]
        status, error = self._outcome(run, evals, notes.get("value"), code != 0 or signalled)
        if error:
            notes["error"] = error
        if status == "pruned":
            notes["pruned_at"] = run.pruned_at
        for key, value in notes.items():
            trial.set_user_attr(key, value)
        states = study.optuna().trial.TrialState
        state = {"done": states.COMPLETE, "pruned": states.PRUNED}.get(status, states.FAIL)
        self.study.tell(trial, notes["value"] if status == "done" else None, state=state)
        rec.update(notes, status=status)
        value = f"{self.c.objective} {rec['value']:.5g} at step {rec['step']}" \
            if rec.get("value") is not None else "no value"
        self.log(f"{rec['id']} {status} after {seconds:.0f} s: {value}"
                 + (f" ({error.splitlines()[0][:300]})" if error else ""))
        return False  # what follows from the result is `_reconcile`'s

    def _outcome(self, run: _Running, evals, value, stopped: bool) -> tuple[str, str | None]:
        """(status, error) of an ended trial; `stopped`: by the sweep's signal or with an error."""
        if run.reason == "pruned" and stopped:
            return "pruned", None
        if run.reason == "timeout":
            return "failed", f"timed out after {self.c.trial_timeout} s"
        if run.proc.returncode != 0:
            return "failed", (f"exit code {run.proc.returncode}: "
                              + results.log_tail(run.record["model_dir"]))
        if evals is None:
            return "failed", (f"finished but wrote no {run_files.TRAIN_LOG}, where the sweep reads "
                              "a trial's evaluations (t5core's trainer appends one record each)")
        if value is None:
            found = sorted({k for v in evals.values() for k in v})
            return "failed", (f"finished but wrote no {self.c.objective!r} evaluation "
                              f"({run_files.TRAIN_LOG}: {', '.join(found) or 'none'})")
        if not math.isfinite(value):
            return "failed", f"its {self.c.objective} is {value}"
        # A trial asked to stop that had already finished counts as done.
        return "done", None

    # -- the loop --------------------------------------------------------------------------------
    def _open(self) -> list:
        """Opens the study; returns the trials a killed sweep left running, to run first."""
        o = study.optuna()
        pruner = o.pruners.MedianPruner(
            n_startup_trials=self.c.median_min_trials, n_min_trials=self.c.median_min_trials) \
            if self.c.median_stopping else o.pruners.NopPruner()
        self.study = study.load_study(self.dir, dict(
            direction="minimize" if self.c.direction == "min" else "maximize", pruner=pruner),
            self.log)
        saved, now = self.study.user_attrs.get("identity"), self.c.identity()
        if saved is None:
            self.study.set_user_attr("identity", now)
        diff = [k for k in now if saved is not None and saved.get(k) != now[k]]
        if diff:
            details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in diff)
            raise SweepStateError(f"{self.dir} holds a different sweep ({details}). Use a new "
                                  "--sweep_dir, or the same settings to resume it.")
        self.study.set_user_attr("known_metrics", list(self.c.known_metrics))
        started = {t["id"] for t in self.records() if "attempts" in t}
        strangers = sorted(set(os.listdir(os.path.join(self.dir, TRIALS))) - started)
        if strangers:  # e.g. a sweep of an older t5core, or a journal removed by hand
            raise SweepStateError(
                f"{os.path.join(self.dir, TRIALS)} holds {', '.join(strangers)}, which this "
                f"sweep's {study.JOURNAL} did not start (a sweep of an older t5core or one "
                "whose journal was removed): their checkpoints are not this sweep's; use a new "
                "--sweep_dir")
        self.study.sampler = study.sampler(self.c.method, self.c.space, self.c.seed,
                                           self.c.startup_trials, len(self.study.trials))
        rerun = study.resumed_trials(self.study, self.c.space)
        for trial in rerun:
            rec = study.record(self._frozen(trial), self.dir)
            if "attempts" in rec:
                _stop_stale_process(rec)
                self.log(f"{rec['id']} was interrupted; it will run again")
        if self.c.retry_failed and study.retry_failed(self.study):
            self.log("failed trials will run again as new trials")
        self._reconcile()  # a sweep killed after a trial's result was recorded published less
        return rerun

    def run(self) -> dict | None:
        """Runs (or resumes) the sweep to the end; returns the best trial's record (or None)."""
        file_writes.make_dirs(os.path.join(self.dir, TRIALS))
        lock = DirectoryLock(self.dir, run_files.LOCK, SweepStateError,
                             hint="another sweep process is running there; wait for it or use "
                                  "another --sweep_dir")
        lock.acquire()
        try:
            return self._run()
        finally:
            lock.release()

    def _run(self) -> dict | None:
        rerun = self._open()
        finished = sum(t["status"] in ("done", "failed", "pruned") for t in self.records())
        self.log(f"Sweep {self.dir}: {self.c.method} search over {', '.join(self.c.space.names)}; "
                 f"{self.c.planned_trials()} trials planned, objective {self.c.direction} "
                 f"{self.c.objective}" + (f"; resumed with {finished} finished"
                                          if self.study.trials else ""))
        results.write_hparams_experiment(self.dir, self.c.space, self.c.objective,
                                         self.c.known_metrics)
        running: dict[int, _Running] = {}  # slot -> trial process
        previous = {}
        if threading.current_thread() is threading.main_thread():  # (only it sets handlers)
            previous = {sig: signal.signal(sig, lambda *_: setattr(self, "_stop", True))
                        for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                for slot, run in list(running.items()):
                    if run.proc.poll() is not None:
                        del running[slot]
                        self._finish(run, self._stop)
                        self._reconcile()
                if self._stop:
                    break
                for run in running.values():
                    if run.reason:
                        continue
                    if self.c.trial_timeout and time.time() - run.started > self.c.trial_timeout:
                        run.reason = "timeout"
                    elif self.c.median_stopping and self._should_prune(run):
                        run.reason = "pruned"
                    if run.reason:
                        run.proc.terminate()
                for slot in [s for s in range(self.c.parallel) if s not in running]:
                    trial = rerun.pop(0) if rerun else study.next_trial(
                        self.study, self.c.space, self.c.planned_trials())
                    if trial is None:
                        break
                    running[slot] = self._launch(trial, slot)
                if not running:
                    break
                time.sleep(self.c.poll_seconds)
        finally:  # interrupted, or an error in the sweep itself: stop the trials cleanly
            for run in running.values():
                run.proc.terminate()
            for run in running.values():
                try:
                    run.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    run.proc.kill()
                    run.proc.wait()
                if self._finish(run, stopping=True):
                    self.log(f"{run.record['id']} stopped; it will run again when the sweep "
                             "resumes")
            if self.study is not None:
                self._reconcile()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._stop:
            raise KeyboardInterrupt("sweep interrupted; rerun the same command to resume "
                                    f"({self.dir})")
        return self.summary()

    def _reconcile(self) -> None:
        """Derives every output from the journal, idempotently: the best trial's link and
        best.json, the finished trials' HParams sessions, --keep_checkpoints, the tables. A kill
        between a trial's result reaching the journal and these writes leaves them behind; the
        next call (when the sweep resumes, after each trial, at its end) catches them up."""
        records = self.records()
        best = study.best(self.study, self.dir)
        if best is not None and not results.is_published(self.dir, best):
            results.publish_best(self.dir, best, self.c.objective, self.c.direction)
            self.log(f"best so far: {best['id']} ({self.c.objective} {best['value']:.5g})")
        for t in records:
            if t["status"] in ("done", "pruned"):
                results.write_hparams_session(t, self.c.objective)  # once: its marker says so
            if self.c.keep_checkpoints == "best" and t["status"] != "running" \
                    and (best is None or t["id"] != best["id"]):
                results.delete_checkpoints(t["model_dir"])
        results.write_tables(self.dir, records, self.c.space.names, self.c.objective)

    def summary(self) -> dict | None:
        best = study.best(self.study, self.dir)
        self.log(results.markdown_table(self.records(), self.c.space.names, self.c.objective,
                                        best["id"] if best else None))
        if best is None:
            self.log("No trial finished with a value.")
            return None
        self.log(f"Best: {best['id']}, {self.c.objective} {best['value']:.5g} at step "
                 f"{best['step']}; checkpoint {os.path.join(self.dir, results.BEST_LINK)} "
                 f"({results.BEST_INFO})")
        return best


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _stop_stale_process(rec: dict) -> None:
    """A trial process that outlived a killed sweep must not keep writing its model_dir."""
    pid = rec.get("pid")  # read from the journal: an int, or nothing to stop
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except OSError:
        return
    if rec["model_dir"] not in cmdline:
        return  # the pid was reused by something else
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
