"""The model directory: the names of what a training run writes there, the rules for reading it,
and the trainer's opening of it (`open_run`: lock, repairs, checks). Its layout:
docs/architecture.md, "The model directory"."""

from __future__ import annotations

import dataclasses
import math
import os
import re

import numpy as np
import tensorflow as tf

from t5core import file_reads, file_writes
from t5core.config import T5Config
from t5core.errors import ModelDirError, json_kind
from t5core.locking import DirectoryLock, describe
from t5core.training import train_log
from t5core.training.distribute import all_workers_agree, is_chief, worker_info

CONFIG = "config.json"
RUN = "run.json"
TRAIN_LOG = "train_log.jsonl"
RESULTS = "results.json"
BEST = "best"
LOCK = "LOCK"
TRAIN_EVENTS = "train"
EVAL_EVENTS = "eval"
SENTENCEPIECE_VOCAB = "spiece.model"
HF_TOKENIZER = "tokenizer.json"
# TensorFlow's names: CheckpointManager's state file, and its checkpoints' prefix (ckpt-N.index...).
CHECKPOINT_STATE = "checkpoint"
CHECKPOINT_PREFIX = "ckpt"
EVAL_RECORD_PREFIX = "eval/"  # train_log.jsonl: the keys of an evaluation's metrics
TRIAL_LOG = "train.log"  # a sweep trial's stdout and stderr
HPARAMS_MARKER = "hparams_session.done"  # the sweep has written this trial's HParams session
# What an output folder of convert_checkpoint (HF safetensors or a TF checkpoint, config, run.json,
# tokenizer files) or of export (a SavedModel) may hold, as glob patterns: --overwrite removes
# these names, and only these, from the previous output. ".*.tmp" are file_writes' temp files,
# INCOMPLETE its marker of an interrupted replacement.
CONVERTED_OUTPUT_NAMES = (
    CONFIG, RUN, SENTENCEPIECE_VOCAB, HF_TOKENIZER, "model.safetensors", "model-*-of-*.safetensors",
    "model.safetensors.index.json", "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json", "added_tokens.json", "checkpoint", "ckpt-*", ".*.tmp",
    file_writes.INCOMPLETE)
SAVED_MODEL_NAMES = ("saved_model.pb", "saved_model.pbtxt", "variables", "assets", "fingerprint.pb",
                     "keras_metadata.pb", ".*.tmp", file_writes.INCOMPLETE)
# TensorFlow saves checkpoint <prefix> into the directory <prefix>_temp, then moves the files out
# and deletes it; a save killed half-way leaves it behind.
_TEMP_CHECKPOINT_DIR = re.compile(re.escape(CHECKPOINT_PREFIX) + r"-\d+_temp")


def path(model_dir: str, name: str) -> str:
    """`model_dir/name` for one of this module's names."""
    return os.path.join(os.fspath(model_dir), name)


def worker_dir(model_dir: str, worker_index: int) -> str:
    """Where a non-chief worker of a multi-worker run writes its (discarded) checkpoints."""
    return path(model_dir, f"worker_{worker_index}_tmp")


# A run's model: text-to-text (T5Model), or the encoder with a pooled linear classifier.
HEADS = ("seq2seq", "classifier")
# How a metric's best value is chosen: by its name (see lower_is_better), the lowest, the highest.
METRIC_MODES = ("auto", "min", "max")


def lower_is_better(metric: str, mode: str = "auto") -> bool:
    """Whether a smaller `metric` is better: "min"/"max" decide; "auto" treats loss-named
    metrics (eval_loss, loss, z_loss) as improving downwards, every other upwards."""
    if mode != "auto":
        return mode == "min"
    return "loss" in metric


