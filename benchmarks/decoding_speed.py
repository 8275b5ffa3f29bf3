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
    from t5core.decoding.generation import generate
    from t5core.xla import default_jit_compile

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


def decode_weight_floor(config, steps=64, repeats=3, seed=0) -> dict:
    """The weight-read floor of one batch-1 decoding step on this device.

    At batch 1 a step reads every decoder weight and the output projection once, for a
    matrix-vector product each; little else costs anything. This times only those products,
    chained as a step chains them (each input depends on the one before, so none can be skipped
    or overlapped), over random float32 weights of the config's shapes, in one XLA-compiled loop
    as decoding runs. Cross-attention keys/values are left out: decoding computes them once.

    Returns {"seconds_per_step" (median over `repeats` loops of `steps`), "bytes_per_step",
    "gb_per_second"}; `steps` x seconds_per_step bounds greedy batch 1 from below, with these
    kernels on this machine.
    """
    import tensorflow as tf

    c = config
    rng = tf.random.Generator.from_seed(seed)
    variables = []

    def weight(rows, cols):
        variables.append(tf.Variable(rng.normal([rows, cols]) * rows ** -0.5))
        return variables[-1]

    d, inner = c.d_model, c.inner_dim
    blocks = []
    for _ in range(c.num_decoder_layers):
        blocks.append({
            "self": [weight(d, inner) for _ in range(3)] + [weight(inner, d)],  # q k v, o
            "cross": [weight(d, inner), weight(inner, d)],                      # q, o
            "ffn_in": [weight(d, c.d_ff) for _ in range(2 if c.is_gated else 1)],
            "ffn_out": weight(c.d_ff, d)})
    output = weight(d, c.vocab_size)

    def step(h):
        for b in blocks:
            q, k, v, o = b["self"]
            # q and k feed the scores in a real step; a scaled sum keeps them live here.
            h = h + tf.matmul(h @ v, o) + 1e-6 * tf.reduce_sum(h @ q + h @ k)
            h = h + tf.matmul(h @ b["cross"][0], b["cross"][1])
            hidden = tf.nn.relu(h @ b["ffn_in"][0])
            for extra in b["ffn_in"][1:]:
                hidden = hidden * (h @ extra)
            h = h + hidden @ b["ffn_out"]
            h = h * tf.math.rsqrt(tf.reduce_mean(tf.square(h)) + 1e-6)
        return h + 1e-6 * tf.reduce_max(h @ output)

    @tf.function(jit_compile=True)
    def loop(h):
        return tf.while_loop(lambda i, h: i < steps, lambda i, h: (i + 1, step(h)), (0, h))[1]

    h = tf.random.normal([1, d])
    loop(h).numpy()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loop(h).numpy()
        times.append((time.perf_counter() - start) / steps)
    seconds = float(np.median(times))
    nbytes = sum(4 * int(np.prod(v.shape)) for v in variables)
    return {"seconds_per_step": seconds, "bytes_per_step": nbytes,
            "gb_per_second": nbytes / seconds / 1e9}
