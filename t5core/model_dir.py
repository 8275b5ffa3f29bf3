"""The model directory: the names of what a training run writes there, and the rules for reading.

One contract for the trainer that writes a model directory and for everyone who reads one (the
loaders, the scripts, the sweep). Every file name lives here; no other module spells one out.

    <model_dir>/
      config.json          the model config, HF `config.json` field names
      run.json             how the run was set up: tokenizer, head, PEFT method, precision
      spiece.model | tokenizer.json   the run's tokenizer, copied in (absent for byte-level)
      checkpoint, ckpt-N.*  training checkpoints (weights, optimizer, data position): TensorFlow's
                           state file and checkpoint prefix (`tf.train.CheckpointManager`)
      best/                the checkpoint with the best evaluation so far (same layout)
      train_log.jsonl      one JSON record per step and per evaluation, appended; an evaluation's
                           metrics under "eval/<metric>"
      results.json         the final step, last evaluation and best checkpoint; with
                           "stopped_by" when a signal stopped the run before its end (the sweep
                           reads it)
      train/, eval/        TensorBoard event files
      LOCK                 held by the one trainer writing here
      worker_N_tmp/        a non-chief worker's checkpoints in a multi-worker run
      train.log, hparams_session.done   a sweep trial's output and its HParams-written marker

`read_config`, `read_run` and `find_tokenizer`
take the directory, its `best/`, or a checkpoint in either (see `root`). The trainer writes the
first three entries (t5core.training.trainer.check_model_dir, with `write_run` and
`copy_tokenizer`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re

import tensorflow as tf

from t5core import file_reads, file_writes
from t5core.config import T5Config
from t5core.errors import ModelDirError, json_kind

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
# these names, and only these, from the previous output. ".*.tmp" are file_writes' temp files.
CONVERTED_OUTPUT_NAMES = (
    CONFIG, RUN, SENTENCEPIECE_VOCAB, HF_TOKENIZER, "model.safetensors", "model-*-of-*.safetensors",
    "model.safetensors.index.json", "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json", "added_tokens.json", "checkpoint", "ckpt-*", ".*.tmp")
SAVED_MODEL_NAMES = ("saved_model.pb", "saved_model.pbtxt", "variables", "assets", "fingerprint.pb",
                     "keras_metadata.pb", ".*.tmp")
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
    """Whether a smaller value of `metric` is an improvement.

    mode "min" or "max" decides; "auto" treats every metric named like a loss (eval_loss,
    loss, z_loss) as improving downwards and every other metric (accuracy, bleu, f1, ...) upwards.
    """
    if mode not in METRIC_MODES:
        raise ValueError(f"metric mode must be one of {', '.join(METRIC_MODES)} (got {mode!r})")
    if mode != "auto":
        return mode == "min"
    return "loss" in metric


@dataclasses.dataclass(frozen=True)
class RunDescription:
    """What, besides the model config, a consumer needs to rebuild and use a run's model.

    Written by the trainer as `run.json` beside `config.json`; read by `load_pretrained`, the
    trainer (`--init_checkpoint`, `--model`, a resume) and every script, so no flag of the run
    has to be typed again.
    """
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
    """Writes `value` as JSON through a temporary file and a rename, so readers never see half a
    file (local or gs://), and a link at `file_path` is refused (`file_writes`)."""
    file_writes.write_text(file_path, json.dumps(value, indent=2))


def write_run(model_dir: str, run: RunDescription) -> None:
    """Writes `run.json` atomically (a temporary file, then a rename)."""
    write_json(path(model_dir, RUN), run.to_json())


def _exists(location: str) -> bool:
    return tf.io.gfile.exists(location) or tf.io.gfile.exists(location + ".index")


def root(location: str) -> str:
    """The model directory that `location` belongs to.

    `location` may be the model directory itself, its `best/`, a checkpoint prefix inside either
    (`runs/x/ckpt-40`, `runs/x/best/ckpt-20`) or such a prefix's `.index` file.
    """
    directory = os.path.normpath(os.fspath(location))
    if not tf.io.gfile.isdir(directory):
        directory = os.path.dirname(directory)
    if os.path.basename(directory) == BEST:
        directory = os.path.dirname(directory)
    return directory


def _read_json(file_path: str):
    with tf.io.gfile.GFile(file_path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise ModelDirError(f"{file_path}: not valid JSON ({err})") from None
    except (ValueError, RecursionError) as err:  # not UTF-8, too deep, too many digits
        raise ModelDirError(f"{file_path}: not valid JSON ({file_reads.shown(str(err))})") \
            from None


def read_run(model_dir: str) -> RunDescription | None:
    """The run description of a model directory (or of its `best/` or a checkpoint in it), or
    None if it has none."""
    if not _exists(os.fspath(model_dir)):
        return None
    directory = root(model_dir)
    run_path = path(directory, RUN)
    if tf.io.gfile.exists(run_path):
        return RunDescription.from_json(_read_json(run_path), source=run_path)
    return None


def read_config(model_dir: str):
    """The T5Config of a model directory (or of its `best/`), or None if it holds none.

    Reads `config.json` (HF field names).
    """
    if not _exists(os.fspath(model_dir)):
        return None
    directory = root(model_dir)
    config_path = path(directory, CONFIG)
    if tf.io.gfile.exists(config_path):
        return T5Config.from_json(config_path)
    return None


def find_tokenizer(location: str) -> str | None:
    """The tokenizer that goes with a checkpoint: a vocabulary file path, "byte", or None.

    A t5core model directory names its own (run.json's `tokenizer`: a copied file, or "byte").
    Any other directory (an HF snapshot, a converted checkpoint), or the directory of a
    checkpoint file or prefix, is searched for `spiece.model`, then `tokenizer.json`.
    """
    location = os.fspath(location)
    if not _exists(location):
        return None  # a preset name, not a path
    run_path = path(root(location), RUN)
    if tf.io.gfile.exists(run_path):
        run = read_run(location)
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
    return find_tokenizer_file(directory)


def find_tokenizer_file(directory: str) -> str | None:
    """The tokenizer file of a model directory: spiece.model, else tokenizer.json, else None."""
    for name in (SENTENCEPIECE_VOCAB, HF_TOKENIZER):
        candidate = path(directory, name)
        if tf.io.gfile.exists(candidate):
            return candidate
    return None


def tokenizer_file_name(vocab: str) -> str:
    """The name a vocabulary file takes inside a model directory."""
    return HF_TOKENIZER if os.fspath(vocab).endswith(".json") else SENTENCEPIECE_VOCAB


def copy_tokenizer(model_dir: str, vocab: str, replace: bool = False) -> str:
    """Copies the vocabulary file `vocab` into `model_dir`; returns run.json's `tokenizer` value.

    "byte" stays "byte" (the byte-level vocabulary needs no file) and "" (not known) stays "". A
    model directory that already holds a different file of that name belongs to another run:
    ModelDirError, unless `replace` (a model_dir without checkpoints, which binds it to nothing).
    """
    if vocab in ("", "byte"):
        return vocab
    name = tokenizer_file_name(vocab)
    target = path(model_dir, name)
    with tf.io.gfile.GFile(vocab, "rb") as f:
        content = f.read()
    if tf.io.gfile.exists(target) and not replace:
        with tf.io.gfile.GFile(target, "rb") as f:
            if f.read() == content:
                return name
        raise ModelDirError(f"{model_dir} was trained with another tokenizer ({target} differs "
                            f"from {vocab}); use a new model directory, or the same vocabulary "
                            "to resume")
    file_writes.write_bytes(target, content)
    return name


def check_checkpoint_state(directory: str) -> None:
    """Refuses a TensorFlow `checkpoint` state file that names a checkpoint t5core did not write.

    The state file is untrusted: TensorFlow's CheckpointManager resumes from the checkpoints it
    names and, pruning, deletes them. `file_reads.checkpoint_state_paths` keeps each inside
    `directory`; here each must also be a `ckpt-N` prefix, so pruning deletes only the trainer's
    own files.
    """
    for prefix in file_reads.checkpoint_state_paths(directory):
        if not re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"-\d+", os.path.basename(prefix)):
            raise ModelDirError(
                f"{path(directory, CHECKPOINT_STATE)} names the checkpoint "
                f"{os.path.basename(prefix)!r}, which is not a {CHECKPOINT_PREFIX}-N checkpoint of "
                f"{directory}; t5core neither resumes from nor deletes it. Remove that line, or "
                "the file, if the directory is yours.")


def remove_orphaned_temp_dirs(directory: str) -> list[str]:
    """Deletes the `ckpt-N_temp` directories of killed saves in `directory` and its `best/`.

    Call it only while no save can be running there (the trainer holds the model_dir lock).
    Nothing but directories of exactly that name is touched. Returns the paths removed.
    """
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