@dataclasses.dataclass(frozen=True)
class RunDescription:
    """What, besides the config, rebuilds and uses a run's model: `run.json` beside `config.json`,
    read by `load_pretrained`, the trainer and every script, so no run flag is typed again."""
    model_class: str = "T5Model"  # T5Model, T5EncoderClassifier or PromptTunedT5
    # A file name inside the model_dir (spiece.model, tokenizer.json), "byte", or "" (not known).
    tokenizer: str = "byte"
    precision: str = "float32"
    head: str = "seq2seq"  # one of HEADS
    labels: tuple[str, ...] = ()  # classifier classes / rank-classification words, in id order
    pooling: str = "mean"  # classifier pooling
    peft: str = "none"
    peft_top_n: int = 1
    prompt_length: int = 0
    prompt_init: str = "vocab"
    lora_rank: int = 0
    lora_alpha: float = 0.0  # 0: alpha = rank
    lora_targets: str = ""
    # How the run turned rows into text (template, fields, lengths, metrics), so evaluation can
    # read a test file the same way: the trainer's data options by flag name.
    data: dict = dataclasses.field(default_factory=dict)
    # {flag: {"path", "size", "mtime", "ends_sha256"}} of the data files, so that a resume
    # notices changed data (t5core.data.fingerprint).
    data_files: dict = dataclasses.field(default_factory=dict)
    version: int = 1

    def to_json(self) -> dict:
        value = dataclasses.asdict(self)
        value["labels"] = list(self.labels)
        return value

    @classmethod
    def from_json(cls, value: dict, source: str = RUN) -> "RunDescription":
        if not isinstance(value, dict):
            raise ModelDirError(f"{source}: expected a JSON object, got {type(value).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ModelDirError(f"{source}: unknown field(s) {unknown}; a newer t5core wrote it?")
        fields = dict(value)
        for name, given in fields.items():
            problem = _run_field_problem(known[name], given)
            if problem:
                raise ModelDirError(f"{source}: field {name!r} must be {problem}, not "
                                    f"{json_kind(given)}")
        if "labels" in fields:
            fields["labels"] = tuple(fields["labels"])
        return cls(**fields)


def _run_field_problem(field: dataclasses.Field, value) -> str | None:
    """What a run.json field must be, when `value` is not that (from the field's default)."""
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING \
        else field.default
    if isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
        return None if ok else "a list of strings"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        # Sizes: each allocates (lora_rank, prompt_length...); the loaders hold them against the
        # checkpoint's tensors (t5core.file_reads.check_model_fits_checkpoint).
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "a whole number >= 0"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) and value >= 0
        return None if ok else "a finite number >= 0"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "an object"
    return None


def write_json(file_path: str, value) -> None:
    """Writes `value` as strict JSON through a temporary file and a rename, so readers never see
    half a file (local or gs://), and a link at `file_path` is refused (`file_writes`). Text stays
    as written (UTF-8, not \\u escapes): a Chinese path or label reads as itself."""
    file_writes.write_json(file_path, value, indent=2, ensure_ascii=False)


def recorded_path(location: str) -> str:
    """How a run directory records a path it was given (a data file, a folder, a checkpoint):
    a local one absolute, so that it names the same file for a program started from any working
    directory; "" and remote (gs://) paths as they are."""
    if not location or file_writes.is_remote(location):
        return location
    return os.path.abspath(location)


def write_run(model_dir: str, run: RunDescription) -> None:
    """Writes `run.json` atomically (a temporary file, then a rename)."""
    write_json(path(model_dir, RUN), run.to_json())


def _exists(location: str) -> bool:
    return tf.io.gfile.exists(location) or tf.io.gfile.exists(location + ".index")


def root(location: str) -> str:
    """The model directory of `location`: itself, its `best/`, a `ckpt-N` prefix or `.index`."""
    directory = os.path.normpath(os.fspath(location))
    if not tf.io.gfile.isdir(directory):
        directory = os.path.dirname(directory)
    if os.path.basename(directory) == BEST:
        directory = os.path.dirname(directory)
    return directory


def _read_json(file_path: str):
    return file_reads.read_json(file_path, ModelDirError)


def _file_in(location: str, name: str) -> str | None:
    """The path of `name` in the model directory of `location` (see `root`), if it is there."""
    if not _exists(os.fspath(location)):
        return None
    file_path = path(root(location), name)
    return file_path if file_reads.present(file_path) else None


