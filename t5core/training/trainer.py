"""The training loop: steps, checkpoints, evaluation, logging, early stopping.

Library code with no flags: `scripts/train.py` turns flags into a TrainConfig and calls `train`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from typing import Callable

import tensorflow as tf

from t5core import file_reads, file_writes
from t5core import model_dir as md
from t5core.checkpoints.model_state import ModelState
from t5core.dataclass_flags import (COUNT, FRACTION, LENGTH, NONNEGATIVE, POSITIVE, SEED, STEPS,
                                     OnlyWith, field_problems, option)
from t5core.errors import (FlagError, ModelDirError, TrainingStoppedError,
                           UserFileNotFoundError)
from t5core.losses import parse_loss_normalization
from t5core.optimizers import OPTIMIZER_NAMES, SCHEDULE_NAMES, make_optimizer, make_schedule
from t5core.optimizers.schedules import fit_warmup
from t5core.peft import describe_structure
from t5core.training import train_log
from t5core.training.distribute import all_workers_agree, is_chief, worker_info
from t5core.training.flops import (accelerators, parse_peak_flops, resolve_peak_flops,
                                   training_flops)
from t5core.training.preemption import Interrupted, Preemption
from t5core.training.steps import StepBuilder


# Compute dtype policies of a training run.
PRECISIONS = ("float32", "mixed_bfloat16")

# The flags a run's trajectory depends on beyond its checkpoint's weights, optimizer slots and
# data position. Each is recorded in every checkpoint; a resume with another value would not
# reach the uninterrupted run's weights, so it is refused (t5core.model_dir.check_resume_settings).
# --train_steps may change (to train on), as may what only watches the run (evaluation, logging).
DECAYING_SCHEDULES = ("linear", "cosine")  # their learning rate depends on --train_steps
RESUME_SETTINGS = ("batch_size", "inputs_length", "targets_length", "precision", "optimizer",
                   "learning_rate", "schedule", "warmup_steps", "weight_decay", "clip_norm",
                   "grad_accum_steps", "label_smoothing", "z_loss", "loss_normalization", "seed")

# The settings' entry naming the metric best/ and early stopping follow, and its direction: a
# resume that watches another starts the best value and patience count again.
WATCHED = "best_metric"

# What the console's figures mean, said once, where each first appears.
MEANINGS = {
    "token_accuracy": "target tokens predicted right given the previous ones, in percent",
    "eval_token_accuracy": "the same on the validation batches",
    "accuracy": "exact match: outputs decoded equal to their whole target, in percent",
    "mfu": "model FLOPs utilization, a fraction: the model's FLOP/s over the peak of the devices "
           "the step runs on (--peak_flops is one device's)",
    "tokens_per_second": "input and target positions per second, padding included (batch_size x "
                         "(inputs_length + targets_length))",
    "seconds_per_step": "wall time per step between log lines, evaluations and saves left out "
                        "(the first window includes compiling)",
    "learning_rate": "the rate the step's update used",
}
# What the figures of a classifier head's run mean where they differ: one label per example.
CLASSIFIER_MEANINGS = {
    "token_accuracy": "examples whose class the head predicts right, in percent",
    "tokens_per_second": "input positions per second, padding included (batch_size x "
                         "inputs_length)",
}


class NonFiniteLossError(TrainingStoppedError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


class NonFiniteWeightsError(TrainingStoppedError):
    """The weights hold NaN or Inf; no checkpoint of them is written."""


@dataclasses.dataclass
class TrainConfig:
    """How to train. The defaults are the main job's (the embedded task set, offline, minutes on a
    CPU); `scripts/train.py`'s flags are made from these fields (`t5core.dataclass_flags`)."""
    model_dir: str = option("runs/default", "Checkpoints and TensorBoard logs; rerun with the "
                            "same model_dir to resume.")
    train_steps: int = option(2000, "Total optimizer steps.", bound=COUNT)
    # Global: all replicas of all workers.
    batch_size: int = option(64, "Global batch size (all replicas).", bound=COUNT)
    inputs_length: int = option(24, "Encoder length in tokens.", bound=LENGTH)
    targets_length: int = option(12, "Decoder length in tokens.", bound=LENGTH)
    eval_every: int = option(500, "Evaluate every N steps (0: at the end).", bound=STEPS)
    eval_steps: int = option(10, "Batches for the validation loss (0: all).", bound=STEPS)
    save_every: int = option(500, "Checkpoint every N steps.", bound=STEPS)
    keep_checkpoints: int = option(3, "Checkpoints kept.", bound=COUNT)
    log_every: int = option(100, "Log metrics every N steps.", bound=COUNT)
    # No flag of its own: the command line's --jit_compile is RunOptions' auto/true/false.
    jit_compile: bool = option(False, "XLA-compile the step.", flag=False)
    precision: str = option("float32", "Compute dtype policy.", choices=PRECISIONS)
    optimizer: str = option("adamw", "Optimizer.", choices=OPTIMIZER_NAMES)
    learning_rate: float = option(2e-3, "Peak learning rate.", bound=POSITIVE)
    schedule: str = option("cosine", "Learning-rate schedule.", choices=SCHEDULE_NAMES)
    warmup_steps: int = option(100, "Linear warm-up steps (one as long as the run is shortened "
                               "to a tenth of it, with a note).", bound=STEPS)  # see fit_warmup
    weight_decay: float = option(0.0, "Weight decay (adamw: decoupled; adafactor: T5X rate).",
                                 bound=NONNEGATIVE)
    clip_norm: float = option(0.0, "Clip the global gradient norm (0: off).", bound=NONNEGATIVE)
    grad_accum_steps: int = option(1, "Micro-batches accumulated per step.", bound=COUNT)
    label_smoothing: float = option(0.0, "Label smoothing.", bound=FRACTION)
    z_loss: float = option(0.0, "z-loss coefficient (T5X uses 1e-4).", bound=NONNEGATIVE)
    loss_normalization: str = option("tokens", "tokens, total_tokens, sequences, none or "
                                     "constant:N.")
    seed: int = option(0, "Seed for initialisation, data order and dropout.", bound=SEED)
    early_stopping_patience: int = option(0, "Stop after N evaluations without improvement in "
                                          "--best_metric (0: never); evaluations inside the "
                                          "warm-up do not count.", bound=STEPS)
    best_metric: str = option("", "Metric for the best checkpoint and early stopping (default: "
                              "eval_loss, else the task's first metric).")
    best_metric_mode: str = option("auto", "Whether --best_metric improves downwards or upwards "
                                   "(auto: min for losses, else max).", choices=md.METRIC_MODES)
    skip_nonfinite: bool = option(False, "Skip steps with a non-finite loss instead of stopping.")
    max_nonfinite_skips: int = option(10, "--skip_nonfinite: stop after this many consecutive "
                                      "skipped steps (the weights themselves are then broken).",
                                      bound=COUNT, only_with=OnlyWith("skip_nonfinite"))
    peak_flops: str = option("", "Device peak FLOP/s for the MFU estimate: a number (4.7e11), or "
                             "auto to measure this machine's matmul peak once and cache it (unset: "
                             "no MFU).")
    progress_bar: bool = option(True, "Show a progress bar (else log lines).")

    def check(self, num_replicas: int | None = None) -> None:
        """Raises FlagError naming every bad option (as its --flag); with `num_replicas`, the
        batch must split evenly over them."""
        problems = self.problems(num_replicas)
        if problems:
            raise FlagError("Invalid training configuration: " + "; ".join(problems))

    def problems(self, num_replicas: int | None = None) -> list[str]:
        """What `check` refuses, one line per problem."""
        problems = field_problems(self)
        if self.grad_accum_steps >= 1 and self.batch_size >= 1:
            per_step = (num_replicas or 1) * self.grad_accum_steps
            if self.batch_size % per_step:
                problems.append(
                    f"--batch_size={self.batch_size} is not divisible by replicas x "
                    f"--grad_accum_steps = {num_replicas or 1} x {self.grad_accum_steps}")
        try:
            parse_peak_flops(self.peak_flops)
        except ValueError as err:
            problems.append(f"--peak_flops {err}")
        try:
            parse_loss_normalization(self.loss_normalization)
        except (TypeError, ValueError) as err:
            problems.append(f"--loss_normalization: {err}")
        if self.early_stopping_patience and not self.eval_every:
            problems.append("--early_stopping_patience needs --eval_every > 0")
        if tf.io.gfile.exists(self.model_dir) and not tf.io.gfile.isdir(self.model_dir):
            problems.append(f"--model_dir={self.model_dir} is a file, not a directory")
        return problems


