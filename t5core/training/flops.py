"""Model FLOPs per step (for MFU) and a measured matmul peak of this machine."""

from __future__ import annotations

import time

import tensorflow as tf


def training_flops(config, batch_size, inputs_length, targets_length) -> float:
    """About 6 x parameters x tokens per stack (forward + backward), plus attention matmuls."""
    d, inner, ff = config.d_model, config.inner_dim, config.d_ff
    ffn = (3 if config.is_gated else 2) * d * ff
    enc_params = config.num_layers * (4 * d * inner + ffn)
    dec_params = config.num_decoder_layers * (8 * d * inner + ffn) + config.vocab_size * d
    enc_tokens = batch_size * inputs_length
    dec_tokens = batch_size * targets_length
    # Scores and context: 2 matmuls of 2*Q*K*inner flops each, x3 for the backward pass.
    attention = 3 * 4 * batch_size * inner * (
        config.num_layers * inputs_length ** 2
        + config.num_decoder_layers * (targets_length ** 2 + targets_length * inputs_length))
    return 6.0 * (enc_params * enc_tokens + dec_params * dec_tokens) + attention


def measure_matmul_peak(dtype=tf.float32, n=2048, seconds=1.0, jit_compile=False) -> float:
    """Measured FLOP/s of a square matmul on the default device (the peak an MFU refers to)."""
    a = tf.random.normal([n, n], dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x), jit_compile=jit_compile)
    matmul(a).numpy()  # compile and warm up
    runs, start = 0, time.perf_counter()
    while True:
        matmul(a).numpy()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and runs >= 2:
            return 2.0 * n ** 3 * runs / elapsed