def read_run(model_dir: str, data_problems=None) -> RunDescription | None:
    """The run description of a model directory (its `best/`, a checkpoint in it), or None.
    `data_problems(run.data)`: lines on what is wrong in its data options, raised as a
    ModelDirError naming the file."""
    run_path = _file_in(model_dir, RUN)
    run = run_path and RunDescription.from_json(_read_json(run_path), source=run_path)
    problems = data_problems(run.data) if run and data_problems is not None else []
    if problems:
        raise ModelDirError(f"{run_path}: {'; '.join(problems)}")
    return run


def read_config(model_dir: str):
    """The T5Config (`config.json`) of a model directory (or its `best/`), or None."""
    config_path = _file_in(model_dir, CONFIG)
    return config_path and T5Config.from_json(config_path)


def find_tokenizer(location: str) -> str | None:
    """The tokenizer of a checkpoint: a vocabulary path, "byte", or None.

    A model directory names its own (run.json's `tokenizer`); any other directory is searched
    for `spiece.model`, then `tokenizer.json`, then an HF `tokenizer_class` of ByT5Tokenizer
    ("byte").
    """
    location = os.fspath(location)
    if not _exists(location):
        return None  # a preset name, not a path
    run = read_run(location)
    if run is not None:
        run_path = path(root(location), RUN)
        if run.tokenizer in ("byte", ""):
            return run.tokenizer or None
        # A name read from run.json: it must stay inside the model_dir, links resolved.
        candidate = file_reads.resolve_inside(
            root(location), run.tokenizer, run_path, error=ModelDirError, unsafe=ModelDirError,
            what="tokenizer file", kind="the model_dir")
        if not tf.io.gfile.exists(candidate):
            raise ModelDirError(f"{run_path} names the tokenizer {run.tokenizer!r}, but "
                                f"{candidate} does not exist")
        return candidate
    directory = location if tf.io.gfile.isdir(location) else os.path.dirname(location)
    # (An older model directory, without run.json, holds no vocabulary either: None.)
    return find_tokenizer_file(directory) or ("byte" if _names_byt5_tokenizer(directory) else None)


def _names_byt5_tokenizer(directory: str) -> bool:
    """Whether an HF snapshot is byte-level: ByT5 has no vocabulary file, only its
    `tokenizer_class` in tokenizer_config.json (t5core's HF export too) or config.json."""
    for name in ("tokenizer_config.json", CONFIG):
        candidate = path(directory, name)
        if tf.io.gfile.exists(candidate):
            # Numbers as text: only tokenizer_class is read, and transformers writes an unlimited
            # model_max_length as int(1e30), past the integers t5core reads as numbers.
            value = file_reads.read_json(candidate, ModelDirError, parse_int=str)
            if isinstance(value, dict) and value.get("tokenizer_class") == "ByT5Tokenizer":
                return True
    return False


def find_tokenizer_file(directory: str) -> str | None:
    """The tokenizer file of a model directory: spiece.model, else tokenizer.json, else None."""
    for name in (SENTENCEPIECE_VOCAB, HF_TOKENIZER):
        candidate = path(directory, name)
        if file_reads.present(candidate):
            return candidate
    return None


def tokenizer_file_name(vocab: str) -> str:
    """The name a vocabulary file takes inside a model directory."""
    return HF_TOKENIZER if os.fspath(vocab).endswith(".json") else SENTENCEPIECE_VOCAB


def copy_tokenizer(model_dir: str, vocab: str, replace: bool = False) -> str:
    """Copies `vocab` into `model_dir`; returns run.json's `tokenizer` value ("byte" and ""
    stay). A different file of that name there is a ModelDirError unless `replace`."""
    if vocab in ("", "byte"):
        return vocab
    name = tokenizer_file_name(vocab)
    target = path(model_dir, name)
    content = file_reads.read_bytes(vocab, ModelDirError)
    if tf.io.gfile.exists(target) and not replace:
        if file_reads.read_bytes(target, ModelDirError) == content:
            return name
        raise ModelDirError(f"{model_dir} was trained with another tokenizer ({target} differs "
                            f"from {vocab}); use a new model directory, or the same vocabulary "
                            "to resume")
    file_writes.write_bytes(target, content)
    return name


