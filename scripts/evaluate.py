"""Score a trained checkpoint on a test set: metrics, per-class and per-entity-type tables.

The test set is a TSV/JSONL file (--eval_file) read as train.py reads its files, or a registered
task's split (--task, --split). Every data flag left out takes the value the run recorded in
its run.json (template, fields, lengths, labels, metrics, rank classification), so scoring a
run on its test file needs only:

  python scripts/evaluate.py --checkpoint=runs/sst2 --eval_file=test.jsonl --report_file=r.json
  python scripts/evaluate.py --checkpoint=runs/m30k --vocab=spm.model --task=multi30k_en_de \
      --data_dir=../shared/data/multi30k --split=test --method=beam

Scores are percentages. --vocab defaults to the tokenizer beside the checkpoint.
"""

import json
import os
import sys

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

flags.DEFINE_string("checkpoint", None, "Any checkpoint t5core reads, a trainer model_dir too.")
flags.DEFINE_string("config", None, "Preset or config.json when the checkpoint has none.")
flags.DEFINE_string("vocab", None, "SentencePiece model, tokenizer.json or 'byte'; default: the "
                    "tokenizer beside the checkpoint.")
# The data flags: as train.py's; unset ones take the run's recorded values.
flags.DEFINE_string("task", None, "Registered task name.")
flags.DEFINE_string("split", "test", "--task: the split to score.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir or the folder of a file-based task.")
flags.DEFINE_string("eval_file", None, "TSV (with a header) or JSONL test file.")
flags.DEFINE_enum("template", None, ["", "classification", "ner", "qa", "translation",
                                     "summarization", "dialogue"],
                  "Render --eval_file rows with a prompt template (t5core.data.templates).")
flags.DEFINE_string("template_args", None, "JSON keyword arguments of the template.")
flags.DEFINE_bool("instruction", None, "Phrase the template's inputs as Flan-style "
                  "instructions.")
flags.DEFINE_string("inputs_field", None, "--eval_file column/key of the inputs text.")
flags.DEFINE_string("targets_field", None, "--eval_file column/key of the targets text.")
flags.DEFINE_integer("inputs_length", None, "Encoder length (default: the run's, else 128).")
flags.DEFINE_integer("targets_length", None, "Maximum new tokens (default: the run's, else 128).")
flags.DEFINE_string("metrics", None, "Comma-separated metric names (default: the run's, the "
                    "task's or the template's).")
flags.DEFINE_string("labels", None, "Label words in class order: scored per class.")
flags.DEFINE_bool("rank_classification", None, "Predict the most likely of --labels.")
flags.DEFINE_enum("head", None, ["seq2seq", "classifier"], "The checkpoint's head (default: "
                  "the run's); a check, since a classifier run loads as one.")
flags.DEFINE_integer("max_examples", 0, "Score only the first N examples (0: all).")
flags.DEFINE_integer("batch_size", 64, "Decoding batch size.")
flags.DEFINE_enum("method", "greedy", ["greedy", "beam"], "Decoding method.")
flags.DEFINE_integer("num_beams", 4, "Beams for --method=beam.")
flags.DEFINE_float("alpha", 0.6, "Beam length penalty exponent.")
flags.DEFINE_enum("beam_semantics", "t5x", ["t5x", "hf"], "Which beams may finish: t5x (T5X / "
                  "Mesh-TF) or hf (HF / fairseq); see t5core.decoding.beam.")
flags.DEFINE_integer("lora_rank", 0, "Only for a model_dir written before run.json existed: it "
                     "was trained with --peft=lora of this rank (rebuild, restore, merge).")
flags.DEFINE_float("lora_alpha", 0.0, "--peft=lora alpha of such a run (0: the rank).")
flags.DEFINE_string("lora_targets", "q,v", "--lora_targets of such a run.")
flags.DEFINE_string("predictions_file", "", "Write predictions here, one per line.")
flags.DEFINE_string("report_file", "", "Write the metrics and per-class / per-entity-type "
                    "reports here as JSON.")
flags.mark_flags_as_required(["checkpoint"])
FLAGS = flags.FLAGS
DATA_FLAGS = ("task", "data_dir", "eval_file", "template", "template_args", "instruction",
              "inputs_field", "targets_field", "inputs_length", "targets_length", "metrics",
              "labels", "rank_classification")


def _legacy_lora_model(run):
    """A LoRA run's model_dir from before run.json: rebuilt from the --lora_* flags, merged."""
    from t5core import model_dir
    from t5core.model import T5Model
    from t5core.peft import apply_lora, merge_lora
    from t5core.checkpoints.model_state import restore_model

    if run is not None and run.lora_rank:
        print(f"note: {FLAGS.checkpoint} records its LoRA settings; --lora_* ignored",
              file=sys.stderr)
        return None
    config = model_dir.read_config(FLAGS.checkpoint)
    if config is None:
        raise app.UsageError(f"--lora_rank: {FLAGS.checkpoint} is not a trainer's model_dir")
    model = apply_lora(T5Model(config), FLAGS.lora_rank, FLAGS.lora_alpha or None,
                       FLAGS.lora_targets)
    restore_model(FLAGS.checkpoint, model)
    return merge_lora(model)


def load_model(run):
    from t5core.checkpoints import load_pretrained
    from t5core.classifier import T5EncoderClassifier

    model = _legacy_lora_model(run) if FLAGS.lora_rank else None
    if model is None:
        model = load_pretrained(FLAGS.checkpoint, config=FLAGS.config)
    head = "classifier" if isinstance(model, T5EncoderClassifier) else "seq2seq"
    if FLAGS.head is not None and FLAGS.head != head:
        raise app.UsageError(f"--head={FLAGS.head}, but {FLAGS.checkpoint} holds a {head} model")
    return model


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from t5core import model_dir
    from t5core.tokenizer import load_tokenizer
    from t5core.evaluation import reports

    run = model_dir.read_run(FLAGS.checkpoint)
    options = reports.data_options({name: FLAGS[name].value for name in DATA_FLAGS}, run)
    tokenizer = load_tokenizer(FLAGS.vocab or FLAGS.checkpoint)
    model = load_model(run)
    test = reports.load_test_set(options, tokenizer, FLAGS.split, FLAGS.max_examples)
    generate_options = {"method": FLAGS.method}
    if FLAGS.method == "beam":
        generate_options.update(num_beams=FLAGS.num_beams, alpha=FLAGS.alpha,
                                beam_semantics=FLAGS.beam_semantics)
    predictions = reports.predict(model, tokenizer, test, options,
                                  batch_size=FLAGS.batch_size, **generate_options)
    report = {"checkpoint": FLAGS.checkpoint, "test_set": test.description,
              "examples": len(predictions), **reports.score(test, predictions),
              "data_options": options}
    if FLAGS.predictions_file:
        with open(FLAGS.predictions_file, "w", encoding="utf-8") as f:
            f.write("\n".join(p.replace("\n", "\\n") for p in predictions) + "\n")
    if FLAGS.report_file:
        with open(FLAGS.report_file, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    print(f"{FLAGS.checkpoint} on {test.description}: {len(predictions)} examples\n")
    print(reports.format_report(report))


if __name__ == "__main__":
    from t5core import cli

    cli.run(main)
