"""Runs a sweep: each trial a `scripts/train.py` process in its own model_dir.

sweep_dir/
  journal.log        the sweep's record, kept by Optuna (study.py); a restarted sweep resumes it
  trials/trial_0003/ the trial's model_dir (checkpoints, best/, train_log.jsonl) + train.log
  results.csv, results.jsonl, best.json, best_trial -> trials/<best id>, HParams events
  LOCK               held by the one sweep process running here

A trial's evaluations are read from its train_log.jsonl and reported to Optuna; with
--median_stopping, Optuna's MedianPruner decides at each new evaluation whether to stop it. Its
value is its best (or last) evaluation of the objective; the best by default, which is the one
its best/ checkpoint holds, since the sweep passes --best_metric=<objective> to every trial.
A trial that was running when the sweep was killed runs again, resuming from its own last
checkpoint if it wrote one. Done, failed and pruned trials never run again (--retry_failed
runs a failed trial's parameters again as a new trial).

Parallel trials each get a slot (devices.py): a GPU each, or a disjoint share of the CPU cores.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Callable

from t5core import model_dir as run_files
from t5core.locking import DirectoryLock
from t5core.sweep import results
from t5core.sweep.devices import SlotPlan
from t5core.sweep.evals import pick, read_evals
from t5core.sweep.space import SearchSpace, SearchSpaceError
from t5core.sweep.study import TRIALS, SweepStateError, SweepStudy, open_study, optuna
from t5core.sweep.train_flags import format_flag

METHODS = ("grid", "random", "bayesian")


@dataclasses.dataclass
class SweepConfig:
    sweep_dir: str
    space: SearchSpace
    objective: str
    direction: str  # "max" | "min"
    train_script: str
    method: str = "random"
    max_trials: int = 0  # grid: 0 = the whole grid
    train_flags: dict = dataclasses.field(default_factory=dict)  # fixed for every trial
    added_flags: dict = dataclasses.field(default_factory=dict)  # e.g. best_metric, progress_bar
    seed: int = 0
    reduce: str = "best"  # the trial's value: its "best" or its "last" evaluation
    startup_trials: int = 5  # bayesian: random trials before the model proposes
    parallel: int = 1
    gpus: list | None = None  # None: auto-detect
    median_stopping: bool = False
    median_min_trials: int = 3
    median_grace_evals: int = 1
    trial_timeout: float = 0.0  # seconds; 0 = none
    retry_failed: bool = False
    keep_checkpoints: str = "all"  # "all" | "best"
    poll_seconds: float = 2.0
    python: str = sys.executable
    known_metrics: tuple = ()  # what the trials evaluate, for the HParams dashboard
    train_steps: int | None = None  # the trials' --train_steps unless searched (prepare sets it)

    def identity(self) -> dict:
        """What defines the sweep: a restart must agree on all of it (max_trials may grow)."""
        return {"space": self.space.to_dict(), "method": self.method, "objective": self.objective,
                "direction": self.direction, "reduce": self.reduce, "seed": self.seed,
                "train_script": os.path.abspath(self.train_script),
                "train_flags": dict(sorted(self.train_flags.items())),
                "startup_trials": self.startup_trials if self.method == "bayesian" else None}

    def check(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(f"--method must be one of {', '.join(METHODS)} (got {self.method!r})")
        if self.direction not in ("max", "min"):
            problems.append(f"--direction must be max or min (got {self.direction!r})")
        if self.reduce not in ("best", "last"):
            problems.append(f"--objective_reduce must be best or last (got {self.reduce!r})")
        if self.max_trials < 0:
            problems.append(f"--max_trials must be >= 0 (got {self.max_trials})")
        if self.method != "grid" and self.max_trials == 0:
            problems.append(f"--method={self.method} needs --max_trials > 0")
        if self.keep_checkpoints not in ("all", "best"):
            problems.append("--keep_checkpoints must be all or best")
        if self.parallel < 1:
            problems.append(f"--parallel must be >= 1 (got {self.parallel})")
        if self.median_min_trials < 1:
            problems.append("--median_min_trials must be >= 1")
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


def lock_sweep_dir(sweep_dir: str) -> DirectoryLock:
    """Holds sweep_dir for this process until released or it exits (even by SIGKILL); one sweep
    at a time. The trials' model_dirs have the trainer's own lock."""
    lock = DirectoryLock(sweep_dir, run_files.LOCK, SweepStateError,
                         hint="another sweep process is running there; wait for it or use "
                              "another --sweep_dir")
    lock.acquire()
    return lock


@dataclasses.dataclass
class _Running:
    """A trial process this sweep started."""
    trial: dict  # its record (study.record) when it started
    proc: subprocess.Popen
    log_file: IO
    started: float
    reason: str | None = None  # why the sweep is stopping it: "pruned" or "timeout"
    pruned_at: int | None = None
    reported: dict = dataclasses.field(default_factory=dict)  # step -> objective told to Optuna

    @property
    def number(self) -> int:  # the Optuna trial number
        return self.trial["index"]


class Sweep:
    def __init__(self, config: SweepConfig, log: Callable = print):
        config.check()
        self.c = config
        self.log = log
        self.dir = config.sweep_dir
        self.slots = SlotPlan(config.parallel, config.gpus)
        self.study: SweepStudy | None = None
        self._stop = False
        self._rerun: list[int] = []  # trials a killed sweep left running

    def command(self, trial: dict) -> list[str]:
        flags = [format_flag(k, v) if not isinstance(v, str) else f"--{k}={v}"
                 for k, v in self.c.train_flags.items()]
        flags += [format_flag(k, v) for k, v in trial["params"].items()]
        flags += [f"--{k}={v}" for k, v in self.c.added_flags.items()]
        return [self.c.python, self.c.train_script, *flags, f"--model_dir={trial['model_dir']}"]

    # -- trials ----------------------------------------------------------------------------------
    def _launch(self, number: int, slot: int) -> _Running:
        trial = self.study.record(number)
        model_dir = trial["model_dir"]
        has_checkpoint = os.path.exists(run_files.path(model_dir, run_files.CHECKPOINT_STATE))
        if os.path.isdir(model_dir) and not has_checkpoint:
            # An interrupted attempt that saved no checkpoint: start clean, so that its
            # evaluations cannot mix with the new run's.
            shutil.rmtree(model_dir)
        os.makedirs(model_dir, exist_ok=True)
        cmd = self.command(trial)
        attempts = trial.get("attempts", 0) + 1
        device = self.slots.describe(slot)
        log_file = open(run_files.path(model_dir, run_files.TRIAL_LOG), "a")
        log_file.write(f"\n=== attempt {attempts} {time.ctime()} on {device}\n"
                       f"$ {shlex.join(cmd)}\n")
        log_file.flush()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        env.update(self.slots.env(slot))
        # Noted before the process starts: a trial with attempts is one a restart runs again.
        self.study.note(number, attempts=attempts, command=shlex.join(cmd), device=device)
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=self.slots.preexec(slot))
        self.study.note(number, pid=proc.pid)
        params = " ".join(f"{k}={_short(v)}" for k, v in trial["params"].items())
        resumed = "" if attempts == 1 else (
            f" (attempt {attempts}, from its last checkpoint)" if has_checkpoint
            else f" (attempt {attempts}, from scratch: no checkpoint was saved)")
        retry = f" (a retry of {trial['retry_of']})" if trial.get("retry_of") else ""
        self.log(f"{trial['id']} started on {device}{resumed}{retry}: {params}")
        return _Running(trial, proc, log_file, time.time())

    def _report(self, run: _Running, evals: dict) -> bool:
        """Tells Optuna each evaluation of the objective not told yet; True if there was one."""
        new = False
        for step, metrics in sorted(evals.items()):
            value = metrics.get(self.c.objective)
            if value is not None and math.isfinite(value) and run.reported.get(step) != value:
                self.study.report(run.number, step, value)
                run.reported[step] = value
                new = True
        return new

    def _should_prune(self, run: _Running) -> bool:
        """Optuna's MedianPruner on the trial's evaluations so far (after the grace evaluations,
        and never at the last one, when stopping would save nothing)."""
        if not self._report(run, read_evals(run.trial["model_dir"]) or {}):
            return False
        if len(run.reported) < max(1, self.c.median_grace_evals):
            return False
        step = max(run.reported)
        total = run.trial["params"].get("train_steps", self.c.train_steps)
        if total and step >= int(total):
            return False
        if not self.study.should_prune(run.number):
            return False
        best = (min if self.c.direction == "min" else max)(run.reported.values())
        run.pruned_at = step
        self.log(f"{run.trial['id']} pruned at step {step}: its best {self.c.objective} so far, "
                 f"{best:.5g}, is worse than the median of the completed trials at that step")
        return True

    def _finish(self, run: _Running, returncode: int, reason: str | None) -> None:
        """Records a trial whose process ended: done, pruned, failed, or left to run again."""
        trial, number = run.trial, run.number
        seconds = trial.get("seconds", 0.0) + time.time() - run.started
        if reason == "interrupted":  # it stays RUNNING in the study and runs again on resume
            self.study.note(number, seconds=seconds)
            return
        evals = read_evals(trial["model_dir"])
        self._report(run, evals or {})
        picked = pick(evals or {}, self.c.objective, self.c.direction,
                      "best" if reason == "pruned" else self.c.reduce)
        notes = {"seconds": seconds, "returncode": returncode,
                 "last_step": max(evals) if evals else None}
        if picked is not None:
            notes["step"], notes["metrics"] = picked
            notes["value"] = picked[1][self.c.objective]
        status, error = self._outcome(trial, returncode, reason, evals, notes.get("value"))
        if error:
            notes["error"] = error
        if status == "pruned":
            notes["pruned_at"] = run.pruned_at
        self.study.note(number, **notes)
        self.study.tell(number, status, notes.get("value"))
        trial.update(notes, status=status)
        value = f"{self.c.objective} {trial['value']:.5g} at step {trial['step']}" \
            if trial.get("value") is not None else "no value"
        self.log(f"{trial['id']} {status} after {seconds:.0f} s: {value}"
                 + (f" ({error.splitlines()[0][:300]})" if error else ""))
        if status in ("done", "pruned"):
            results.write_hparams_session(trial, self.c.objective)

    def _outcome(self, trial, returncode, reason, evals, value) -> tuple[str, str | None]:
        """(status, error) of a trial whose process ended."""
        if reason == "pruned" and (returncode != 0 or _stopped_by_signal(trial, returncode)):
            return "pruned", None
        if reason == "timeout":
            return "failed", f"timed out after {self.c.trial_timeout} s"
        if returncode != 0:
            return "failed", f"exit code {returncode}: " + _log_tail(trial["model_dir"])
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
    def _pruner(self):
        pruners = optuna().pruners
        if not self.c.median_stopping:
            return pruners.NopPruner()
        return pruners.MedianPruner(n_startup_trials=self.c.median_min_trials,
                                    n_min_trials=self.c.median_min_trials)

    def _recover(self) -> list[dict]:
        """Readies trials a killed sweep left behind; returns every trial already recorded."""
        self.study.set_aside_unstarted()
        recorded = self.study.records()
        for trial in recorded:
            if trial["status"] == "running":  # the sweep was killed while it ran
                _stop_stale_process(trial)
                self._rerun.append(trial["index"])
                self.log(f"{trial['id']} was interrupted; it will run again")
        if self.c.retry_failed:
            retried = self.study.retry_failed()
            if retried:
                self.log(f"{retried} failed trial(s) will run again as new trials")
        return recorded

    def _next_trial(self) -> int | None:
        if self._rerun:
            return self._rerun.pop(0)
        return self.study.next_trial(self.c.planned_trials())

    def run(self) -> dict | None:
        """Runs (or resumes) the sweep to the end; returns the best trial's record (or None)."""
        os.makedirs(os.path.join(self.dir, TRIALS), exist_ok=True)
        lock = lock_sweep_dir(self.dir)
        try:
            return self._run()
        finally:
            lock.release()

    def _run(self) -> dict | None:
        self.study = open_study(self.c, self._pruner())
        recorded = self._recover()
        finished = sum(t["status"] in ("done", "failed", "pruned") for t in recorded)
        self.log(f"Sweep {self.dir}: {self.c.method} search over {', '.join(self.c.space.names)}; "
                 f"{self.c.planned_trials()} trials planned, objective {self.c.direction} "
                 f"{self.c.objective}"
                 + (f"; resumed with {finished} finished" if recorded else ""))
        results.write_hparams_experiment(self.dir, self.c.space, self.c.objective,
                                         self.c.known_metrics)
        running: dict[int, _Running] = {}  # slot -> trial process
        previous = {signal.SIGINT: signal.getsignal(signal.SIGINT),
                    signal.SIGTERM: signal.getsignal(signal.SIGTERM)}

        def request_stop(signum, frame):
            self._stop = True

        if threading.current_thread() is not threading.main_thread():
            previous = {}  # signal handlers can only be set from the main thread
        for sig in previous:
            signal.signal(sig, request_stop)
        try:
            while True:
                for slot, run in list(running.items()):
                    if run.proc.poll() is None:
                        continue
                    run.log_file.close()
                    del running[slot]
                    # A trial that ended on its own keeps its result even if a stop was asked;
                    # one stopped by a signal (it saved its step) runs again, resuming.
                    code = run.proc.returncode
                    interrupted = run.reason is None and (
                        _stopped_by_signal(run.trial, code) or (self._stop and code != 0))
                    self._finish(run, run.proc.returncode,
                                 "interrupted" if interrupted else run.reason)
                    self._after_trial()
                if self._stop:
                    break
                for run in running.values():
                    if run.reason:
                        continue
                    if self.c.trial_timeout and time.time() - run.started > self.c.trial_timeout:
                        run.reason = "timeout"
                        run.proc.terminate()
                    elif self.c.median_stopping and self._should_prune(run):
                        run.reason = "pruned"
                        run.proc.terminate()
                for slot in [s for s in range(self.c.parallel) if s not in running]:
                    number = self._next_trial()
                    if number is None:
                        break
                    running[slot] = self._launch(number, slot)
                if not running:
                    break
                time.sleep(self.c.poll_seconds)
        finally:
            if running:  # interrupted, or an error in the sweep itself: stop the trials cleanly
                for run in running.values():
                    run.proc.terminate()
                for run in running.values():
                    try:
                        run.proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        run.proc.kill()
                        run.proc.wait()
                    run.log_file.close()
                    if _finished(run.trial, run.proc) or run.reason:  # ended, or was stopping
                        self._finish(run, run.proc.returncode, run.reason)
                        continue
                    self._finish(run, run.proc.returncode, "interrupted")
                    self.log(f"{run.trial['id']} stopped; it will run again when the sweep "
                             "resumes")
            self._write_tables()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._stop:
            raise KeyboardInterrupt("sweep interrupted; rerun the same command to resume "
                                    f"({self.dir})")
        return self.summary()

    def _after_trial(self) -> None:
        best = self.study.best()
        previous_best = results.published_best(self.dir)
        if best is not None and best["id"] != previous_best:
            results.publish_best(self.dir, best, self.c.objective, self.c.direction)
            self.log(f"best so far: {best['id']} ({self.c.objective} {best['value']:.5g})")
        if self.c.keep_checkpoints == "best":
            for t in self.study.records():
                if t["status"] != "running" and (best is None or t["id"] != best["id"]):
                    results.delete_checkpoints(t["model_dir"])
        self._write_tables()

    def _write_tables(self) -> None:
        if self.study is not None:
            results.write_tables(self.dir, self.study.records(), self.c.space.names,
                                 self.c.objective)

    def summary(self) -> dict | None:
        best = self.study.best()
        self.log(results.markdown_table(self.study.records(), self.c.space.names,
                                        self.c.objective, best["id"] if best else None))
        if best is None:
            self.log("No trial finished with a value.")
            return None
        self.log(f"Best: {best['id']}, {self.c.objective} {best['value']:.5g} at step "
                 f"{best['step']}; checkpoint {os.path.join(self.dir, results.BEST_LINK)} "
                 f"({results.BEST_INFO})")
        return best


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _log_tail(model_dir: str, lines: int = 12) -> str:
    path = run_files.path(model_dir, run_files.TRIAL_LOG)
    if not os.path.exists(path):
        return "(no log)"
    with open(path, errors="replace") as f:
        tail = f.read().splitlines()[-200:]
    # The error is usually the last line; keep a few before it for context.
    useful = [line for line in tail if line.strip() and not line.startswith(("I0000", "W0000"))]
    return "\n".join(useful[-lines:])


def _stopped_by_signal(trial: dict, returncode: int) -> bool:
    """The trainer saves its step and exits 0 on SIGTERM/SIGINT; its results.json says so."""
    return returncode == 0 and bool(results.trainer_results(trial["model_dir"]).get("stopped_by"))


def _finished(trial: dict, proc) -> bool:
    """Whether a trial process that exited ran to its end (not stopped by a signal)."""
    return proc.returncode == 0 and not _stopped_by_signal(trial, proc.returncode)


def _stop_stale_process(trial: dict) -> None:
    """A trial process that outlived a killed sweep (no PDEATHSIG) must not keep writing."""
    pid = trial.get("pid")
    if not pid:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except OSError:
        return
    if trial["model_dir"] not in cmdline:
        return  # the pid was reused by something else
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