def check_checkpoint_state(directory: str) -> None:
    """Refuses a `checkpoint` state file naming anything but `ckpt-N` prefixes inside `directory`:
    TensorFlow's CheckpointManager resumes from and prunes (deletes) what it names."""
    for prefix in file_reads.checkpoint_state_paths(directory):
        if not re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"-\d+", os.path.basename(prefix)):
            raise ModelDirError(
                f"{path(directory, CHECKPOINT_STATE)} names the checkpoint "
                f"{os.path.basename(prefix)!r}, which is not a {CHECKPOINT_PREFIX}-N checkpoint of "
                f"{directory}; t5core neither resumes from nor deletes it. Remove that line, or "
                "the file, if the directory is yours.")


def checkpoint_manager(checkpoint, directory: str, max_to_keep: int):
    """A CheckpointManager of `directory` whose pruning deletes only the trainer's checkpoints."""
    check_checkpoint_state(directory)
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep,
                                      checkpoint_name=CHECKPOINT_PREFIX)


def remove_orphaned_temp_dirs(directory: str) -> list[str]:
    """Deletes killed saves' `ckpt-N_temp` dirs here and in `best/` (lock held); returns them."""
    removed = []
    for folder in (directory, path(directory, BEST)):
        if not tf.io.gfile.isdir(folder):
            continue
        for name in tf.io.gfile.listdir(folder):
            name = name.rstrip("/")
            candidate = os.path.join(folder, name)
            if _TEMP_CHECKPOINT_DIR.fullmatch(name) and tf.io.gfile.isdir(candidate):
                file_writes.remove(candidate, inside=folder)
                removed.append(candidate)
    return removed


# The config fields that decide the shapes of the variables a checkpoint holds.
# Every other config field changes what the checkpoint's weights compute, so a resume must keep
# it: dropout is a resume setting (`check_resume_settings`), the initializer acts before step 1.
_FREE_CONFIG_KEYS = ("dropout_rate", "initializer_factor")
# The run description fields that decide which variables a checkpoint holds beyond a T5's.
_STRUCTURE_KEYS = ("model_class", "labels", "prompt_length", "lora_rank", "lora_targets")


class ModelDirMismatchError(ModelDirError):
    """--model_dir holds checkpoints of a different model, or of a run with other settings."""


# A trainer checkpoint keeps, under this name, the settings its training went by (a JSON object
# by flag name): a resume continues that run exactly or is refused (`check_resume_settings`).
TRAINING_SETTINGS = "settings"
# Older checkpoints kept only the batch size their data position counts in.
_LEGACY_BATCH_SIZE = "data_batch_size"


def saved_settings(checkpoint_path: str) -> dict | None:
    """The settings, by flag name, that the trainer checkpoint `checkpoint_path` was trained
    with: {} when it records none (an older trainer's), None when it holds no training state
    at all (weights only, as convert_checkpoint writes)."""
    file_reads.check_tf_index(checkpoint_path, ModelDirError)
    reader = tf.train.load_checkpoint(checkpoint_path)
    if not any(key.startswith("optimizer/") for key in reader.get_variable_to_shape_map()):
        return None
    key = f"{TRAINING_SETTINGS}/.ATTRIBUTES/VARIABLE_VALUE"
    if reader.has_tensor(key):
        text = reader.get_tensor(key)
        value = file_reads.parse_json(text, f"{checkpoint_path}: its {TRAINING_SETTINGS!r}",
                                      ModelDirError) if isinstance(text, bytes) else None
        if not isinstance(value, dict):
            raise ModelDirError(f"{checkpoint_path}: its {TRAINING_SETTINGS!r} is not a JSON "
                                "object of training settings")
        return value
    legacy = f"{_LEGACY_BATCH_SIZE}/.ATTRIBUTES/VARIABLE_VALUE"
    if not reader.has_tensor(legacy):
        return {}
    batch_size = reader.get_tensor(legacy)
    if np.shape(batch_size) != () or not np.issubdtype(np.asarray(batch_size).dtype, np.integer):
        raise ModelDirError(f"{checkpoint_path}: its {_LEGACY_BATCH_SIZE!r} is not a batch size "
                            f"(a {np.asarray(batch_size).dtype} of shape {np.shape(batch_size)})")
    return {"batch_size": int(batch_size)}


