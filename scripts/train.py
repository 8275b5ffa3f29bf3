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

from t5core.training.run import RunOptions  # noqa: E402
from t5core.training.trainer import TrainConfig  # noqa: E402

_RUN = RunOptions()
_TRAIN = _RUN.train
FLAGS = flags.FLAGS

flags.DEFINE_string("model", _RUN.model, "Preset name (t5-small, flan-t5-base, ...), "
                    "config.json, or a directory with one (an HF snapshot, a run's model_dir); "
                    "empty: --init_checkpoint's config, else the embedded tiny byte-level model.")
flags.DEFINE_string("init_checkpoint", "", "Checkpoint to start from (HF, Mesh-TF, T5X, or an "
                    "earlier run's model_dir; local or gs://).")
flags.DEFINE_bool("init_optimizer_state", False, "With --init_checkpoint of a T5X or Mesh-TF "
                  "run and --optimizer=adafactor: also take its Adafactor slots and step, so "
                  "training continues that run (--train_steps counts its steps too). Not used "
                  "when --model_dir holds a checkpoint to resume.")
flags.DEFINE_string("vocab", "", "SentencePiece model or tokenizer.json; empty: the tokenizer "
                    "beside --init_checkpoint (or in the --model directory), else byte-level.")
flags.DEFINE_string("task", "", "Registered task name (see t5core.data).")
flags.DEFINE_string("mixture", "", "Registered mixture name.")
flags.DEFINE_string("train_file", "", "Local TSV/JSONL training file.")
flags.DEFINE_string("eval_file", "", "Local TSV/JSONL evaluation file.")
flags.DEFINE_string("inputs_field", "inputs", "--train_file column/key of the inputs text.")
flags.DEFINE_string("targets_field", "targets", "--train_file column/key of the targets text.")
flags.DEFINE_string("metrics", "", "--train_file: comma-separated metrics (accuracy, bleu, ...).")
flags.DEFINE_enum("template", "", ["", "classification", "ner", "qa", "translation",
                                    "summarization", "dialogue"],
                  "Render --train_file rows with a prompt template (t5core.templates).")
flags.DEFINE_string("template_args", "", "JSON keyword arguments of the template, e.g. "
                    "'{\"label_words\": [\"negative\", \"positive\"]}'.")
flags.DEFINE_bool("instruction", False, "Phrase the template's inputs as Flan-style "
                  "instructions.")
flags.DEFINE_string("data_dir", "", "TFDS data_dir or the folder of a file-based task.")
flags.DEFINE_integer("inputs_length", _TRAIN.inputs_length, "Encoder length in tokens.")
flags.DEFINE_integer("targets_length", _TRAIN.targets_length, "Decoder length in tokens.")
flags.DEFINE_bool("pack", False, "Pack several examples into each row.")
flags.DEFINE_integer("batch_size", _TRAIN.batch_size, "Global batch size (all replicas).")
flags.DEFINE_integer("train_steps", _TRAIN.train_steps, "Total optimizer steps.")
flags.DEFINE_integer("eval_every", _TRAIN.eval_every, "Evaluate every N steps (0: at the end).")
flags.DEFINE_integer("eval_steps", _TRAIN.eval_steps, "Batches for the validation loss (0: all).")
flags.DEFINE_integer("eval_examples", _RUN.eval_examples, "Examples decoded for metrics.")
flags.DEFINE_integer("save_every", _TRAIN.save_every, "Checkpoint every N steps.")
flags.DEFINE_integer("keep_checkpoints", _TRAIN.keep_checkpoints, "Checkpoints kept.")
flags.DEFINE_string("model_dir", _TRAIN.model_dir, "Checkpoints and TensorBoard logs; rerun "
                    "with the same model_dir to resume.")
