"""What bounds int8 decoding in TF's plain graph: the int8 matmul kernel itself.

Times one t5-small-shaped projection, x [rows, 512] times W [512, 2048], as a decoding step runs
it, in four ways: float32 matmul; Keras' int8 path (x quantized per row, int8 x int8 -> int32
matmul, rescale), each in the plain graph and under XLA. Each op runs `--steps` times in one
tf.while_loop (as decoding's loop does), so per-call overhead is counted once.

  python3 benchmarks/int8_matmul_profile.py --rows 1 32
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--d_in", type=int, default=512)
    parser.add_argument("--d_out", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = rng.normal(size=[args.d_in, args.d_out]).astype(np.float32) * args.d_in ** -0.5
    w8, w_scale = keras.quantizers.abs_max_quantize(w, axis=0, to_numpy=True)
    w32, w8 = tf.constant(w), tf.constant(w8)
    w_scale = tf.constant(np.asarray(w_scale, np.float32))

    def float_step(x):
        return tf.matmul(x, w32)

    def int8_step(x):
        x8, x_scale = keras.quantizers.abs_max_quantize(x, axis=-1)
        y = tf.linalg.matmul(x8, w8, output_type=tf.int32)
        return tf.cast(y, tf.float32) / (x_scale * w_scale)

    print("| rows | kernel | graph ms/call | XLA ms/call |")
    print("|---|---|---|---|")
    for rows in args.rows:
        x = tf.constant(rng.normal(size=[rows, args.d_in]).astype(np.float32))
        for name, step in (("float32", float_step), ("int8 (Keras' path)", int8_step)):
            cells = []
            for jit in (False, True):
                @tf.function(jit_compile=jit, autograph=False)
                def loop(x, step=step):
                    def body(i, h):
                        # feed a slice of the output back, so no call can be skipped
                        return i + 1, h + 1e-3 * step(h)[:, :args.d_in]
                    return tf.while_loop(lambda i, h: i < args.steps, body, (0, x))[1]
                loop(x).numpy()
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    loop(x).numpy()
                    times.append((time.perf_counter() - start) / args.steps)
                cells.append(f"{np.median(times) * 1e3:.3f}")
            print(f"| {rows} | {name} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
