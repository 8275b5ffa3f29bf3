"""Decoding speed: greedy at batch 1 and 32 and beam 4 at batch 8 on a randomly initialised model.

EOS is disabled (eos_id=-1) so every row decodes exactly `new_tokens` tokens and runs are
comparable; the first call (tracing, and XLA compilation) is timed apart from the steady state.
"""

from __future__ import annotations

import time

import numpy as np

DEFAULT_CASES = (("greedy", 1, 1), ("greedy", 32, 1), ("beam", 8, 4))


def benchmark_decoding(preset="t5-small", cases=DEFAULT_CASES, input_length=64, new_tokens=32,
                       jit_compile=None, repeats=3, model=None, seed=0, log=print):
    """Times `generate` for each (method, batch, num_beams) case.

    jit_compile: True, False, None (the default for this machine), or a tuple of modes to time
    each case under each. Returns a list of dicts: method, batch, num_beams, jit_compile,
    first_call_s (tracing + compilation + one run), seconds (median wall time of `repeats` runs),
    cpu_seconds (median process CPU time: less sensitive than wall time to other processes on a
    shared machine), tokens_per_s (new tokens of all rows per wall second).
    `log` gets one line per case (None: quiet).
    """
    import keras

    import t5core
    from t5core.decoding.generation import default_jit_compile, generate

    if model is None:
        keras.utils.set_random_seed(seed)
        model = t5core.T5Model(t5core.T5Config.from_preset(preset))
    modes = jit_compile if isinstance(jit_compile, (tuple, list)) else (jit_compile,)
    rng = np.random.default_rng(seed)
    results = []
    for method, batch, num_beams in cases:
        tokens = rng.integers(2, min(32000, model.config.vocab_size), size=[batch, input_length])
        tokens = tokens.astype(np.int32)
        rows = batch * (num_beams if method == "beam" else 1)
        for mode in [default_jit_compile(rows) if m is None else bool(m) for m in modes]:
            run = lambda: generate(model, tokens, new_tokens, method=method, num_beams=num_beams,
                                   jit_compile=mode, eos_id=-1)[0].numpy()
            start = time.perf_counter()
            out = run()
            first = time.perf_counter() - start
            assert out.shape == (batch, new_tokens)
            times, cpu_times = [], []
            for _ in range(repeats):
                start, cpu_start = time.perf_counter(), time.process_time()
                run()
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
            seconds = float(np.median(times))
            result = dict(method=method, batch=batch,
                          num_beams=num_beams if method == "beam" else 1,
                          jit_compile=mode, input_length=input_length, new_tokens=new_tokens,
                          first_call_s=first, seconds=seconds,
                          cpu_seconds=float(np.median(cpu_times)),
                          tokens_per_s=batch * new_tokens / seconds)
            results.append(result)
            if log is not None:
                log(f"{method:6s} batch {batch:3d} beams {result['num_beams']} "
                    f"{'xla  ' if mode else 'graph'}: {seconds * 1000:8.1f} ms "
                    f"({result['tokens_per_s']:7.1f} new tokens/s; process CPU "
                    f"{result['cpu_seconds']:.2f} s; first call {first:.1f} s)")
    return results