flags.DEFINE_enum("strategy", "auto", ["auto", "one_device", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy.")
flags.DEFINE_string("tpu", "", "TPU name or grpc:// address.")
flags.DEFINE_integer("num_cpu_devices", 1, "Split the CPU into N logical devices.")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA-compile the step; "
                  "auto: on GPU/TPU yes, on CPU no (the plain graph is faster there).")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"], "Compute dtype policy.")
flags.DEFINE_enum("optimizer", _TRAIN.optimizer, ["adafactor", "adamw"], "Optimizer.")
flags.DEFINE_float("learning_rate", _TRAIN.learning_rate, "Peak learning rate.")
flags.DEFINE_enum("schedule", _TRAIN.schedule, ["constant", "rsqrt", "linear", "cosine"],
                  "Learning-rate schedule.")
flags.DEFINE_integer("warmup_steps", _TRAIN.warmup_steps, "Linear warm-up steps.")
flags.DEFINE_float("weight_decay", 0.0, "Weight decay (adamw: decoupled; adafactor: T5X rate).")
flags.DEFINE_float("clip_norm", 0.0, "Clip the global gradient norm (0: off).")
flags.DEFINE_integer("grad_accum_steps", 1, "Micro-batches accumulated per step.")
flags.DEFINE_float("dropout_rate", None, "Override the model's dropout rate.")
flags.DEFINE_float("label_smoothing", 0.0, "Label smoothing.")
flags.DEFINE_float("z_loss", 0.0, "z-loss coefficient (T5X uses 1e-4).")
flags.DEFINE_string("loss_normalization", "tokens", "tokens, total_tokens, sequences, none or "
                    "constant:N.")
flags.DEFINE_integer("seed", 0, "Seed for initialisation, data order and dropout.")
flags.DEFINE_integer("early_stopping_patience", 0, "Stop after N evaluations without "
                     "improvement (0: never).")
flags.DEFINE_string("best_metric", "", "Metric for the best checkpoint (default: the task's "
                    "first metric, else eval_loss).")
flags.DEFINE_enum("peft", "none", ["none", "freeze_embeddings", "freeze_encoder", "top_n",
                                   "prompt", "lora"], "Parameter-efficient training method.")
flags.DEFINE_integer("peft_top_n", 1, "--peft=top_n: train only the top N decoder blocks.")
flags.DEFINE_integer("prompt_length", 20, "--peft=prompt: soft-prompt vectors.")
flags.DEFINE_enum("prompt_init", "vocab", ["vocab", "random"], "--peft=prompt: initialisation.")
flags.DEFINE_integer("lora_rank", 8, "--peft=lora: rank r.")
flags.DEFINE_float("lora_alpha", 0.0, "--peft=lora: alpha (0: alpha = rank).")
flags.DEFINE_string("lora_targets", "q,v", "--peft=lora: projections (q,k,v,o,wi,wo or globs).")
flags.DEFINE_enum("head", "seq2seq", ["seq2seq", "classifier"], "Text-to-text, or the encoder "
                  "with a pooled linear classifier.")
flags.DEFINE_string("labels", "", "--head=classifier: label words in class-id order.")
flags.DEFINE_bool("rank_classification", False, "Evaluate by scoring each of --labels and "
                  "picking the most likely (never an invalid label).")
flags.DEFINE_enum("pooling", "mean", ["mean", "first"], "--head=classifier: pooling.")
flags.DEFINE_enum("best_metric_mode", "auto", ["auto", "min", "max"], "Whether --best_metric "
                  "improves downwards or upwards (auto: min for losses, else max).")
flags.DEFINE_integer("log_every", _TRAIN.log_every, "Log metrics every N steps.")
flags.DEFINE_bool("skip_nonfinite", False, "Skip steps with a non-finite loss instead of "
                  "stopping.")
flags.DEFINE_float("peak_flops", 0.0, "Device peak FLOP/s for the MFU estimate (0: measured by "
                   "a short matmul at start, which reads low on a busy machine).")
flags.DEFINE_bool("progress_bar", True, "Show a progress bar (else log lines).")

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
    app.run(main)
