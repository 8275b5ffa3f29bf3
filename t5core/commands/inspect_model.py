"""Look inside a T5 model: parameter table, position buckets, attention, norms, predictions.

The model is a checkpoint (--checkpoint, any format t5core.load_pretrained reads) or a preset /
config.json with random weights (--preset / --config). Without --input or --input_ids only the
parameter table (computed from shapes: nothing is allocated, so any size works) and the bucket
table are produced. With them, the tool also runs the model on that text and reports attention
maps, relative-position biases per head, hidden-state norms per layer and the top-k next tokens
at each decoder step (teacher-forced on --target, else on its own greedy continuation).

Examples:
  t5core-inspect --preset t5-11b
  python3 scripts/inspect_model.py --checkpoint tests/fixtures/reference/t5_v1_0_relu_tied \\
      --vocab byte --input "hello world" --output_dir /tmp/inspect --tensorboard /tmp/tb
  python3 scripts/inspect_model.py --checkpoint tests/fixtures/t5x_tiny/test_t5_tiny.checkpoint_0 \\
      --config tests/fixtures/t5x_tiny/t5_1_1_base.gin,tests/fixtures/t5x_tiny/tiny.gin \\
      --vocab tests/fixtures/t5_vocab/spiece.model \\
      --input "translate English to German: That is good." --target "Das ist gut."
  python3 scripts/inspect_model.py ... --pack --input "first text" --input "second text"
"""

from absl import flags

from t5core import cli
from t5core.commands import shared_flags
from t5core.dataclass_flags import (COUNT, LENGTH, SEED, OnlyWith, OnlyWithout,
                                    declare_only_with, define_number)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    fv = dict(flag_values=flag_values)
    # The model: --checkpoint, or --preset or --config alone (random weights).
    shared_flags.define_checkpoint_flags(flag_values, required=False, serving=False)
    flags.DEFINE_string("preset", None, "A preset name (t5-small, flan-t5-xl, ...): random "
                        "weights.", **fv)
    define_number("seed", 0, "Seed of the random weights.", SEED, flag_values)
    flags.DEFINE_string("dtype", None, "Keras dtype policy, e.g. mixed_bfloat16.", **fv)
    # The text to run (optional).
    flags.DEFINE_multi_string("input", None, "Input text (repeatable with --pack).", **fv)
    flags.DEFINE_multi_string("target", None, "Target text, one per --input; default: greedy "
                              "decoding.", **fv)
    flags.DEFINE_multi_string("input_ids", None, "Input token ids, comma separated (instead of "
                              "--input; eos not added).", **fv)
    flags.DEFINE_multi_string("target_ids", None, "Target token ids, comma separated.", **fv)
    flags.DEFINE_bool("pack", False, "Pack all inputs into one row (segment ids, restarting "
                      "positions).", **fv)
    define_number("max_new_tokens", 8, "Greedy tokens without --target.", COUNT, flag_values)
    define_number("top_k", 5, "Predictions listed per decoder step.", COUNT, flag_values)
    # Outputs (the tables are always printed).
    flags.DEFINE_string("output_dir", None, "Writes report.json and PNG heatmaps there.", **fv)
    flags.DEFINE_bool("no_png", False, "No PNGs (matplotlib not needed).", **fv)
    flags.DEFINE_string("png_layers", None, "Blocks drawn as PNGs, comma separated (default "
                        "all).", **fv)
    flags.DEFINE_string("tensorboard", None, "Logdir for TensorBoard images, text and scalars.",
                        **fv)
    flags.DEFINE_bool("variables", False, "Print every variable's shape.", **fv)
    # A span is a distance between tokens: no longer than a sequence may be.
    define_number("bucket_span", None, "Relative positions tabulated: [-span, span] (default "
                  "1.25 max_distance).", LENGTH, flag_values)
    # Without a text to run only the shapes are inspected; the PNGs are written to --output_dir.
    text = OnlyWith(("input", "input_ids"))
    declare_only_with(flag_values, {
        "top_k": text, "pack": text, "seed": (text, OnlyWithout("checkpoint")),
        "max_new_tokens": (text, OnlyWithout(("target", "target_ids"))),
        "no_png": OnlyWith("output_dir", refuse=False), "png_layers": (OnlyWith("output_dir"),
                                                         OnlyWithout("no_png"))})
    cli.mark_outputs(flag_values, folders=("output_dir", "tensorboard"))


@shared_flags.reporting_user_errors
def inspect_model(args: flags.FlagValues) -> int:
    from t5core.inspection import run_command  # TensorFlow: not before --help is done

    run_command(args)
    return 0


def main(argv=None):
    """`t5core-inspect`; see `t5core.cli.command` for `argv`."""
    return cli.command(define_flags, inspect_model, argv, doc=__doc__)


if __name__ == "__main__":
    main()
