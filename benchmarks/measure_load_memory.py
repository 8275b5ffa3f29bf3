"""Peak resident memory of `load_pretrained` on a random t5-v1_1-base-size safetensors checkpoint.

    python3 benchmarks/measure_load_memory.py --dir=/tmp/t5core_mem_base

Writes the checkpoint first if the directory has none (a random model built by t5core and written
by `export_hf`, about 1 GB; keep it out of the repository), then loads it in a fresh process:
baseline = resident memory after imports, peak = the kernel's high-water mark (VmHWM, reset just
before loading), limit = checkpoint size x (1 + --allowance) over the baseline. Exits 1 when the
peak is over the limit. Linux only (reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _generate(directory, preset):
    from t5core import T5Config, T5Model
    from t5core.checkpoints import export_hf

    model = T5Model(T5Config.from_preset(preset))
    export_hf(model, directory)


def _measure(directory):
    import numpy as np

    import t5core  # noqa: F401  (imports TF/Keras: part of the baseline, not of loading)
    from t5core.checkpoints import load_pretrained

    baseline = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    model = load_pretrained(directory)
    peak = _status_kib("VmHWM")
    after = _status_kib("VmRSS")
    params = sum(int(np.prod(v.shape)) for v in model.weights)
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "after_kib": after,
                      "parameters": params}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/t5core_mem_base",
                        help="where the random checkpoint is (written when absent)")
    parser.add_argument("--preset", default="t5-v1_1-base")
    parser.add_argument("--allowance", type=float, default=0.40,
                        help="allowed peak over baseline, as a fraction of the checkpoint size "
                             "beyond the size itself")
    parser.add_argument("--_child", choices=["generate", "measure"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args._child == "generate":
        _generate(args.dir, args.preset)
        return 0
    if args._child == "measure":
        _measure(args.dir)
        return 0
    if os.path.abspath(args.dir).startswith(REPO_ROOT + os.sep):
        parser.error("--dir must be outside the repository (the checkpoint is about 1 GB)")
    me = [sys.executable, os.path.abspath(__file__), f"--dir={args.dir}", f"--preset={args.preset}"]
    env = {**os.environ, "PYTHONPATH": REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if not os.path.exists(os.path.join(args.dir, "config.json")):
        print(f"writing a random {args.preset} checkpoint to {args.dir} ...", flush=True)
        subprocess.run(me + ["--_child=generate"], check=True, env=env)
    size = sum(os.path.getsize(os.path.join(args.dir, n)) for n in os.listdir(args.dir)
               if n.endswith(".safetensors"))
    out = subprocess.run(me + ["--_child=measure"], check=True, env=env, stdout=subprocess.PIPE,
                         text=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    over = (figures["peak_kib"] - figures["baseline_kib"]) * 1024
    limit = size * (1 + args.allowance)
    mib = 2 ** 20
    print(f"checkpoint {size / mib:.1f} MiB ({figures['parameters']:,} parameters); baseline RSS "
          f"{figures['baseline_kib'] / 1024:.1f} MiB; peak RSS {figures['peak_kib'] / 1024:.1f} "
          f"MiB; peak over baseline {over / mib:.1f} MiB = {over / size:.3f} x checkpoint "
          f"(limit {1 + args.allowance:.2f} x = {limit / mib:.1f} MiB); RSS after load "
          f"{figures['after_kib'] / 1024:.1f} MiB")
    if over > limit:
        print("FAIL: peak over the limit")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    from t5core import cli

    cli.run_main(main)
