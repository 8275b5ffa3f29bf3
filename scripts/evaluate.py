"""Score a trained checkpoint on a task's split (e.g. Multi30k test_2016 BLEU).

  python scripts/evaluate.py --checkpoint=runs/m30k --vocab=spm.model --task=multi30k_en_de \
      --data_dir=../shared/data/multi30k --split=test --method=beam
"""

import json
import os
import sys

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

flags.DEFINE_string("checkpoint", None, "Any checkpoint t5core reads, a trainer model_dir too.")
flags.DEFINE_string("config", None, "Preset or config.json when the checkpoint has none.")
flags.DEFINE_string("vocab", "", "SentencePiece model; empty: byte-level vocabulary.")
flags.DEFINE_string("task", None, "Registered task name.")
flags.DEFINE_string("split", "test", "Split to score.")
flags.DEFINE_string("data_dir", "", "TFDS data_dir or the folder of a file-based task.")
flags.DEFINE_integer("inputs_length", 128, "Encoder length.")
flags.DEFINE_integer("targets_length", 128, "Maximum new tokens.")
flags.DEFINE_integer("max_examples", 0, "Score only the first N examples (0: all).")
flags.DEFINE_integer("batch_size", 64, "Decoding batch size.")
flags.DEFINE_enum("method", "greedy", ["greedy", "beam"], "Decoding method.")
flags.DEFINE_integer("num_beams", 4, "Beams for --method=beam.")
flags.DEFINE_float("alpha", 0.6, "Beam length penalty exponent.")
flags.DEFINE_enum("beam_semantics", "t5x", ["t5x", "hf"], "Which beams may finish: t5x (T5X / "
                  "Mesh-TF) or hf (HF / fairseq); see t5core.decoding.beam.")
flags.DEFINE_integer("lora_rank", 0, "The checkpoint was trained with --peft=lora of this rank: "
                     "rebuild, restore and merge it (0: a plain checkpoint).")
flags.DEFINE_float("lora_alpha", 0.0, "--peft=lora alpha of the run (0: the rank).")
flags.DEFINE_string("lora_targets", "q,v", "--lora_targets of the run.")
flags.DEFINE_string("predictions_file", "", "Write predictions here, one per line.")
flags.mark_flags_as_required(["checkpoint", "task"])
FLAGS = flags.FLAGS


def _merged_lora_model():
    from t5core.config import T5Config
    from t5core.model import T5Model
    from t5core.peft import apply_lora, merge_lora
    from t5core.training.checkpointing import restore_model

    with open(os.path.join(FLAGS.checkpoint, "model_config.json")) as f:
        config = T5Config(**json.load(f)["config"])
    model = apply_lora(T5Model(config), FLAGS.lora_rank, FLAGS.lora_alpha or None,
                       FLAGS.lora_targets)
    restore_model(FLAGS.checkpoint, model)
    return merge_lora(model)


def main(argv):
    del argv
    import t5core.data  # noqa: F401  (registers the tasks)
    from t5core.checkpoints import load_pretrained
    from t5core.data.tasks import get
    from t5core.tokenizer import ByteTokenizer, Tokenizer
    from t5core.training.evaluation import evaluate_task

    tokenizer = Tokenizer(FLAGS.vocab) if FLAGS.vocab else ByteTokenizer()
    if FLAGS.lora_rank:
        model = _merged_lora_model()
    else:
        model = load_pretrained(FLAGS.checkpoint, config=FLAGS.config)
    options = {"method": FLAGS.method}
    if FLAGS.method == "beam":
        options.update(num_beams=FLAGS.num_beams, alpha=FLAGS.alpha,
                       beam_semantics=FLAGS.beam_semantics)
    metrics, predictions, _ = evaluate_task(
        model, get(FLAGS.task), FLAGS.split, tokenizer, FLAGS.inputs_length,
        FLAGS.targets_length, data_dir=FLAGS.data_dir or None, max_examples=FLAGS.max_examples,
        batch_size=FLAGS.batch_size, **options)
    if FLAGS.predictions_file:
        with open(FLAGS.predictions_file, "w", encoding="utf-8") as f:
            f.write("\n".join(predictions) + "\n")
    print(json.dumps({"task": FLAGS.task, "split": FLAGS.split, "examples": len(predictions),
                      **metrics}, indent=2))


if __name__ == "__main__":
    app.run(main)
