"""When to compile with XLA by default: the one rule the trainer and decoding share.

On GPU and TPU, XLA always. On CPU it depends on the work: a training step's large matmuls run
faster in TensorFlow's graph executor (oneDNN spreads each over the cores), while a decoding
search of a few rows, many small steps in one loop, runs faster under XLA. BUILD_NOTES.md
("Speed") holds the measurements behind the limit.
"""

from __future__ import annotations

import tensorflow as tf

# On CPU, decoding searches of at most this many rows (batch x beams) use XLA. Larger searches
# were not measured faster, and graph mode relaxes new shapes instead of compiling each one.
CPU_XLA_MAX_ROWS = 32


def has_accelerator() -> bool:
    """Whether TensorFlow sees a GPU or a TPU."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def default_jit_compile(rows: int | None = None, quantized: bool = False) -> bool:
    """Whether to XLA-compile by default on this machine.

    Args:
      rows: a decoding search's rows (batch x beams); None for training and evaluation.
      quantized: int8 weights: TF's graph-mode int8 matmul has no fast CPU kernel, XLA's does
        (BUILD_NOTES, int8 serving).

    Returns:
      True on GPU and TPU and for int8; on CPU, only for at most CPU_XLA_MAX_ROWS rows.
    """
    if has_accelerator() or quantized:
        return True
    return rows is not None and rows <= CPU_XLA_MAX_ROWS