def describe_run(model, run=None) -> md.RunDescription:
    """`run` (a `RunDescription`; None: one that knows no tokenizer) completed with the model's own
    structure: class, labels, prompt, LoRA."""
    run = dataclasses.replace(run or md.RunDescription(tokenizer=""), **describe_structure(model))
    if run.peft == "none" and (run.lora_rank or run.model_class == "PromptTunedT5"):
        run = dataclasses.replace(run, peft="lora" if run.lora_rank else "prompt")
    return run


class Trainer:
    """Runs training on a strategy; see `train()`.

    model_fn: builds (or loads) the T5Model under the strategy's scope.
    train_data: repeated batches (this worker's share); its iterator is checkpointed.
    eval_data: optional finite batches for the validation loss.
    evaluator: optional `evaluator(model) -> (metrics dict, sample lines)`.
    run: optional `t5core.model_dir.RunDescription`, written as run.json.
    restart_data: a resume restores all but the data position (--data_changed=restart_epoch).

    The chief holds the model_dir's lock from construction to the end of `train()`, or until
    construction fails (a second trainer there is refused, naming the holder). SIGTERM or SIGINT
    saves the step in progress and returns early, `stopped_by` naming the signal.
    """

    def __init__(self, config: TrainConfig, strategy, model_fn: Callable, train_data,
                 eval_data=None, evaluator=None, log=print, run=None, restart_data=False):
        self.config = config
        self.restart_data = restart_data
        self.strategy = strategy
        self.log = log if is_chief(strategy) else (lambda *a, **k: None)
        config.check(strategy.num_replicas_in_sync)
        self.stopped_by = ""  # the signal that stopped train() early, if one did
        self.run_dir = md.open_run(config.model_dir, strategy, self.log)
        try:
            self._build(model_fn, train_data, eval_data, evaluator, run)
        except BaseException:
            # Refused while being built, the trainer holds nothing: a corrected one may open
            # model_dir at once, in this process too; and leaves no lock file behind.
            self.run_dir.lock.release(undo=True)
            raise

    def _build(self, model_fn, train_data, eval_data, evaluator, run) -> None:
        """The model, optimizer, checkpoints (model_dir bound) and compiled steps."""
        config, strategy = self.config, self.strategy
        # No seeding here: tf.random.set_seed resets TensorFlow's eager context, which destroys
        # resources that datasets built earlier hold (the in-graph SentencePiece tokenizer).
        # Callers seed once, before building their data (see run.run).
        warmup_steps, note = fit_warmup(config.schedule, config.warmup_steps, config.train_steps)
        self.warmup_steps = warmup_steps  # early stopping counts no evaluation before its end
        if note:
            self.log(note)
        with strategy.scope():
            self.model = model_fn()
            schedule = self.schedule = make_schedule(
                config.schedule, config.learning_rate, warmup_steps, config.train_steps)
            self.optimizer = make_optimizer(config.optimizer, schedule, config.weight_decay,
                                            config.clip_norm or None)
            self.optimizer.build(self.model.trainable_variables)
        # A classifier head's model runs the encoder alone (no decoder FLOPs or positions).
        self.encoder_only = getattr(self.model, "encoder_only", False)
        self.train_iterator = iter(train_data)
        self.eval_data = eval_data
        self.evaluator = evaluator
        self.best = tf.Variable(math.nan, dtype=tf.float64, trainable=False)
        self.evals_without_improvement = tf.Variable(0, dtype=tf.int64, trainable=False)
        # The iterator's saved position is in batches of this size; a resume checks it.
        self.data_batch_size = tf.Variable(config.batch_size, dtype=tf.int64, trainable=False)
        self.settings = self.resume_settings()
        # Recorded in each checkpoint: the settings compared (never restored) on a resume, and
        # what best/ watches (WATCHED).
        self._recorded = {**self.settings, "train_steps": config.train_steps}
        settings = self._settings_record = tf.Variable(self._settings_text(), trainable=False)
        self._saved = dict(
            model=ModelState(self.model), optimizer=self.optimizer, data=self.train_iterator,
            best=self.best, evals_without_improvement=self.evals_without_improvement,
            data_batch_size=self.data_batch_size)
        self.checkpoint = tf.train.Checkpoint(**self._saved, **{md.TRAINING_SETTINGS: settings})
        self.manager, self.best_manager = self.run_dir.bind(
            self.model.config, describe_run(self.model, run), self.checkpoint,
            tf.train.Checkpoint(model=ModelState(self.model)), config.keep_checkpoints,
            self.settings)
        steps = StepBuilder(self.model, self.optimizer, strategy,
                            grad_accum_steps=config.grad_accum_steps,
                            label_smoothing=config.label_smoothing, z_loss=config.z_loss,
                            loss_normalization=config.loss_normalization,
                            jit_compile=config.jit_compile, skip_nonfinite=config.skip_nonfinite,
                            num_replicas=strategy.num_replicas_in_sync)
        self.train_step = steps.train_step()
        self.eval_step = steps.eval_step()
        self.writer = tf.summary.create_file_writer(
            md.path(config.model_dir, md.TRAIN_EVENTS) if is_chief(strategy)
            else self.run_dir.directory)
        self.eval_writer = tf.summary.create_file_writer(md.path(config.model_dir, md.EVAL_EVENTS))
        self.history: list[dict] = []
        self.last_eval: dict = {}
        self.watched = ""  # the metric best/ and early stopping follow, once the first eval names it
        self.bar = None  # the console progress bar while training, if any
        self._explained = set()  # the MEANINGS already logged

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def resume_settings(self) -> dict:
        """The RESUME_SETTINGS of this run by flag name, and the model's --dropout_rate."""
        settings = {name: getattr(self.config, name) for name in RESUME_SETTINGS}
        settings["dropout_rate"] = self.model.config.dropout_rate
        return settings

    def _settings_text(self) -> str:
        return file_writes.json_text(self._recorded, sort_keys=True)

    def _record(self, name, value) -> None:
        """Adds `name` to the settings each checkpoint from now on records."""
        self._recorded[name] = value
        self._settings_record.assign(self._settings_text())

    def _note_longer_schedule(self, saved_steps) -> None:
        """Says so when a decaying learning rate now decays over another --train_steps."""
        c = self.config
        if saved_steps not in (None, c.train_steps) and c.schedule in DECAYING_SCHEDULES:
            self.log(f"Note: the checkpoint was trained towards --train_steps={saved_steps}; the "
                     f"{c.schedule} learning rate now decays towards {c.train_steps}, so the "
                     f"steps from here differ from those of a run of {c.train_steps} steps "
                     "from the start")

    def restore(self) -> int:
        """Restores the latest checkpoint of model_dir, if any; returns the step reached.

        Its settings were held against this run's when the model_dir was bound (`__init__`).
        """
        latest = self.manager.latest_checkpoint
        if latest:
            saved = md.saved_settings(latest) or {}
            self._note_longer_schedule(saved.get("train_steps"))
            if isinstance(saved.get(WATCHED), str):
                # Kept until this run's first evaluation names what it watches.
                self._record(WATCHED, saved[WATCHED])
            # Everything but the settings (compared, not restored), and, with restart_data, the
            # data position.
            checkpoint = tf.train.Checkpoint(**{k: v for k, v in self._saved.items()
                                                if k != "data" or not self.restart_data})
            status = checkpoint.restore(latest)
            if saved:  # (older checkpoints did not record what they hold)
                status.assert_existing_objects_matched()
            # A multi-worker run's checkpoint also holds the preemption handler's counter,
            # restored when the handler is made.
            status.expect_partial()
            self.log(f"Resumed from {latest} at step {self.step}")
        return self.step

    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> list[dict]:
        """Trains to train_steps (or an early stop, or a signal); returns the history."""
        self.run_dir.take_lock()
        try:
            return self._train()
        finally:
            self.run_dir.lock.release()

    def _train(self) -> list[dict]:
        c = self.config
        self.stopped_by = ""
        self.restore()
        if self._eval_missed_at_restore():
            # A checkpoint saved before its step's evaluation (a signal interrupted it, or older
            # t5core saved first and its run was killed before evaluating): evaluate now.
            self._evaluate(self.step)
        if self.step >= c.train_steps:
            self.log(f"Already trained {self.step} >= {c.train_steps} steps; nothing to do.")
            # A run killed between its last save and results.json left none, or an earlier
            # attempt's (which may say it was stopped): the finished run's is written then.
            if self._results_outdated():
                self._write_results(stopped=False)
            return self.history
        decoder = not self.encoder_only
        tokens_per_step = c.batch_size * (c.inputs_length + (c.targets_length if decoder else 0))
        flops = training_flops(self.model.config, c.batch_size, c.inputs_length, c.targets_length,
                               decoder=decoder)
        peak = resolve_peak_flops(
            c.peak_flops, tf.bfloat16 if c.precision == "mixed_bfloat16" else tf.float32, self.log)
        if peak:
            peak *= accelerators(self.strategy)
        bar = self.bar = _progress(c, self.step) if is_chief(self.strategy) else None
        with Preemption(self.strategy, self.manager, worker_info(self.strategy)[0],
                        save=self._save) as preemption:
            stopped = self._loop(preemption, bar, tokens_per_step, flops, peak)
        if bar is not None:
            bar.close()
        if not stopped:  # (a stopped run saved its step already)
            self._save(self.step)
        self._write_results(stopped)
        return self.history

    def _results_outdated(self) -> bool:
        try:
            results = file_reads.read_json(md.path(self.config.model_dir, md.RESULTS),
                                           ModelDirError)
        except (ModelDirError, UserFileNotFoundError):
            return True
        return not isinstance(results, dict) or results.get("step") != self.step \
            or "stopped_by" in results

    def _write_results(self, stopped: bool) -> None:
        """results.json (the chief's): the step reached, the last and best evaluations."""
        if not is_chief(self.strategy):
            return
        results = {"step": self.step, "eval": self.last_eval, "best": float(self.best.numpy()),
                   "best_checkpoint": md.recorded_path(self.best_manager.latest_checkpoint or "")
                   or None}
        if stopped:  # tells a supervisor (the sweep) that the run has not finished
            results["stopped_by"] = self.stopped_by
        md.write_json(md.path(self.config.model_dir, md.RESULTS), results)

    def _loop(self, preemption, bar, tokens_per_step, flops, peak) -> bool:
        """The steps; True when a signal stopped them (the step reached is saved)."""
        c = self.config
        window_start, window_steps = time.perf_counter(), 0
        skipped = 0  # consecutive steps skipped for a non-finite loss
        while self.step < c.train_steps:
            batch = next(self.train_iterator)
            sums = self.train_step(batch)
            step = self.step
            loss = float(sums["loss"])
            if math.isfinite(loss):
                skipped = 0
            else:
                skipped += 1
                latest = self.manager.latest_checkpoint or "none yet"
                if not c.skip_nonfinite:
                    raise NonFiniteLossError(
                        f"Step {step}: the loss is {loss}. Training stopped; the last good "
                        f"checkpoint ({latest}) is intact. Lower the learning rate, or pass "
                        "--skip_nonfinite to skip such steps.")
                if skipped >= c.max_nonfinite_skips:
                    raise NonFiniteLossError(
                        f"Step {step}: the loss was {loss} in {skipped} consecutive steps "
                        f"(--max_nonfinite_skips={c.max_nonfinite_skips}). Training stopped; the "
                        f"last good checkpoint ({latest}) is intact. Lower the learning rate.")
                self.log(f"Step {step}: non-finite loss, update skipped")
            window_steps += 1
            record = {"step": step, "loss": loss}
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if step % c.log_every == 0 or step == c.train_steps:
                elapsed = time.perf_counter() - window_start
                record.update(self._log_train(sums, loss, window_steps, elapsed,
                                              tokens_per_step, flops, peak))
                window_start, window_steps = time.perf_counter(), 0
            self._append_log(record)
            last = step >= c.train_steps
            paused_at = time.perf_counter()  # evaluation and saving are not training time
            # Evaluate before saving: a step's checkpoint then holds the best value and the
            # patience its evaluation left, so a resume from it goes on as the uninterrupted run.
            if self._evaluates_at(step):
                try:
                    stop_early = self._evaluate(step, preemption)
                except Interrupted as signal_name:
                    self._save(step)
                    self.stopped_by = str(signal_name)
                    self.log(f"Stopped by {self.stopped_by} while evaluating step {step}: saved "
                             f"{self.manager.latest_checkpoint}. Train again with the same "
                             f"model_dir to evaluate step {step} and resume from it.")
                    return True
                if stop_early and not last:
                    self.log(f"Early stopping at step {step}: {self.watched} did not improve in "
                             f"{c.early_stopping_patience} evaluations after the warm-up "
                             f"(best {float(self.best.numpy()):.4g})")
                    return False  # (the end saves this step)
            saved = bool(c.save_every and step % c.save_every == 0) and not last
            if saved:
                self._save(step)
            window_start += time.perf_counter() - paused_at
            # Every worker asks after every step but the last (the end saves that one anyway).
            if not last and preemption.stop_after(step, saved):
                self.stopped_by = preemption.signal_name or "the preemption of another worker"
                self.log(f"Stopped by {self.stopped_by} after step {step}: saved "
                         f"{self.manager.latest_checkpoint}. Train again with the same "
                         "model_dir to resume from this step.")
                return True
        return False

    def _save(self, step, manager=None):
        """Saves `step` once its weights are checked finite, so every checkpoint on disk is good."""
        manager = manager or self.manager
        broken = nonfinite_variables(self.model)
        if broken:
            raise NonFiniteWeightsError(
                f"Step {step}: the weights hold NaN or Inf ({', '.join(broken[:3])}"
                f"{' ...' if len(broken) > 3 else ''}); no checkpoint of them is written, the "
                f"last good checkpoint ({self.manager.latest_checkpoint or 'none yet'}) is "
                "intact. Lower the learning rate.")
        try:
            return manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as err:  # disk full, file too large, read-only
            raise file_writes.write_failed(
                md.path(manager.directory, f"{md.CHECKPOINT_PREFIX}-{step}"), err,
                f"the last complete checkpoint ({manager.latest_checkpoint or 'none yet'}) is "
                "intact: make room and run the same command again to resume from it") from None

    def _evaluates_at(self, step) -> bool:
        every = self.config.eval_every
        return bool(every and step % every == 0) or step >= self.config.train_steps

    def _eval_missed_at_restore(self) -> bool:
        step = self.step
        if not step or not self._evaluates_at(step):
            return False
        # The chief reads its log; every worker must agree, since evaluation is collective.
        missed = not is_chief(self.strategy) or not any(
            record.get("step") == step and any(k.startswith(md.EVAL_RECORD_PREFIX) for k in record)
            for record in train_log.read(self.run_dir.train_log))
        return all_workers_agree(self.strategy, missed)

    def _append_log(self, record):
        """Appends to train_log.jsonl (chief only); a resume appends again from its step, so a
        reader keeps each step's last record."""
        self.history.append(record)
        if is_chief(self.strategy):
            train_log.append(self.run_dir.train_log, record)

    def _log_train(self, sums, loss, steps, elapsed, tokens_per_step, flops, peak):
        seconds = elapsed / max(steps, 1)
        values = {
            "loss": loss,
            "token_accuracy": _percent(sums["correct"], sums["num_tokens"]),
            # Keras reads the schedule before counting the step: the rate update N used.
            "learning_rate": float(self.schedule(self.step - 1)),
            "gradient_norm": float(self.optimizer.gradient_norm.numpy()),
            "tokens_per_second": tokens_per_step / seconds,
            "seconds_per_step": seconds,
        }
        if peak:
            values["mfu"] = flops / seconds / peak
        if self.config.z_loss:
            values["z_loss"] = float(sums["z_loss"])
        with self.writer.as_default(step=self.step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        if self.bar is None:
            self.log(f"step {self.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
            self._explain(values)
        return values

    def _explain(self, names):
        """Logs, once each, what the figures named mean (see MEANINGS)."""
        meanings = {**MEANINGS, **(CLASSIFIER_MEANINGS if self.encoder_only else {})}
        new = [name for name in names if name in meanings and name not in self._explained]
        if new:
            self.log("  (" + "; ".join(f"{name}: {meanings[name]}" for name in new) + ")")
            self._explained.update(new)

    def evaluate(self) -> tuple[dict[str, float], list[str]]:
        """(results, sample lines): the validation loss and token accuracy over eval_steps
        batches, plus the evaluator's metrics and its sample predictions."""
        results = {}
        if self.eval_data is not None:
            totals = None
            for i, batch in enumerate(self.eval_data):
                if self.config.eval_steps and i >= self.config.eval_steps:
                    break
                sums = self.eval_step(batch)
                totals = sums if totals is None else {k: totals[k] + sums[k] for k in sums}
            if totals is not None:
                # The cross-entropy per target token (steps.EVAL_LOSS), so runs compare.
                n = max(float(totals["num_tokens"]), 1.0)
                results["eval_loss"] = float(totals["loss_sum"]) / n
                results["eval_token_accuracy"] = _percent(totals["correct"], totals["num_tokens"])
        samples = []
        if self.evaluator is not None:
            metrics, samples = self.evaluator(self.model)
            results.update(metrics)
        return results, samples

    def _best_key(self, results):
        """--best_metric, else the validation loss (decoded metrics often sit at 0 early, which
        would keep the worst checkpoint as best/), else the task's first metric."""
        if self.config.best_metric:
            if self.config.best_metric not in results:
                raise FlagError(f"--best_metric={self.config.best_metric} is not among the "
                                f"evaluation results {sorted(results)}")
            return self.config.best_metric
        if "eval_loss" in results:
            return "eval_loss"
        metric_keys = [k for k in results if not k.startswith("eval_")]
        return metric_keys[0] if metric_keys else sorted(results)[0]

    def _announce_watched(self, key) -> None:
        """Logs once which metric best/ and early stopping follow, and in which direction."""
        if key == self.watched:
            return
        self.watched = key
        c = self.config
        direction = "lower" if md.lower_is_better(key, c.best_metric_mode) else "higher"
        watched = f"{key} ({direction} is better)"
        before = self._recorded.get(WATCHED)
        if before not in (None, watched):
            # The restored best value and count measure another metric (or direction):
            # comparing them with this one's values would keep or stop on nonsense.
            self.best.assign(math.nan)
            self.evals_without_improvement.assign(0)
            self.log(f"Note: best/ followed the {before} until now; from here it follows the "
                     f"{watched}, and the best so far and early stopping's count start again")
        self._record(WATCHED, watched)
        line = f"best/ keeps the checkpoint of the best {watched}"
        if c.early_stopping_patience:
            line += (f"; early stopping after {c.early_stopping_patience} evaluations without "
                     f"improvement, counted from the end of the warm-up (step {self.warmup_steps})")
        self.log(line)

    def _evaluate(self, step, preemption=None) -> bool:
        """Evaluates, keeps the best checkpoint; returns True when early stopping should stop.
        With `preemption`, a signal abandons the evaluation (Interrupted) before it records
        anything."""
        with preemption.interruptible() if preemption else contextlib.nullcontext():
            results, samples = self.evaluate()
        if not results:
            return False
        with self.eval_writer.as_default(step=step):
            for name, value in results.items():
                tf.summary.scalar(name, value)
            if samples:
                tf.summary.text("predictions", "\n\n".join(samples[:8]))
        self.log(f"eval at step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))
        self._explain(results)
        for line in samples[:3]:
            self.log("  " + line)
        self._append_log({"step": step,
                          **{md.EVAL_RECORD_PREFIX + k: v for k, v in results.items()}})
        self.last_eval = results
        key = self._best_key(results)
        self._announce_watched(key)
        value = results[key]
        best = float(self.best.numpy())
        downwards = md.lower_is_better(key, self.config.best_metric_mode)
        improved = math.isnan(best) or (value < best if downwards else value > best)
        if improved:
            self.best.assign(value)
            self.evals_without_improvement.assign(0)
            self._save(step, self.best_manager)
        elif step > self.warmup_steps:  # the warm-up's evaluations say little: not counted
            self.evals_without_improvement.assign_add(1)
        patience = self.config.early_stopping_patience
        return bool(patience and int(self.evals_without_improvement.numpy()) >= patience)


def nonfinite_variables(model) -> list[str]:
    """The names of the model's floating-point variables that hold NaN or Inf."""
    return [v.path for v in model.variables if tf.as_dtype(v.dtype).is_floating
            and not bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))))]


def _percent(correct, total) -> float:
    """Token accuracy in percent, the unit of every accuracy t5core reports (as T5's metrics)."""
    return 100.0 * float(correct) / max(float(total), 1.0)


def _progress(config, start):
    # A bar redraws one line; in a log file or a CI console it would be one endless line.
    if not config.progress_bar or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.train_steps, initial=start, unit="step", dynamic_ncols=True,
                desc="train")
