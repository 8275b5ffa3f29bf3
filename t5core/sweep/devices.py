"""Where each of N concurrent trials runs: a GPU group each, or a disjoint share of the CPU cores
(the split: docs/architecture.md, Sweep devices).
"""

from __future__ import annotations

import os
import shutil
import subprocess


def visible_gpus() -> list[str]:
    """GPU ids trials may use: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def _split(items: list, parts: int) -> list[list]:
    """`parts` disjoint equal groups of items; with fewer items than parts, shared singletons."""
    if len(items) >= parts:
        size = len(items) // parts
        return [items[i * size:(i + 1) * size] for i in range(parts)]
    return [[items[i % len(items)]] for i in range(parts)]


class SlotPlan:
    """Devices, environment and CPU affinity of trial slot i of `parallel`."""

    def __init__(self, parallel: int, gpus: list[str] | None = None):
        self.parallel = parallel
        self.gpus = visible_gpus() if gpus is None else list(gpus)
        self.gpu_groups = _split(self.gpus, parallel) if parallel > 1 and self.gpus else []
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.core_groups = _split(cores, parallel) if parallel > 1 and cores and not self.gpus \
            else []

    def describe(self, slot: int) -> str:
        if self.gpu_groups:
            return f"GPU {','.join(self.gpu_groups[slot])}"
        if self.core_groups:
            return f"CPU cores {','.join(map(str, self.core_groups[slot]))}"
        return "all devices"

    def env(self, slot: int) -> dict:
        if self.gpu_groups:
            growth = {"TF_FORCE_GPU_ALLOW_GROWTH": "true"} if self.parallel > len(self.gpus) \
                else {}
            return {"CUDA_VISIBLE_DEVICES": ",".join(self.gpu_groups[slot]), **growth}
        if self.core_groups:
            return {"CUDA_VISIBLE_DEVICES": "", "TF_NUM_INTEROP_THREADS": "1",
                    "TF_NUM_INTRAOP_THREADS": str(len(self.core_groups[slot]))}
        return {}

    def popen(self, slot: int, cmd: list[str], **kwargs) -> subprocess.Popen:
        """Starts a trial on the slot's cores: a child inherits its starting thread's affinity,
        so this thread takes the cores for the start (preexec_fn is unsafe with threads)."""
        if not self.core_groups:
            return subprocess.Popen(cmd, **kwargs)
        own = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.core_groups[slot])
        try:
            return subprocess.Popen(cmd, **kwargs)
        finally:
            os.sched_setaffinity(0, own)
