"""Runs a sweep: each trial a `scripts/train.py` subprocess with its own model_dir.

sweep_dir/
  state.json         the sweep: its definition and every trial (params, status, result), rewritten
                     atomically after every change; a restarted sweep continues from it
  trials/trial_0003/ the trial's model_dir (checkpoints, best/, train/ and eval/ events) + train.log
  results.csv, results.jsonl, best.json, best_trial -> trials/<best id>, HParams events

Trial status: pending -> running -> done | failed | pruned. A trial found "running" at start-up
was interrupted (the sweep was killed): it is run again, resuming from its own last checkpoint
if it wrote one. Done, failed and pruned trials are never rerun (failed ones with
--retry_failed). The objective of a trial is read from its evaluations (see events.py): by
default the best value over its evaluations, which is the one its best/ checkpoint holds, since
the sweep passes --best_metric=<objective> to every trial.

Parallel trials each get a slot (devices.py): a GPU each, or a disjoint share of the CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

import numpy as np

from t5core.errors import T5CoreError
from t5core.sweep import events, results, tpe
from t5core.sweep.devices import SlotPlan
from t5core.sweep.space import SearchSpace, SearchSpaceError, unseen
from t5core.sweep.train_flags import format_flag

STATE_FILE = "state.json"
METHODS = ("grid", "random", "bayesian")


class SweepStateError(T5CoreError, ValueError):
    """sweep_dir holds a different sweep, or another sweep process is using it."""


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


class Sweep:
    def __init__(self, config: SweepConfig, log: Callable = print):
        config.check()
        self.c = config
        self.log = log
        self.dir = config.sweep_dir
        self.trials: list[dict] = []
        self.slots = SlotPlan(config.parallel, config.gpus)
        self._stop = False
        self._lock_file = None

    # -- state -----------------------------------------------------------------------------------
    @property
    def state_path(self) -> str:
        return os.path.join(self.dir, STATE_FILE)

    def save(self) -> None:
        state = {"version": 1, "identity": self.c.identity(), "max_trials": self.c.max_trials,
                 "known_metrics": list(self.c.known_metrics), "trials": self.trials,
                 "best": self.best_trial_id()}
        results.atomic_write(self.state_path, json.dumps(state, indent=1) + "\n")

    def load(self) -> bool:
        """Loads state.json if there is one (a restart); False for a new sweep."""
        if not os.path.exists(self.state_path):
            return False
        with open(self.state_path) as f:
            state = json.load(f)
        saved, now = state["identity"], json.loads(json.dumps(self.c.identity()))
        diff = [k for k in now if saved.get(k) != now[k]]
        if diff:
            details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in diff)
            raise SweepStateError(f"{self.dir} holds a different sweep ({details}). Use a new "
                                  "--sweep_dir, or the same settings to resume it.")
        self.trials = state["trials"]
        return True

    def _acquire_lock(self) -> None:
        import fcntl

        self._lock_file = open(os.path.join(self.dir, ".sweep.lock"), "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepStateError(f"another sweep process is running in {self.dir}") from None

    # -- trials ----------------------------------------------------------------------------------
    def _new_trial(self) -> dict | None:
        index = len(self.trials)
        if index >= self.c.planned_trials():
            return None
        seen = [t["params"] for t in self.trials]
        params = self._propose(index, seen)
        if params is None:
            return None
        trial_id = f"trial_{index:04d}"
        trial = {"index": index, "id": trial_id, "params": params, "status": "pending",
                 "model_dir": os.path.join(self.dir, "trials", trial_id), "attempts": 0}
        self.trials.append(trial)
        return trial

    def _propose(self, index: int, seen) -> dict | None:
        space, seed = self.c.space, self.c.seed
        if self.c.method == "grid":
            return space.grid()[index]
        observations = self._observations()
        if self.c.method == "bayesian" and len(observations) >= self.c.startup_trials \
                and observations:
            return tpe.propose(space, observations, np.random.default_rng([seed, index]), seen)
        # Random (and the bayesian start-up): trial i's draw depends only on (seed, i); in a
        # finite space a repeat of an earlier trial is redrawn.
        for attempt in range(1000):
            params = space.sample(seed, index) if attempt == 0 else \
                space.sample(seed, index * 1000 + attempt)
            if not space.is_finite or unseen(params, seen):
                return params
        return None

    def _observations(self):
        sign = 1.0 if self.c.direction == "min" else -1.0
        return [(t["params"], sign * t["value"]) for t in self.trials
                if t["status"] in ("done", "pruned") and t.get("value") is not None]

    def best_trial_id(self):
        done = [t for t in self.trials if t["status"] == "done" and t.get("value") is not None]
        if not done:
            return None
        sign = 1.0 if self.c.direction == "min" else -1.0
        return min(done, key=lambda t: (sign * t["value"], t["index"]))["id"]

    def command(self, trial: dict) -> list[str]:
        flags = [format_flag(k, v) if not isinstance(v, str) else f"--{k}={v}"
                 for k, v in self.c.train_flags.items()]
        flags += [format_flag(k, v) for k, v in trial["params"].items()]
        flags += [f"--{k}={v}" for k, v in self.c.added_flags.items()]
        return [self.c.python, self.c.train_script, *flags, f"--model_dir={trial['model_dir']}"]

    def _launch(self, trial: dict, slot: int):
        model_dir = trial["model_dir"]
        has_checkpoint = os.path.exists(os.path.join(model_dir, "checkpoint"))
        if os.path.isdir(model_dir) and not has_checkpoint:
            # An interrupted attempt that saved no checkpoint: start clean, so its stale eval
            # events cannot mix with the new run's.
            import shutil

            shutil.rmtree(model_dir)
        os.makedirs(model_dir, exist_ok=True)
        cmd = self.command(trial)
        trial.update(status="running", attempts=trial.get("attempts", 0) + 1,
                     command=shlex.join(cmd), started=time.time(), slot=slot,
                     device=self.slots.describe(slot))
        log_file = open(os.path.join(model_dir, "train.log"), "a")
        log_file.write(f"\n=== attempt {trial['attempts']} {time.ctime()} on "
                       f"{trial['device']}\n$ {trial['command']}\n")
        log_file.flush()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        env.update(self.slots.env(slot))
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=self.slots.preexec(slot))
        trial["pid"] = proc.pid
        self.save()
        params = " ".join(f"{k}={_short(v)}" for k, v in trial["params"].items())
        resumed = "" if trial["attempts"] == 1 else (
            f" (attempt {trial['attempts']}, from its last checkpoint)" if has_checkpoint
            else f" (attempt {trial['attempts']}, from scratch: no checkpoint was saved)")
        self.log(f"{trial['id']} started on {trial['device']}{resumed}: {params}")
        return proc, log_file

    def _finish(self, trial: dict, returncode: int, reason: str | None) -> None:
        """Records a trial whose process ended: done, pruned, failed, or back to pending."""
        trial["seconds"] = trial.get("seconds", 0.0) + time.time() - trial.pop("started")
        trial.pop("pid", None)
        trial["returncode"] = returncode
        if reason == "interrupted":
            trial["status"] = "pending"
            return
        evals, source = events.read_evals(trial["model_dir"])
        trial["history"] = [[s, v[self.c.objective]] for s, v in sorted(evals.items())
                            if self.c.objective in v]
        picked = events.pick(evals, self.c.objective, self.c.direction,
                             "best" if reason == "pruned" else self.c.reduce)
        if picked is not None:
            trial["step"], trial["metrics"] = picked
            trial["value"] = trial["metrics"][self.c.objective]
        trial["last_step"] = max(evals) if evals else None
        trial["metrics_source"] = source
        if reason == "pruned" and returncode != 0:
            trial["status"] = "pruned"
        elif reason == "timeout":
            trial["status"], trial["error"] = "failed", f"timed out after {self.c.trial_timeout} s"
        elif returncode != 0:
            trial["status"] = "failed"
            trial["error"] = f"exit code {returncode}: " + _log_tail(trial["model_dir"])
        elif picked is None:
            found = sorted({k for v in evals.values() for k in v})
            trial["status"] = "failed"
            trial["error"] = (f"finished but wrote no {self.c.objective!r} evaluation ({source}: "
                              f"{', '.join(found) or 'none'})")
        else:  # (a trial asked to stop that had already finished counts as done)
            trial["status"] = "done"
            trial.pop("error", None)
            trial.pop("pruned_at", None)
        value = f"{self.c.objective} {trial['value']:.5g} at step {trial['step']}" \
            if trial.get("value") is not None else "no value"
        self.log(f"{trial['id']} {trial['status']} after {trial['seconds']:.0f} s: {value}"
                 + (f" ({trial['error'].splitlines()[0][:300]})" if trial.get("error") else ""))
        if trial["status"] in ("done", "pruned"):
            results.write_hparams_session(trial, self.c.objective)

    # -- median stopping -------------------------------------------------------------------------
    def _should_prune(self, trial: dict) -> bool:
        """Median stopping rule (Golovin et al., 2017, Vizier): stop a trial whose best objective
        so far is worse than the median, over completed trials, of their best objective by the
        same step."""
        evals, _ = events.read_evals(trial["model_dir"])
        curve = events.best_so_far(evals, self.c.objective, self.c.direction)
        if len(curve) < max(1, self.c.median_grace_evals):
            return False
        step, value = curve[-1]
        if step == trial.get("checked_step"):
            return False
        total = trial["params"].get("train_steps", self.c.train_steps)
        if total and step >= int(total):
            return False  # its last evaluation: nothing left to save by stopping it
        trial["checked_step"] = step
        others = []
        for t in self.trials:
            if t["status"] != "done" or not t.get("history"):
                continue
            before = [(s, v) for s, v in events.best_so_far(
                {s: {"m": v} for s, v in t["history"]}, "m", self.c.direction) if s <= step]
            if before:
                others.append(before[-1][1])
        if len(others) < self.c.median_min_trials:
            return False
        median = statistics.median(others)
        worse = value < median if self.c.direction == "max" else value > median
        if worse:
            trial["pruned_at"] = step
            self.log(f"{trial['id']} pruned at step {step}: best {self.c.objective} {value:.5g} "
                     f"is worse than the median {median:.5g} of {len(others)} completed trials")
        return worse

    # -- the loop --------------------------------------------------------------------------------
    def _recover(self) -> None:
        for trial in self.trials:
            if trial["status"] == "running":  # the sweep was killed while it ran
                _stop_stale_process(trial)
                trial.pop("started", None)
                trial.pop("pid", None)
                trial["status"] = "pending"
                self.log(f"{trial['id']} was interrupted; it will run again")
            elif trial["status"] == "failed" and self.c.retry_failed:
                trial["status"] = "pending"
                trial.pop("error", None)

    def _next_trial(self):
        for trial in self.trials:
            if trial["status"] == "pending":
                return trial
        return self._new_trial()

    def run(self) -> dict:
        """Runs (or resumes) the sweep to the end; returns the best trial's record (or None)."""
        os.makedirs(os.path.join(self.dir, "trials"), exist_ok=True)
        self._acquire_lock()
        resumed = self.load()
        self._recover()
        finished = sum(t["status"] in ("done", "failed", "pruned") for t in self.trials)
        self.log(f"Sweep {self.dir}: {self.c.method} search over {', '.join(self.c.space.names)}; "
                 f"{self.c.planned_trials()} trials planned, objective {self.c.direction} "
                 f"{self.c.objective}" + (f"; resumed with {finished} finished" if resumed else ""))
        self.save()
        results.write_hparams_experiment(self.dir, self.c.space, self.c.objective,
                                         self.c.known_metrics)
        running: dict[int, tuple] = {}  # slot -> (trial, process, log file, reason to stop)
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
                for slot, (trial, proc, log_file, reason) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    log_file.close()
                    del running[slot]
                    # A trial that ended on its own keeps its result even if a stop was asked.
                    interrupted = self._stop and proc.returncode != 0 and reason is None
                    self._finish(trial, proc.returncode, "interrupted" if interrupted else reason)
                    self._after_trial(trial)
                if self._stop:
                    break
                for slot, (trial, proc, log_file, reason) in list(running.items()):
                    if reason:
                        continue
                    age = time.time() - trial["started"]
                    if self.c.trial_timeout and age > self.c.trial_timeout:
                        running[slot] = (trial, proc, log_file, "timeout")
                        proc.terminate()
                    elif self.c.median_stopping and self._should_prune(trial):
                        running[slot] = (trial, proc, log_file, "pruned")
                        proc.terminate()
                free = [s for s in range(self.c.parallel) if s not in running]
                for slot in free:
                    trial = self._next_trial()
                    if trial is None:
                        break
                    proc, log_file = self._launch(trial, slot)
                    running[slot] = (trial, proc, log_file, None)
                if not running:
                    break
                time.sleep(self.c.poll_seconds)
        finally:
            if running:  # interrupted, or an error in the sweep itself: stop the trials cleanly
                for trial, proc, _, _ in running.values():
                    proc.terminate()
                for trial, proc, log_file, reason in running.values():
                    try:
                        proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    log_file.close()
                    if proc.returncode == 0 or reason:  # it had ended, or was being stopped
                        self._finish(trial, proc.returncode, reason)
                        continue
                    self._finish(trial, proc.returncode, "interrupted")
                    self.log(f"{trial['id']} stopped; it will run again when the sweep resumes")
            self.save()
            self._write_tables()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._stop:
            raise KeyboardInterrupt(f"sweep interrupted; rerun the same command to resume "
                                    f"({self.state_path})")
        return self.summary()

    def _after_trial(self, trial: dict) -> None:
        best_id = self.best_trial_id()
        previous_best = None
        if os.path.exists(os.path.join(self.dir, "best.json")):
            with open(os.path.join(self.dir, "best.json")) as f:
                previous_best = json.load(f).get("trial")
        if best_id is not None and best_id != previous_best:
            best = next(t for t in self.trials if t["id"] == best_id)
            results.publish_best(self.dir, best, self.c.objective, self.c.direction)
            self.log(f"best so far: {best_id} ({self.c.objective} {best['value']:.5g})")
        if self.c.keep_checkpoints == "best":
            for t in self.trials:
                if t["status"] in ("done", "failed", "pruned") and t["id"] != best_id:
                    results.delete_checkpoints(t["model_dir"])
        self.save()
        self._write_tables()

    def _write_tables(self) -> None:
        results.write_tables(self.dir, self.trials, self.c.space.names, self.c.objective)

    def summary(self) -> dict | None:
        best_id = self.best_trial_id()
        self.log(results.markdown_table(self.trials, self.c.space.names, self.c.objective,
                                        best_id))
        if best_id is None:
            self.log("No trial finished with a value.")
            return None
        best = next(t for t in self.trials if t["id"] == best_id)
        self.log(f"Best: {best_id}, {self.c.objective} {best['value']:.5g} at step "
                 f"{best['step']}; checkpoint {os.path.join(self.dir, 'best_trial')} "
                 f"(best.json)")
        return best


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _log_tail(model_dir: str, lines: int = 12) -> str:
    path = os.path.join(model_dir, "train.log")
    if not os.path.exists(path):
        return "(no log)"
    with open(path, errors="replace") as f:
        tail = f.read().splitlines()[-200:]
    # The error is usually the last line; keep a few before it for context.
    useful = [line for line in tail if line.strip() and not line.startswith(("I0000", "W0000"))]
    return "\n".join(useful[-lines:])


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


def load_state(sweep_dir: str) -> dict:
    with open(os.path.join(sweep_dir, STATE_FILE)) as f:
        return json.load(f)
