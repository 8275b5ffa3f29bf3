"""Model FLOPs per step (for MFU) and the peak FLOP/s it refers to: given, or measured once per
machine and cached."""

from __future__ import annotations

import math
import os
import platform
import time

import tensorflow as tf

from t5core import file_reads
from t5core.errors import T5CoreError
from t5core.file_writes import make_dirs, write_json


def training_flops(config, batch_size, inputs_length, targets_length,
                   decoder: bool = True) -> float:
    """About 6 x parameters x tokens per stack (forward + backward), plus attention matmuls;
    each projection charged to the tokens it runs over (cross-attention's keys and values:
    the encoder's). decoder=False: the encoder alone (a classifier head's model)."""
    d, inner, ff = config.d_model, config.inner_dim, config.d_ff
    ffn = (3 if config.is_gated else 2) * d * ff
    layers, dec_layers = config.num_layers, config.num_decoder_layers if decoder else 0
    # Per encoder token: its own blocks, and every decoder layer's cross-attention keys/values.
    enc_params = layers * (4 * d * inner + ffn) + dec_layers * 2 * d * inner
    # Per decoder token: self-attention (4), cross-attention queries and output (2), the output
    # projection.
    dec_params = dec_layers * (6 * d * inner + ffn) + config.vocab_size * d if decoder else 0
    enc_tokens = batch_size * inputs_length
    dec_tokens = batch_size * targets_length
    # Scores and context: 2 matmuls of 2*Q*K*inner flops each, x3 for the backward pass.
    attention = 3 * 4 * batch_size * inner * (
        layers * inputs_length ** 2
        + dec_layers * (targets_length ** 2 + targets_length * inputs_length))
    return 6.0 * (enc_params * enc_tokens + dec_params * dec_tokens) + attention


def accelerators(strategy) -> int:
    """How many devices' peaks a step's FLOPs run on: each replica's own GPU or TPU core, but
    CPU replicas of one worker share its cores, so a CPU worker counts once."""
    try:
        local = strategy.extended.worker_devices
    except (RuntimeError, NotImplementedError):  # the default strategy: one device
        return 1
    if all(tf.DeviceSpec.from_string(d).device_type == "CPU" for d in local):
        return max(1, strategy.num_replicas_in_sync // max(1, len(local)))
    return strategy.num_replicas_in_sync


def measure_matmul_peak(dtype=tf.float32, n=2048, seconds=1.0, jit_compile=False) -> float:
    """Measured FLOP/s of a square matmul on the default device (the peak an MFU refers to)."""
    a = tf.cast(tf.random.normal([n, n]), dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x), jit_compile=jit_compile)
    matmul(a).numpy()  # compile and warm up
    runs, start = 0, time.perf_counter()
    while True:
        matmul(a).numpy()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and runs >= 2:
            return 2.0 * n ** 3 * runs / elapsed


# The --peak_flops value that measures this machine's peak (once; later runs read the cache).
AUTO = "auto"
_CACHE_FILE = "peak_flops.json"


def parse_peak_flops(value) -> float | str | None:
    """--peak_flops as given: None (no MFU), AUTO, or a FLOP/s number > 0; else ValueError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected 'auto' or a FLOP/s number such as 4.7e11, got "
                         f"{value!r}") from None
    if number == 0:  # 0 is what older configs wrote for "not given"
        return None
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"must be 'auto' or a finite number > 0 (got {value})")
    return number


def peak_cache_path() -> str:
    """Where measured peaks are kept, one per machine and dtype ($XDG_CACHE_HOME or ~/.cache)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "t5core", _CACHE_FILE)


def _machine_key(dtype) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    device = "CPU"
    if gpus:
        device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"{platform.node()}|{device}|{tf.as_dtype(dtype).name}"


def _read_cache(path: str) -> dict:
    try:
        cache = file_reads.read_json(path)
    except T5CoreError:  # absent, unreadable or not JSON: measure again and rewrite it
        return {}
    return cache if isinstance(cache, dict) else {}


def resolve_peak_flops(value, dtype, log=print) -> float | None:
    """The peak FLOP/s for MFU, or None (said once through `log`). AUTO reads this machine's
    cached measurement, benchmarking only the first time."""
    setting = parse_peak_flops(value)
    if setting is None:
        log("MFU is not reported: pass --peak_flops=auto to measure this machine's peak (once, "
            "cached) or --peak_flops=<FLOP/s>.")
        return None
    if setting != AUTO:
        return setting
    path, key = peak_cache_path(), _machine_key(dtype)
    cache = _read_cache(path)
    cached = cache.get(key)
    if isinstance(cached, (int, float)) and cached > 0 and math.isfinite(cached):
        return float(cached)
    peak = measure_matmul_peak(dtype, seconds=0.5)
    log(f"Measured a matmul peak of {peak:.3g} FLOP/s; cached in {path} for later runs.")
    make_dirs(os.path.dirname(path))
    write_json(path, {**cache, key: peak}, indent=1, sort_keys=True)
    return peak
