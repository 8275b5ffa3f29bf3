"""Kernel-by-kernel profile of a t5core training step or decoding call.

  python benchmarks/profile_step.py --work train --precision mixed_bfloat16 --threads 1
  python benchmarks/profile_step.py --work greedy --batch_size 32

Prints Markdown tables (time per call by category, op type and single kernel) and writes them as
JSON. `--threads 1` gives the clean attribution of CPU work (see t5core/profiling.py).
Library: t5core/profiling.py.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", choices=["train", "greedy", "beam"], default="train")
    parser.add_argument("--preset", default="t5-small")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32",
                        help="training only")
    parser.add_argument("--jit_compile", choices=["true", "false"], default=None,
                        help="default: false for training, true for decoding")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra- and inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="default: 8 for training and beam, 32 for greedy")
    parser.add_argument("--inputs_length", type=int, default=256)
    parser.add_argument("--targets_length", type=int, default=64)
    parser.add_argument("--num_beams", type=int, default=4)
    parser.add_argument("--calls", type=int, default=2, help="traced calls (after 2 warm-ups)")
    parser.add_argument("--top", type=int, default=25, help="rows of the op and kernel tables")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)

    import tensorflow as tf

    if args.threads:  # before any op runs
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from t5core.config import T5Config
    from t5core.model import T5Model
    from step_profile import format_profile, profile_generate, profile_train_step

    config = T5Config.from_preset(args.preset).replace(dropout_rate=0.0)
    trace = dict(calls=args.calls, top=args.top)
    if args.work == "train":
        jit = args.jit_compile == "true"
        batch = args.batch_size or 8
        result = profile_train_step(config, args.precision, jit, batch, args.inputs_length,
                                    args.targets_length, **trace)
        title = (f"{args.preset} training step, {args.precision}, "
                 f"{'XLA' if jit else 'graph'}, batch {batch} x "
                 f"{args.inputs_length}/{args.targets_length}")
    else:
        jit = args.jit_compile != "false"
        batch = args.batch_size or (32 if args.work == "greedy" else 8)
        result = profile_generate(T5Model(config), args.work, batch, args.num_beams,
                                  jit_compile=jit, **trace)
        title = (f"{args.preset} {args.work}, batch {batch}"
                 f"{f' x {args.num_beams} beams' if args.work == 'beam' else ''}, "
                 f"{'XLA' if jit else 'graph'}, 64 -> 32 tokens")
    title += f", threads {args.threads or 'default'}"
    print(format_profile(result, title))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"title": title, **result}, f, indent=1)


if __name__ == "__main__":
    from t5core import cli

    cli.run_main(main)
