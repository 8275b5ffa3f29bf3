#!/usr/bin/env python3
"""Look inside a T5 model: parameter table, position buckets, attention, norms, predictions.

The model is a checkpoint (--checkpoint, any format t5core.load_pretrained reads) or a preset /
config.json with random weights (--preset / --config). Without --input or --input_ids only the
parameter table (computed from shapes: nothing is allocated, so any size works) and the bucket
table are produced. With them, the tool also runs the model on that text and reports attention
maps, relative-position biases per head, hidden-state norms per layer and the top-k next tokens
at each decoder step (teacher-forced on --target, else on its own greedy continuation).

Examples:
  python3 scripts/inspect_model.py --preset t5-11b
  python3 scripts/inspect_model.py --checkpoint tests/fixtures/reference/t5_v1_0_relu_tied \\
      --vocab byte --input "hello world" --output_dir /tmp/inspect --tensorboard /tmp/tb
  python3 scripts/inspect_model.py --checkpoint tests/fixtures/t5x_tiny/test_t5_tiny.checkpoint_0 \\
      --config tests/fixtures/t5x_tiny/t5_1_1_base.gin,tests/fixtures/t5x_tiny/tiny.gin \\
      --vocab tests/fixtures/t5_vocab/spiece.model \\
      --input "translate English to German: That is good." --target "Das ist gut."
  python3 scripts/inspect_model.py ... --pack --input "first text" --input "second text"
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    src = p.add_argument_group("model (one of --checkpoint, --preset, --config)")
    src.add_argument("--checkpoint", help="any checkpoint t5core.load_pretrained reads")
    src.add_argument("--preset", help="a preset name (t5-small, flan-t5-xl, ...): random weights")
    src.add_argument("--config", help="config.json, preset name or gin file(s) (comma separated, "
                     "as T5X: base.gin,size.gin); alone: random weights")
    src.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    src.add_argument("--dtype", default=None, help="Keras dtype policy, e.g. mixed_bfloat16")
    txt = p.add_argument_group("text to run (optional)")
    txt.add_argument("--vocab", help="SentencePiece model path, or 'byte' for ByT5 bytes")
    txt.add_argument("--input", action="append", help="input text (repeatable with --pack)")
    txt.add_argument("--target", action="append",
                     help="target text, one per --input; default: greedy decoding")
    txt.add_argument("--input_ids", action="append",
                     help="input token ids, comma separated (instead of --input; eos not added)")
    txt.add_argument("--target_ids", action="append", help="target token ids, comma separated")
    txt.add_argument("--pack", action="store_true",
                     help="pack all inputs into one row (segment ids, restarting positions)")
    txt.add_argument("--max_new_tokens", type=int, default=8, help="greedy tokens without --target")
    txt.add_argument("--top_k", type=int, default=5, help="predictions listed per decoder step")
    out = p.add_argument_group("outputs (tables are always printed)")
    out.add_argument("--output_dir", help="writes report.json and PNG heatmaps there")
    out.add_argument("--no_png", action="store_true", help="no PNGs (matplotlib not needed)")
    out.add_argument("--png_layers", help="blocks drawn as PNGs, comma separated (default all)")
    out.add_argument("--tensorboard", help="logdir for TensorBoard images, text and scalars")
    out.add_argument("--variables", action="store_true", help="print every variable's shape")
    out.add_argument("--bucket_span", type=int, default=None,
                     help="relative positions tabulated: [-span, span] (default 1.25 max_distance)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from t5core.inspection import run_command

    try:
        run_command(
            checkpoint=args.checkpoint, preset=args.preset, config=args.config, seed=args.seed,
            dtype=args.dtype, vocab=args.vocab, inputs=args.input, targets=args.target,
            input_ids=args.input_ids, target_ids=args.target_ids, pack=args.pack,
            max_new_tokens=args.max_new_tokens, top_k=args.top_k, output_dir=args.output_dir,
            png=not args.no_png, png_layers=args.png_layers, tensorboard=args.tensorboard,
            variables=args.variables, bucket_span=args.bucket_span)
    except (ValueError, FileNotFoundError, ImportError) as err:
        # Bad flags, files or an absent optional dependency: one line, status 2 (t5core.cli).
        from t5core import cli

        return cli.report(err)
    return 0


if __name__ == "__main__":
    from t5core import cli

    cli.run_main(main)
