"""The model directory: the names of what a training run writes there, and the rules for reading.

One contract for the trainer that writes a model directory and for everyone who reads one (the
loaders, the scripts, the sweep). Every file name lives here; no other module spells one out.

    <model_dir>/
      config.json          the model config, HF `config.json` field names
      run.json             how the run was set up: tokenizer, head, PEFT method, precision
      spiece.model | tokenizer.json   the run's tokenizer, copied in (absent for byte-level)
      checkpoint, ckpt-N.*  training checkpoints (weights, optimizer, data position)
      best/                the checkpoint with the best evaluation so far
      train_log.jsonl      one JSON record per step and per evaluation, appended
      results.json         the final step, last evaluation and best checkpoint
      train/, eval/        TensorBoard event files
      LOCK                 held by the one trainer writing here

Older model directories hold `model_config.json` ({"config": ..., "model_class": ...}) instead of
`config.json` and `run.json`; readers accept both.
"""

from __future__ import annotations

import dataclasses
import json
import os

from t5core.errors import ModelDirError

CONFIG = "config.json"
RUN = "run.json"
LEGACY_MODEL_CONFIG = "model_config.json"
TRAIN_LOG = "train_log.jsonl"
RESULTS = "results.json"
BEST = "best"
LOCK = "LOCK"
TRAIN_EVENTS = "train"
EVAL_EVENTS = "eval"
SENTENCEPIECE_VOCAB = "spiece.model"
HF_TOKENIZER = "tokenizer.json"


def path(model_dir: str, name: str) -> str:
    """`model_dir/name` for one of this module's names."""
    return os.path.join(os.fspath(model_dir), name)


def lower_is_better(metric: str, mode: str = "auto") -> bool:
    """Whether a smaller value of `metric` is an improvement.

    mode "min" or "max" decides; "auto" treats every metric named like a loss (eval_loss,
    loss, z_loss) as improving downwards and every other metric (accuracy, bleu, f1, ...) upwards.
    """
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"metric mode must be auto, min or max (got {mode!r})")
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
    tokenizer: str = "byte"  # a file name inside the model_dir (spiece.model, tokenizer.json) or "byte"
    precision: str = "float32"
    head: str = "seq2seq"  # seq2seq or classifier
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
        if "labels" in fields:
            if not (isinstance(fields["labels"], list)
                    and all(isinstance(x, str) for x in fields["labels"])):
                raise ModelDirError(f"{source}: field 'labels' must be a list of strings")
            fields["labels"] = tuple(fields["labels"])
        return cls(**fields)


def write_run(model_dir: str, run: RunDescription) -> None:
    """Writes `run.json` atomically (a temporary file, then a rename)."""
    import tensorflow as tf

    target = path(model_dir, RUN)
    tmp = target + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(run.to_json(), f, indent=2)
    tf.io.gfile.rename(tmp, target, overwrite=True)


def read_run(model_dir: str) -> RunDescription | None:
    """The run description of a model directory (or of its `best/`), or None if it has none.

    A directory written before `run.json` existed describes only its model class, in
    `model_config.json`; that is read as a plain run of that class.
    """
    import tensorflow as tf

    for directory in (model_dir, os.path.dirname(os.path.normpath(model_dir))):
        run_path = path(directory, RUN)
        if tf.io.gfile.exists(run_path):
            with tf.io.gfile.GFile(run_path) as f:
                try:
                    value = json.load(f)
                except json.JSONDecodeError as err:
                    raise ModelDirError(f"{run_path}: not valid JSON ({err})") from None
            return RunDescription.from_json(value, source=run_path)
        legacy = path(directory, LEGACY_MODEL_CONFIG)
        if tf.io.gfile.exists(legacy):
            with tf.io.gfile.GFile(legacy) as f:
                value = json.load(f)
            return RunDescription(model_class=value.get("model_class") or "T5Model")
    return None