def check_resume_settings(model_dir: str, settings: dict) -> None:
    """Refuses to resume `model_dir`'s latest checkpoint with other `settings` (by flag name), or
    one without training state.

    A resume must reach what the uninterrupted run would have: every setting the checkpoint
    recorded must be the same now, or the resume is refused before any step, naming the flags.
    """
    latest = file_reads.latest_checkpoint(model_dir) if tf.io.gfile.isdir(model_dir) else None
    if not latest:
        return
    saved = saved_settings(latest)
    if saved is None:
        raise ModelDirMismatchError(
            f"{model_dir}: its checkpoint {os.path.basename(latest)} holds weights only (as "
            "convert_checkpoint writes), no training state to resume; train from it with "
            f"--init_checkpoint={model_dir} and a new --model_dir")
    changed = [name for name in settings if name in saved and saved[name] != settings[name]]
    if changed:
        then = " ".join(f"--{name}={saved[name]}" for name in changed)
        now = " ".join(f"--{name}={settings[name]}" for name in changed)
        raise ModelDirMismatchError(
            f"{model_dir}: its checkpoint {os.path.basename(latest)} was trained with {then}, "
            f"not {now}; a resume goes on exactly as that run would have, or not at all. Resume "
            f"with {then}, or use a new --model_dir (--init_checkpoint={model_dir} starts there "
            "from its weights).")


def holds_checkpoints(model_dir: str) -> bool:
    """Whether `model_dir` or its `best/` holds a checkpoint (which binds it to one model)."""
    return tf.io.gfile.exists(model_dir) and any(
        tf.train.latest_checkpoint(d) for d in (model_dir, path(model_dir, BEST)))


def bind(model_dir: str, config, run: RunDescription, settings: dict | None = None) -> None:
    """Writes `config.json`, `run.json` and the vocabulary into `model_dir`.

    Raises:
      ModelDirError: its checkpoints belong to another config, structure or vocabulary, or
        (`settings`, by flag name) to a run with other settings.
    """
    # Only checkpoints bind a model_dir to a model: a run that ended before its first one (a
    # crash, a mistake in its flags) leaves config.json and run.json that a retry replaces.
    bound = holds_checkpoints(model_dir)
    saved_config = read_config(model_dir) if bound else None
    saved_run = read_run(model_dir) if saved_config is not None else None
    if saved_config is not None:
        legacy = saved_run is None  # from before run.json: it says only that it holds a T5Model
        saved_run = saved_run or RunDescription()
        diff = [f"{k}: saved {getattr(saved_config, k)!r}, now {getattr(config, k)!r}"
                for k in (f.name for f in dataclasses.fields(config))
                if k not in _FREE_CONFIG_KEYS and getattr(saved_config, k) != getattr(config, k)]
        keys = ("model_class",) if legacy else _STRUCTURE_KEYS
        if run.model_class != "T5EncoderClassifier":
            keys = [k for k in keys if k != "labels"]  # a seq2seq run's labels are only words
        diff += [f"{k}: saved {getattr(saved_run, k)!r}, now {getattr(run, k)!r}"
                 for k in keys if getattr(saved_run, k) != getattr(run, k)]
        if not legacy and saved_run.tokenizer and run.tokenizer and \
                (saved_run.tokenizer == "byte") != (run.tokenizer == "byte"):
            diff.append(f"tokenizer: saved {saved_run.tokenizer}, now {run.tokenizer}")
        if diff:
            raise ModelDirMismatchError(
                f"{model_dir} holds checkpoints of another model ({'; '.join(diff)}). Use a new "
                "--model_dir, or the same model settings to resume.")
        if settings is not None:  # a trainer's: it resumes from the checkpoint
            check_resume_settings(model_dir, settings)
    elif tf.io.gfile.exists(model_dir) and file_reads.latest_checkpoint(model_dir):
        raise ModelDirMismatchError(f"{model_dir} holds checkpoints but no {CONFIG}: "
                                    "not a t5core model_dir; use a new --model_dir")
    file_writes.make_dirs(model_dir)
    if not run.tokenizer and saved_run is not None:  # not told: the tokenizer in place stays
        run = dataclasses.replace(run, tokenizer=saved_run.tokenizer)
    else:
        run = dataclasses.replace(run, tokenizer=copy_tokenizer(model_dir, run.tokenizer,
                                                                replace=not bound))
    config.to_json(path(model_dir, CONFIG))
    write_run(model_dir, run)


