"""Train or fine-tune a T5 model. With no flags: the embedded tasks, offline, in minutes.

Examples:
  python scripts/train.py
  python scripts/train.py --model=t5-small --init_checkpoint=/ckpt/t5-small --vocab=spiece.model \
      --task=multi30k_en_de --data_dir=../shared/data/multi30k --model_dir=runs/m30k
"""

import os
import sys

from absl import app, flags, logging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from t5core import cli  # noqa: E402
from t5core.training.run import RunOptions  # noqa: E402
from t5core.training.trainer import TrainConfig  # noqa: E402

_RUN = RunOptions()
_TRAIN = _RUN.train
FLAGS = flags.FLAGS


def _flag(kind, name, help, **kwargs):
    """Defines --name; its default is the RunOptions / TrainConfig field of the same name, so the
    command line and the Python API have one set of defaults."""
    # jit_compile is in both: the flag's "auto" is the RunOptions one, resolved for TrainConfig.
    in_run = name in RunOptions.__dataclass_fields__
    default = getattr(_RUN if in_run else _TRAIN, name)
    getattr(flags, "DEFINE_" + kind)(name=name, default=default, help=help, **kwargs)


_flag("string", "model", "Preset name (t5-small, flan-t5-base, ...), config.json, or a "
      "directory with one (an HF snapshot, a run's model_dir); empty: --init_checkpoint's "
      "config, else the embedded tiny byte-level model.")
_flag("string", "init_checkpoint", "Checkpoint to start from (HF, Mesh-TF, T5X, or an earlier "
      "run's model_dir; local or gs://).")
_flag("bool", "init_optimizer_state", "With --init_checkpoint of a T5X or Mesh-TF run and "
      "--optimizer=adafactor: also take its Adafactor slots and step, so training continues that "
      "run (--train_steps counts its steps too). Not used when --model_dir holds a checkpoint to "
      "resume.")
_flag("string", "vocab", "SentencePiece model or tokenizer.json; empty: the tokenizer beside "
      "--init_checkpoint (or in the --model directory), else byte-level.")
_flag("string", "task", "Registered task name (see t5core.data).")
_flag("string", "mixture", "Registered mixture name.")
_flag("string", "train_file", "Local TSV/JSONL training file.")
_flag("string", "eval_file", "Local TSV/JSONL evaluation file.")
_flag("string", "inputs_field", "--train_file column/key of the inputs text.")
_flag("string", "targets_field", "--train_file column/key of the targets text.")
_flag("string", "metrics", "--train_file: comma-separated metrics (accuracy, bleu, ...).")
_flag("enum", "template",
      "Render --train_file rows with a prompt template (t5core.data.templates).",
      enum_values=["", "classification", "ner", "qa", "translation", "summarization",
                   "dialogue"])
_flag("string", "template_args", "JSON keyword arguments of the template, e.g. "
      "'{\"label_words\": [\"negative\", \"positive\"]}'.")
_flag("bool", "instruction", "Phrase the template's inputs as Flan-style instructions.")
_flag("string", "data_dir", "TFDS data_dir or the folder of a file-based task.")
_flag("integer", "inputs_length", "Encoder length in tokens.")
_flag("integer", "targets_length", "Decoder length in tokens.")
_flag("bool", "pack", "Pack several examples into each row.")
_flag("integer", "batch_size", "Global batch size (all replicas).")
_flag("integer", "train_steps", "Total optimizer steps.")
_flag("integer", "eval_every", "Evaluate every N steps (0: at the end).")
_flag("integer", "eval_steps", "Batches for the validation loss (0: all).")
_flag("integer", "eval_examples", "Examples decoded for metrics.")
_flag("integer", "save_every", "Checkpoint every N steps.")
_flag("integer", "keep_checkpoints", "Checkpoints kept.")
_flag("string", "model_dir", "Checkpoints and TensorBoard logs; rerun with the same model_dir to "
      "resume.")
_flag("enum", "strategy", "tf.distribute strategy.",
      enum_values=["auto", "one_device", "mirrored", "multi_worker", "tpu"])
