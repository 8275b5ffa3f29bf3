"""Where the time of a training step or a decoding call goes, kernel by kernel.

`profile_train_step` and `profile_generate` trace a few calls with TensorFlow's profiler, read
the trace (an XPlane protobuf) and add up the time of every kernel: TF ops run by the graph
executor (events named "scope/name:Type": `_MklMatMul`, `Cast`, ...) and the thunks of XLA
programs (`dot.12`, `add_fusion`, ...: events inside a thunk executor's span). Wrappers and waits
(an XLA program's launch, a thread pool's await) are left out, so every microsecond is a
kernel's.

With one thread (`tf.config.threading` intra/inter-op 1, the `--threads 1` of
benchmarks/profile_step.py) the kernel times add up to the CPU work of the step with no two kernels
sharing the cores, which is the clean attribution. With more threads, concurrent kernels each
count their own (stretched) time; comparing the kernel total with the wall time then shows how
busy the cores were.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
import time
from collections import Counter

# Events that wrap or wait for others rather than compute ("end: x" events only mark where an
# asynchronous thunk finished).
_WRAPPERS = {"ThunkExecutor::Execute", "SlinkyThreadPool::Await", "BlockUntilReady",
             "ExecuteAsyncOnStream", "Execute", "Process", "Start", "ParallelFor"}
_NOT_KERNELS = ("EagerLocalExecute", "__inference", "TFE_", "KernelAndDeviceFunc")
# TF op types, and XLA thunks named after their TF op (MatMul.12).
_MATMUL_TYPES = {"MatMul", "_MklMatMul", "_MklNativeMatMul", "_MklFusedMatMul", "BatchMatMul",
                 "BatchMatMulV2", "_MklBatchMatMulV2", "BatchMatMulV3", "_MklBatchMatMulV3",
                 "Einsum", "_MklEinsum"}


def op_kind(name: str) -> str:
    """The kernel's op type: "Cast" for "scope/x/Cast:Cast", "dot" for the XLA thunk "dot.12"."""
    if ":" in name:
        return name.rsplit(":", 1)[1]
    return re.sub(r"([._]\d+)+$", "", name)


def op_category(kind: str) -> str:
    """matmul, cast, gather_scatter_addn (embedding gradients and their sums), xla_other (XLA
    fusions and other thunks), or elementwise_and_other (graph-mode elementwise ops, softmax,
    reductions, transposes)."""
    # XLA's own dots: dot.7, copy_dot_fusion.
    if kind in _MATMUL_TYPES or "dot" in kind:
        return "matmul"
    if kind == "Cast":
        return "cast"
    if kind in ("UnsortedSegmentSum", "AddN", "GatherV2", "ResourceGather"):
        return "gather_scatter_addn"
    if "fusion" in kind or kind in ("custom-call", "copy", "while", "wrapped_reduce",
                                    "wrapped_reduce-window", "wrapped_multiply", "wrapped_copy"):
        return "xla_other"
    return "elementwise_and_other"


def kernel_times(trace_dir: str) -> Counter:
    """{full event name: total milliseconds} of the kernel events in the newest trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.xplane.pb")))
    if not paths:
        raise FileNotFoundError(f"no profiler trace (*.xplane.pb) under {trace_dir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    totals: Counter = Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        names = plane.event_metadata
        for line in plane.lines:
            events = [(names[e.metadata_id].name, e.offset_ps, e.duration_ps)
                      for e in line.events]
            thunk_spans = [(start, start + length) for name, start, length in events
                           if name == "ThunkExecutor::Execute"]
            for name, start, length in events:
                if ":" in name and "::" not in name and not name.startswith("end: "):
                    kernel = not name.startswith(_NOT_KERNELS)  # a TF op: "scope/name:Type"
                else:  # an XLA thunk runs inside its executor's span
                    kernel = (name not in _WRAPPERS and not name.startswith("end: ")
                              and any(a <= start < b for a, b in thunk_spans))
                if kernel:
                    totals[name] += length / 1e9
    return totals


def _summarise(totals: Counter, calls: int, wall_seconds: list, top: int) -> dict:
    by_kind: Counter = Counter()
    for name, ms in totals.items():
        by_kind[op_kind(name)] += ms / calls
    by_category: Counter = Counter()
    for kind, ms in by_kind.items():
        by_category[op_category(kind)] += ms
    wall = sorted(wall_seconds)[len(wall_seconds) // 2] * 1000
    return {"calls": calls, "wall_ms": wall,
            "kernel_ms": sum(by_kind.values()),
            "by_category": dict(by_category.most_common()),
            "by_kind": dict(by_kind.most_common(top)),
            "top_ops": [(name, ms / calls) for name, ms in totals.most_common(top)]}


def trace_calls(fn, calls=2, warmup=2, top=25, logdir=None) -> dict:
    """Runs `fn()` `warmup` times untraced, then `calls` times under the profiler.

    Returns {"calls", "wall_ms" (median per traced call), "kernel_ms" (per call), "by_category",
    "by_kind" (op types), "top_ops" (single kernels)}, all milliseconds per call.
    """
    import tensorflow as tf

    for _ in range(warmup):
        fn()
    with tempfile.TemporaryDirectory() as scratch:
        logdir = logdir or scratch
        walls = []
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                walls.append(time.perf_counter() - start)
        finally:
            tf.profiler.experimental.stop()
        return _summarise(kernel_times(logdir), calls, walls, top)


def profile_train_step(config, precision="float32", jit_compile=False, batch_size=8,
                       inputs_length=256, targets_length=64, **kwargs) -> dict:
    """`trace_calls` of the benchmark's AdamW training step on random full rows."""
    from speed import synthetic_batch, t5core_train_step

    step, features = t5core_train_step(config, precision, jit_compile, synthetic_batch(
        config.vocab_size, batch_size, inputs_length, targets_length))
    return trace_calls(lambda: float(step(features)["loss"]), **kwargs)


def profile_generate(model, method="greedy", batch_size=32, num_beams=4, input_length=64,
                     new_tokens=32, jit_compile=True, seed=0, **kwargs) -> dict:
    """`trace_calls` of `generate` with EOS disabled (every row decodes `new_tokens`)."""
    import numpy as np

    from t5core.decoding.generation import generate

    tokens = np.random.default_rng(seed).integers(
        2, min(32000, model.config.vocab_size), size=[batch_size, input_length]).astype(np.int32)
    return trace_calls(lambda: generate(model, tokens, new_tokens, method=method,
                                        num_beams=num_beams, jit_compile=jit_compile,
                                        eos_id=-1)[0].numpy(), **kwargs)


def format_profile(result: dict, title: str = "") -> str:
    """Markdown: wall and kernel time per call, then categories, op types and single kernels."""
    lines = [f"### {title}" if title else "",
             f"wall {result['wall_ms']:.1f} ms per call; kernels {result['kernel_ms']:.1f} ms "
             f"per call (over {result['calls']} traced calls)", "",
             "| category | ms per call | share of kernel time |", "|---|---|---|"]
    total = result["kernel_ms"] or 1.0
    for name, ms in result["by_category"].items():
        lines.append(f"| {name} | {ms:.1f} | {ms / total:.0%} |")
    lines += ["", "| op type | ms per call |", "|---|---|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in result["by_kind"].items()]
    lines += ["", "| kernel | ms per call |", "|---|---|"]
    lines += [f"| `{name}` | {ms:.2f} |" for name, ms in result["top_ops"]]
    return "\n".join(line for line in lines if line is not None)
