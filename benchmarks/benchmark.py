"""Speed of t5core beside keras-hub and HF transformers on this machine, in one run.

  python benchmarks/benchmark.py --json benchmark.json \
      --hf_python /work/refvenv/bin/python --keras_hub_python /work/khvenv/bin/python

Each side runs in its own subprocess, one at a time. Prints a Markdown table (each side's fastest
mode, t5core's tokens/s and MFU against a matmul peak measured in the same run, and the speed
ratios), and writes every measurement as JSON. `--memory` adds the peak RSS of
t5-base training steps (batch 8 x 512/128) with and without rematerialised blocks.
Library: benchmarks/speed.py.
"""

import argparse
import importlib.util
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import speed as benchmark  # noqa: E402  (this folder's speed.py)
from t5core.errors import FlagError  # noqa: E402


def _csv(text, allowed, flag):
    values = [v for v in text.split(",") if v]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise FlagError(f"{flag}: unknown value(s) {bad}; choose from {', '.join(allowed)}")
    return values


def _python_with(module, explicit):
    """The interpreter for a side: the flag, else this one if it has the module, else None."""
    if explicit:
        if not os.path.exists(explicit):
            raise FileNotFoundError(f"interpreter {explicit} does not exist")
        return explicit
    return sys.executable if importlib.util.find_spec(module) else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="t5-small")
    parser.add_argument("--sides", default="t5core,keras_hub,hf")
    parser.add_argument("--works", default=",".join(benchmark.WORKS))
    parser.add_argument("--precisions", default=",".join(benchmark.PRECISIONS))
    parser.add_argument("--modes", default="graph,xla", help="graph and/or xla (jit_compile)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--dropout_rate", type=float, default=0.0,
                        help="dropout in the training steps of every side (default 0)")
    parser.add_argument("--inputs_length", type=int, default=256)
    parser.add_argument("--targets_length", type=int, default=64)
    parser.add_argument("--train_steps", type=int, default=5, help="timed steps per mode")
    parser.add_argument("--warmup_steps", type=int, default=2)
    parser.add_argument("--greedy_batches", default="1,32")
    parser.add_argument("--beam_batch", type=int, default=8)
    parser.add_argument("--decode_repeats", type=int, default=3)
    parser.add_argument("--data_dir", default=None, help="Multi30k folder (data pipelines)")
    parser.add_argument("--vocab", default=None, help="SentencePiece model (data pipelines)")
    parser.add_argument("--hf_python", default=None,
                        help="python with torch + transformers (e.g. /work/refvenv/bin/python)")
    parser.add_argument("--keras_hub_python", default=None,
                        help="python with keras-hub (default: this one, if it has keras_hub)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure t5-base training peak RSS, with and without remat")
    parser.add_argument("--memory_preset", default="t5-base")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every side this many times, alternating; the table takes "
                             "each measurement's median over rounds")
    parser.add_argument("--json", default="benchmark.json", help="where to write the results")
    args = parser.parse_args(argv)

    spec = benchmark.default_spec(
        preset=args.preset, dropout_rate=args.dropout_rate, batch_size=args.batch_size,
        inputs_length=args.inputs_length, targets_length=args.targets_length,
        train_steps=args.train_steps, warmup_steps=args.warmup_steps,
        decode_repeats=args.decode_repeats,
        precisions=_csv(args.precisions, benchmark.PRECISIONS, "--precisions"),
        modes=_csv(args.modes, ("graph", "xla"), "--modes"),
        works=_csv(args.works, benchmark.WORKS, "--works"),
        greedy_batches=[int(b) for b in args.greedy_batches.split(",") if b],
        beam_batch=args.beam_batch, data_dir=args.data_dir, vocab=args.vocab)
    pythons = {"t5core": sys.executable,
               "keras_hub": _python_with("keras_hub", args.keras_hub_python),
               "hf": args.hf_python or _python_with("transformers", None)}
    sides = []
    for side in _csv(args.sides, benchmark.SIDES, "--sides"):
        if pythons[side] is None:
            print(f"[benchmark] skipping {side}: no interpreter with it (see --{side}_python)",
                  file=sys.stderr)
        else:
            sides.append(side)
    summary = benchmark.run_benchmarks(spec, sides, pythons,
                                       log=lambda m: print(m, file=sys.stderr, flush=True),
                                       rounds=args.rounds)
    if args.memory:
        summary["memory"] = [benchmark.run_memory(
            {"preset": args.memory_preset, "remat": remat}) for remat in (False, True)]
    print(benchmark.format_table(summary))
    for entry in summary.get("memory", []):
        if "peak_rss_gib" in entry:
            print(f"memory {entry['preset']} {entry['batch']} remat={entry['remat']}: peak RSS "
                  f"{entry['peak_rss_gib']} GiB, {entry['seconds']:.2f} s/step")
        else:
            print(f"memory: {entry}")
    with open(args.json, "w") as f:
        json.dump(summary, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    from t5core import cli

    cli.run_main(main)
