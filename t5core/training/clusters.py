"""Which machines a multi-worker run spans, read by TensorFlow's own cluster resolvers.

    tf_config  TF_CONFIG: the cluster and this task, as JSON (TFConfigClusterResolver)
    slurm      a Slurm job step (srun): ranks, hosts and tasks per host from the SLURM_*
               variables, GPUs from CUDA_VISIBLE_DEVICES or nvidia-smi (SlurmClusterResolver)
    tpu        a Cloud TPU by name or grpc:// address (TPUClusterResolver)
"""

from __future__ import annotations

import os
import shutil

import tensorflow as tf

CLUSTER_RESOLVERS = ("tf_config", "slurm", "tpu")
# What SlurmClusterResolver reads: this task's rank, the step's task count, its hosts and how
# many tasks each runs. srun sets them for every task of a step.
SLURM_VARIABLES = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST",
                   "SLURM_STEP_TASKS_PER_NODE")
# The strategy each resolver builds.
STRATEGY_OF = {"tf_config": "multi_worker", "slurm": "multi_worker", "tpu": "tpu"}


def missing_environment(kind: str) -> str | None:
    """What the environment lacks for resolver `kind` (a sentence), or None."""
    if kind == "tf_config" and "TF_CONFIG" not in os.environ:
        return ("--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and "
                "task of this worker), or --cluster_resolver=slurm under srun")
    if kind == "slurm":
        missing = [name for name in SLURM_VARIABLES if name not in os.environ]
        if missing:
            return (f"--cluster_resolver=slurm needs the variables srun sets for each task; "
                    f"missing: {', '.join(missing)}")
    return None


class _SlurmResolver(tf.distribute.cluster_resolver.SlurmClusterResolver):
    """SlurmClusterResolver, also on nodes without GPUs: TensorFlow's divides a node's GPUs
    among its tasks (a zero step on a node with none); here each task gets a placeholder slot
    (for its port), CUDA_VISIBLE_DEVICES is left alone and each worker computes on its CPU."""

    def __init__(self, port_base: int):
        self._cpu_only = ("CUDA_VISIBLE_DEVICES" not in os.environ
                          and shutil.which("nvidia-smi") is None)
        if self._cpu_only:
            slots = int(os.environ["SLURM_STEP_NUM_TASKS"])  # >= the tasks on any one node
            super().__init__(port_base=port_base, gpus_per_node=slots, gpus_per_task=1,
                             auto_set_gpu=False)
        else:
            super().__init__(port_base=port_base)

    def num_accelerators(self, task_type=None, task_id=None, config_proto=None):
        if self._cpu_only:
            return {}
        return super().num_accelerators(task_type, task_id, config_proto)


def make_resolver(kind: str, tpu: str | None = None, port_base: int = 8888):
    """TensorFlow's cluster resolver of `kind` (one of CLUSTER_RESOLVERS); `port_base` is a
    node's first Slurm task's port. The environment was checked by `RunOptions.check`."""
    if kind == "slurm":
        return _SlurmResolver(port_base)
    if kind == "tpu":
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def worker_count(resolver) -> int:
    """The workers of the resolver's cluster."""
    return len(resolver.cluster_spec().as_dict().get("worker", [])) or 1
