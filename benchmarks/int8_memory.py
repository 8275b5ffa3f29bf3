"""Peak memory of loading and of decoding, float32 against int8, and the SavedModels' sizes.

    python3 benchmarks/int8_memory.py --dir=/tmp/t5core_int8_mem --preset t5-small

Writes a random (T5-initialised) checkpoint of the preset in HF safetensors form to --dir when
none is there, then, for each of float32 and int8, in a fresh process each (so one's pool of
freed memory does not hide the other's): baseline RSS after imports; the high-water mark of
`load_pretrained(..., quantize=)` (VmHWM reset just before); RSS after loading; the high-water
mark of greedy decoding at batch 32, 64 -> 32 tokens (XLA), reset again before it, for the first
call (which compiles) and for a second one (decoding alone). Then exports
each as a SavedModel (strings in, strings out, the real T5 vocabulary) and sizes it on disk.
Linux only (reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from measure_load_memory import _status_kib  # this script's folder is on sys.path

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(REPO_ROOT, "tests", "fixtures", "t5_vocab", "spiece.model")


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS


def _generate(directory, preset):
    import keras

    from t5core import T5Config, T5Model
    from t5core.checkpoints import export_hf

    keras.utils.set_random_seed(0)
    export_hf(T5Model(T5Config.from_preset(preset)), directory)


def _measure(directory, precision, export_dir):
    import numpy as np

    import t5core
    from t5core.decoding.generation import generate
    from t5core.serving import export_saved_model
    from t5core.tokenizer import Tokenizer

    quantize = None if precision == "float32" else precision
    figures = {"precision": precision, "baseline_kib": _status_kib("VmRSS")}
    _reset_peak()
    model = t5core.load_pretrained(directory, quantize=quantize)
    figures["load_peak_kib"] = _status_kib("VmHWM")
    figures["after_load_kib"] = _status_kib("VmRSS")
    tokens = np.random.default_rng(0).integers(3, 32000, size=[32, 64]).astype(np.int32)
    _reset_peak()
    generate(model, tokens, 32, eos_id=-1, jit_compile=True)  # XLA compiles for this shape
    figures["first_decode_peak_kib"] = _status_kib("VmHWM")
    _reset_peak()
    generate(model, tokens, 32, eos_id=-1, jit_compile=True)
    figures["decode_peak_kib"] = _status_kib("VmHWM")
    export_saved_model(model, Tokenizer(VOCAB), export_dir, max_input_length=64,
                       max_new_tokens=32)
    figures["saved_model_bytes"] = sum(os.path.getsize(os.path.join(d, f))
                                       for d, _, fs in os.walk(export_dir) for f in fs)
    print(json.dumps(figures))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/t5core_int8_mem",
                        help="where the random checkpoint is (written when absent)")
    parser.add_argument("--preset", default="t5-small")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    checkpoint = os.path.join(args.dir, "checkpoint")
    if args._child == "generate":
        _generate(checkpoint, args.preset)
        return 0
    if args._child:
        _measure(checkpoint, args._child, os.path.join(args.dir, f"saved_model_{args._child}"))
        return 0
    if os.path.abspath(args.dir).startswith(REPO_ROOT + os.sep):
        parser.error("--dir must be outside the repository")
    me = [sys.executable, os.path.abspath(__file__), f"--dir={args.dir}", f"--preset={args.preset}"]
    env = {**os.environ, "PYTHONPATH": REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if not os.path.exists(os.path.join(checkpoint, "config.json")):
        subprocess.run(me + ["--_child=generate"], check=True, env=env)
    mib = 2 ** 20
    print("| weights | baseline RSS | load peak | RSS after load | first decode peak (compiles) "
          "| decode peak (greedy b32) | SavedModel on disk |")
    print("|---|---|---|---|---|---|---|")
    for precision in ("float32", "int8"):
        out = subprocess.run(me + [f"--_child={precision}"], check=True, env=env,
                             stdout=subprocess.PIPE, text=True).stdout
        f = json.loads(out.strip().splitlines()[-1])
        print(f"| {precision} | {f['baseline_kib'] / 1024:.0f} MiB | "
              f"{f['load_peak_kib'] / 1024:.0f} MiB | {f['after_load_kib'] / 1024:.0f} MiB | "
              f"{f['first_decode_peak_kib'] / 1024:.0f} MiB | {f['decode_peak_kib'] / 1024:.0f} MiB | {f['saved_model_bytes'] / mib:.1f} MiB |",
              flush=True)
    return 0


if __name__ == "__main__":
    from t5core import cli

    cli.run_main(main)
