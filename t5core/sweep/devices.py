"""Where each of N concurrent trials runs: a GPU each, or a disjoint share of the CPU cores."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys


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


def _cpu_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class SlotPlan:
    """Environment and CPU affinity for trial slot i of `parallel`.

    One slot: nothing changes (the trial sees every device, e.g. for a mirrored strategy). With
    GPUs, the GPUs are split into `parallel` groups (4 GPUs, 2 slots: "0,1" and "2,3"); with more
    slots than GPUs, slot i gets GPU i mod #GPUs and memory growth, else two TensorFlow processes
    would each reserve the whole GPU. Without GPUs the CPU cores are split into disjoint groups
    (pinned with sched_setaffinity) so concurrent trials do not fight over the same cores.
    """

    def __init__(self, parallel: int, gpus: list[str] | None = None):
        if parallel < 1:
            raise ValueError(f"--parallel must be >= 1 (got {parallel})")
        self.parallel = parallel
        self.gpus = visible_gpus() if gpus is None else list(gpus)
        self.gpu_groups = _split(self.gpus, parallel) if parallel > 1 and self.gpus else []
        cores = _cpu_cores()
        self.core_groups = _split(cores, parallel) if parallel > 1 and not self.gpus else []

    def describe(self, slot: int) -> str:
        if self.gpu_groups:
            return f"GPU {','.join(self.gpu_groups[slot])}"
        if self.core_groups:
            return f"CPU cores {','.join(map(str, self.core_groups[slot]))}"
        return "all devices"

    def env(self, slot: int) -> dict:
        env = {}
        if self.gpu_groups:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpu_groups[slot])
            if self.parallel > len(self.gpus):
                env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        elif self.core_groups:
            env["CUDA_VISIBLE_DEVICES"] = ""
            env["TF_NUM_INTRAOP_THREADS"] = str(len(self.core_groups[slot]))
            env["TF_NUM_INTEROP_THREADS"] = "1"
        return env

    def preexec(self, slot: int):
        """Runs in the child before exec: pin its cores; die with the sweep (Linux)."""
        cores = self.core_groups[slot] if self.core_groups else None
        parent = os.getpid()

        def fn():
            if cores and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, cores)
            _die_with_parent(parent)

        return fn


def _load_prctl():
    # Looked up in the parent: dlopen in a child forked from a multi-threaded process (TensorFlow
    # runs threads) could deadlock on a loader lock held by another thread at fork time.
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> None:
    # A sweep killed with SIGKILL cannot stop its trials; PR_SET_PDEATHSIG has the kernel send
    # them SIGTERM instead, so a restarted sweep never finds an orphan still writing a model_dir.
    if _PRCTL is None:
        return
    _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