_flag("string", "tpu", "TPU name or grpc:// address.")
_flag("integer", "num_cpu_devices", "Split the CPU into N logical devices.")
_flag("enum", "jit_compile", "XLA-compile the step; auto: on GPU/TPU yes, on CPU no (the plain "
      "graph is faster there).", enum_values=["auto", "true", "false"])
_flag("enum", "precision", "Compute dtype policy.", enum_values=["float32", "mixed_bfloat16"])
_flag("enum", "optimizer", "Optimizer.", enum_values=["adafactor", "adamw"])
_flag("float", "learning_rate", "Peak learning rate.")
_flag("enum", "schedule", "Learning-rate schedule.",
      enum_values=["constant", "rsqrt", "linear", "cosine"])
_flag("integer", "warmup_steps", "Linear warm-up steps (one as long as the run is shortened to a "
      "tenth of it, with a note).")
_flag("float", "weight_decay", "Weight decay (adamw: decoupled; adafactor: T5X rate).")
_flag("float", "clip_norm", "Clip the global gradient norm (0: off).")
_flag("integer", "grad_accum_steps", "Micro-batches accumulated per step.")
_flag("float", "dropout_rate", "Override the model's dropout rate.")
_flag("float", "label_smoothing", "Label smoothing.")
_flag("float", "z_loss", "z-loss coefficient (T5X uses 1e-4).")
_flag("string", "loss_normalization", "tokens, total_tokens, sequences, none or constant:N.")
_flag("integer", "seed", "Seed for initialisation, data order and dropout.")
_flag("integer", "early_stopping_patience", "Stop after N evaluations without improvement (0: "
      "never).")
_flag("string", "best_metric", "Metric for the best checkpoint (default: the task's first "
      "metric, else eval_loss).")
_flag("enum", "peft", "Parameter-efficient training method.",
      enum_values=["none", "freeze_embeddings", "freeze_encoder", "top_n", "prompt", "lora"])
_flag("integer", "peft_top_n", "--peft=top_n: train only the top N decoder blocks.")
_flag("integer", "prompt_length", "--peft=prompt: soft-prompt vectors.")
_flag("enum", "prompt_init", "--peft=prompt: initialisation.", enum_values=["vocab", "random"])
_flag("integer", "lora_rank", "--peft=lora: rank r.")
_flag("float", "lora_alpha", "--peft=lora: alpha (0: alpha = rank).")
_flag("string", "lora_targets", "--peft=lora: projections (q,k,v,o,wi,wo or globs).")
_flag("enum", "head", "Text-to-text, or the encoder with a pooled linear classifier.",
      enum_values=["seq2seq", "classifier"])
_flag("string", "labels", "--head=classifier: label words in class-id order.")
_flag("bool", "rank_classification", "Evaluate by scoring each of --labels and picking the most "
      "likely (never an invalid label).")
_flag("enum", "pooling", "--head=classifier: pooling.", enum_values=["mean", "first"])
_flag("enum", "best_metric_mode", "Whether --best_metric improves downwards or upwards (auto: min "
      "for losses, else max).", enum_values=["auto", "min", "max"])
_flag("integer", "log_every", "Log metrics every N steps.")
_flag("bool", "skip_nonfinite", "Skip steps with a non-finite loss instead of stopping.")
_flag("float", "peak_flops", "Device peak FLOP/s for the MFU estimate (0: measured by a short "
      "matmul at start, which reads low on a busy machine).")
_flag("bool", "progress_bar", "Show a progress bar (else log lines).")

_TRAIN_FIELDS = [f.name for f in TrainConfig.__dataclass_fields__.values()]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    import tensorflow as tf

    from t5core.training.run import run

    tf.get_logger().setLevel("ERROR")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint saver is chatty at INFO

    values = {name: FLAGS[name].value for name in FLAGS if name in _TRAIN_FIELDS}
    run_values = {name: FLAGS[name].value for name in FLAGS
                  if name in RunOptions.__dataclass_fields__ and name != "train"}
    options = RunOptions(**run_values, train=TrainConfig(**values))
    run(options)


if __name__ == "__main__":
    cli.run(main)