class RunDirectory:
    """A model_dir a trainer writes (see `open_run`). Only the chief writes; workers act on what
    it found instead of waiting in a collective for a chief that gave up.

    Attributes:
      directory: where this worker's checkpoints go (a non-chief worker's are discarded).
      train_log: the path of `train_log.jsonl`.
      lock: the chief's `DirectoryLock` of `LOCK`.
    """

    def __init__(self, model_dir: str, strategy, log=print):
        self.model_dir = model_dir
        self.strategy = strategy
        self.log = log
        self.chief = is_chief(strategy)
        self.directory = model_dir if self.chief else worker_dir(model_dir,
                                                                  worker_info(strategy)[1])
        self.train_log = path(model_dir, TRAIN_LOG)
        self.lock = DirectoryLock(model_dir, LOCK, ModelDirError,
                                  hint="wait for it to end, or use another --model_dir")

    def agree_on(self, action, refusal: str, everyone: bool = False) -> None:
        """Runs `action` on the chief alone (on every worker with `everyone`); a ModelDirError
        there stops every worker (the others with `refusal`)."""
        refused = None
        if self.chief or everyone:
            try:
                action()
            except ModelDirError as err:
                refused = err
        if not all_workers_agree(self.strategy, refused is None):
            raise refused or ModelDirError(f"{self.model_dir}: {refusal}")

    def take_lock(self) -> None:
        """Takes the lock (chief), saying so when it takes over a killed holder's."""
        def lock():
            previous = self.lock.acquire()
            if previous:
                self.log(f"Took over the lock of {self.model_dir} from {describe(previous)}, "
                         "which ended without releasing it (killed)")
            if self.lock.skipped:
                self.log(f"Warning: {self.lock.skipped}; make sure only one run writes it")

        self.agree_on(lock, "in use by another run: the chief worker could not lock it (its "
                            "message names the holder)")

    def bind(self, config, run: RunDescription, checkpoint, best_checkpoint, keep: int,
             settings: dict | None = None):
        """`bind` (with `settings`) on the chief, then each worker's `checkpoint_manager`s; all
        stop if one refuses.

        Returns:
          (the manager of `checkpoint`, keeping `keep`; that of `best_checkpoint` in best/).
        """
        self.agree_on(lambda: bind(self.model_dir, config, run, settings),
                      "the chief worker refused it (its message says why)")
        managers = []
        self.agree_on(lambda: managers.extend((
            checkpoint_manager(checkpoint, self.directory, keep),
            checkpoint_manager(best_checkpoint, path(self.directory, BEST), 1))),
            "another worker refused its checkpoint state file (its message says why)",
            everyone=True)
        return managers


def open_run(model_dir: str, strategy, log=print) -> RunDirectory:
    """Opens `model_dir` for a trainer: lock taken, killed saves' temp folders removed, log mended.

    Returns:
      The `RunDirectory`; `bind` it once the model is built.
    """
    run_dir = RunDirectory(model_dir, strategy, log)
    run_dir.take_lock()
    try:
        for folder in (run_dir.directory, path(run_dir.directory, BEST),
                       path(model_dir, TRAIN_EVENTS), path(model_dir, EVAL_EVENTS)):
            file_writes.check_folder_inside(folder, model_dir)
        for stale in remove_orphaned_temp_dirs(run_dir.directory):
            log(f"Removed {stale}, left by a checkpoint save that was killed")
        if run_dir.chief:
            repaired = train_log.repair(run_dir.train_log)
            if repaired:
                log(repaired)
    except BaseException:
        run_dir.lock.release(undo=True)  # a refusal takes nothing (as in Trainer)
        raise
    return run_dir
