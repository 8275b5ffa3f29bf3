"""t5core float32 and int8 decoding side by side with CTranslate2 float32 and int8, in one run.

The t5-small shape, T5-initialised random weights (the same weights in every engine), inputs of
`--input_length` tokens, exactly `--new_tokens` new tokens per row (EOS disabled in t5core,
min = max decoding length in CTranslate2). Cases: greedy batch 1, greedy batch 32, beam 4 batch
8. t5core runs in the plain TF graph and under XLA. Within each case the engines alternate
repeat by repeat, so load from other processes falls on all of them alike; medians reported.

  python3 benchmarks/int8_speed.py --repeats 5                      # oneDNN on (TF's default)
  TF_ENABLE_ONEDNN_OPTS=0 python3 benchmarks/int8_speed.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CASES = (("greedy", 1, 1), ("greedy", 32, 1), ("beam", 8, 4))


def t5core_engines(preset, modes):
    """{name: model}: float32 and int8 models holding the same T5-initialised weights."""
    import keras

    import t5core

    models = {}
    for quantized in (False, True):
        keras.utils.set_random_seed(0)
        model = t5core.T5Model(t5core.T5Config.from_preset(preset))
        if quantized:
            model.quantize("int8")
        models["int8" if quantized else "fp32"] = model
    engines = {}
    for name, model in models.items():
        for jit in modes:
            engines[f"t5core {name} {'xla' if jit else 'graph'}"] = (model, jit)
    return models["fp32"], engines


def t5core_run(model, jit, tokens, method, num_beams, new_tokens):
    from t5core.decoding.generation import generate

    def run():
        out = generate(model, tokens, new_tokens, method=method, num_beams=num_beams,
                       jit_compile=jit, eos_id=-1)[0].numpy()
        assert out.shape == (tokens.shape[0], new_tokens)
    return run


def ct2_run(translator, tokens, method, num_beams, new_tokens):
    from ctranslate2_model import ct2_tokens

    source = ct2_tokens(tokens)

    def run():
        results = translator.translate_batch(
            source, beam_size=num_beams if method == "beam" else 1,
            max_decoding_length=new_tokens, min_decoding_length=new_tokens,
            length_penalty=0.6 if method == "beam" else 1.0)
        assert len(results[0].hypotheses[0]) == new_tokens
    return run


def settings() -> str:
    import tensorflow as tf

    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")
    return (f"TF {tf.__version__}, TF_ENABLE_ONEDNN_OPTS={onednn}, "
            f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'all'}"
            f", {os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="t5-small")
    parser.add_argument("--input_length", type=int, default=64)
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="graph,xla", help="t5core: graph, xla or both")
    parser.add_argument("--no-ctranslate2", dest="ctranslate2", action="store_false")
    args = parser.parse_args()
    import ctranslate2

    from ctranslate2_model import ct2_translator

    modes = [m == "xla" for m in args.modes.split(",")]
    reference, engines = t5core_engines(args.preset, modes)
    runners = {name: (lambda m=m, j=j: lambda *a: t5core_run(m, j, *a))()
               for name, (m, j) in engines.items()}
    folder = tempfile.mkdtemp(prefix="int8_speed_")
    if args.ctranslate2:
        for compute in ("float32", "int8"):
            translator = ct2_translator(reference, os.path.join(folder, compute), compute)
            runners[f"CTranslate2 {'fp32' if compute == 'float32' else 'int8'}"] = \
                (lambda t=translator: lambda *a: ct2_run(t, *a))()
    print(f"# {settings()}; CTranslate2 {ctranslate2.__version__}; {args.preset}, "
          f"{args.input_length} -> {args.new_tokens} tokens, median of {args.repeats}")
    rng = np.random.default_rng(0)
    header = "| engine | " + " | ".join(
        f"{m} batch {b}" + (f" beams {k}" if m == "beam" else "") for m, b, k in CASES) + " |"
    table = {name: [] for name in runners}
    for method, batch, beams in CASES:
        tokens = rng.integers(3, 32000, size=[batch, args.input_length]).astype(np.int32)
        tokens[:, -1] = 1
        calls = {name: make(tokens, method, beams, args.new_tokens)
                 for name, make in runners.items()}
        for call in calls.values():
            call()  # tracing / compilation / first allocation
        times = {name: [] for name in calls}
        for _ in range(args.repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
        for name in calls:
            table[name].append(float(np.median(times[name])))
        print(f"# {method} batch {batch}: " + ", ".join(
            f"{name} {np.median(t):.3f} s" for name, t in times.items()), flush=True)
    print(header)
    print("|---|" + "---|" * len(CASES))
    for name, seconds in table.items():
        print(f"| {name} | " + " | ".join(f"{s:.3f} s" for s in seconds) + " |")


if __name__ == "__main__":
    main()
