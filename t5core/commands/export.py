"""Export a T5 checkpoint as a SavedModel for TF Serving: strings in, decoded strings out.

  t5core-export --checkpoint ckpt/ --vocab spiece.model --output_dir export/1 \\
      --max_input_length 512 --max_new_tokens 64 --method beam --num_beams 4
  python3 scripts/export.py --checkpoint runs/my_run --output_dir export/2

The signature `serving_default` takes `inputs` (string [B]) and returns `outputs` (string [B]),
`scores` and `truncated` (see t5core/serving.py). Decoding settings are fixed at export.
A training run's model_dir exports as it was trained: LoRA merged, a soft prompt inside, and a
classifier head returning `labels` and `probabilities` instead. --vocab defaults to the
tokenizer beside the checkpoint. Load the result with `t5core.serving.load(output_dir)`.
"""

from absl import flags

from t5core import cli, file_writes, model_dir
from t5core.classifier import T5EncoderClassifier
from t5core.commands import shared_flags
from t5core.dataclass_flags import SEED, declare_only_with, define_number
from t5core.quantization import is_quantized
from t5core.serving import export_saved_model
from t5core.training.run import read_run_checked


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    shared_flags.define_checkpoint_flags(flag_values)
    flags.DEFINE_string("output_dir", None, "New (or empty) SavedModel directory.",
                        flag_values=flag_values, required=True)
    define_number("max_input_length", 512, "Longer inputs are truncated (warning logged, "
                  "'truncated' output True); left out: a run's inputs_length, else 512.",
                  shared_flags.INPUT_LENGTH, flag_values)
    flags.DEFINE_bool("overwrite", False, "Write into a non-empty --output_dir: the previous "
                      "SavedModel's files there are replaced once the new one is written; other "
                      "files are kept.",
                      flag_values=flag_values)
    shared_flags.define_decoding_flags(flag_values)
    define_number("seed", 0, "Sampling seed (fixed in the export).", SEED, flag_values)
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the search inside the SavedModel (for "
                      "GPU/TPU serving; always with --quantize, whose int8 matmuls are fast on "
                      "CPU only under XLA).", flag_values=flag_values)
    declare_only_with(flag_values, {"seed": shared_flags.SAMPLE_ONLY})
    cli.mark_outputs(flag_values, folders=("output_dir",))


def export(args: flags.FlagValues):
    # Refused before the model is read; export_saved_model writes by the same rule.
    replaced = file_writes.check_output_dir(args.output_dir, args.overwrite,
                                            model_dir.SAVED_MODEL_NAMES)
    run = read_run_checked(args.checkpoint)
    shared_flags.take_run_lengths(args, run)
    tokenizer = shared_flags.load_tokenizer(args)
    model = shared_flags.load_model(args)
    classifier = isinstance(model, T5EncoderClassifier)
    settings = dict(max_input_length=args.max_input_length)
    if classifier:
        shared_flags.note_unread(args, shared_flags.DECODING_FLAGS, f"{args.checkpoint} is a "
                                 "classifier-head run (its SavedModel returns labels)")
    else:
        shared_flags.note_ranked_labels(run, args.checkpoint, "its SavedModel")
        settings.update(shared_flags.decoding_settings(args), seed=args.seed,
                        jit_compile=args.jit_compile or is_quantized(model))
    export_saved_model(model, tokenizer, args.output_dir, args.overwrite, **settings)
    if replaced:
        print(f"--overwrite: replaced {', '.join(replaced)} in {args.output_dir}")
    print(f"SavedModel ({type(model).__name__}) written to {args.output_dir}")
    print(usage(args.output_dir, classifier))


def usage(output_dir, classifier):
    """How to load and call what was written, for the user to copy."""
    outputs = '["labels"], out["probabilities"]' if classifier else '["outputs"]'
    return (f"Load it in Python:\n"
            f"  import tensorflow as tf, t5core.serving\n"
            f"  model = t5core.serving.load({output_dir!r})\n"
            f"  out = model.signatures[\"serving_default\"](inputs=tf.constant([\"some text\"]))\n"
            f"  print(out{outputs})")


def main(argv=None):
    """`t5core-export`; see `t5core.cli.command` for `argv`."""
    return cli.command(define_flags, export, argv, doc=__doc__)


if __name__ == "__main__":
    main()
