"""Choosing a tf.distribute strategy, fed one global batch per step from a plain (checkpointable)
tf.data iterator; each replica slices its rows inside `strategy.run`."""

from __future__ import annotations

import tensorflow as tf

from t5core.training.clusters import STRATEGY_OF, make_resolver, worker_count

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def configure_cpu_devices(count: int) -> None:
    """Splits the CPU into `count` logical devices; must run before TensorFlow touches a device."""
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as err:
        raise RuntimeError(
            f"Cannot split the CPU into {count} devices: TensorFlow was already initialised "
            f"({err}). Configure devices before building models.") from None


def make_strategy(name: str = "auto", tpu: str | None = None, num_cpu_devices: int = 1,
                  cluster_resolver: str = "tf_config", port_base: int = 8888):
    """A strategy by name. auto: TPU if --tpu or cluster_resolver="tpu", multi-worker if
    "slurm", mirrored over GPUs or split CPUs, else one device. `cluster_resolver` finds the
    other workers (`t5core.training.clusters`); port_base: a Slurm node's first port."""
    configure_cpu_devices(num_cpu_devices)
    if name == "auto" and cluster_resolver != "tf_config":
        name = STRATEGY_OF[cluster_resolver]  # before a device lookup starts TensorFlow's runtime
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if tpu:
            name = "tpu"
        elif len(gpus) > 1 or num_cpu_devices > 1:
            name = "mirrored"
        else:
            name = "one_device"
    if name == "tpu":
        resolver = make_resolver("tpu", tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker":
        resolver = make_resolver(cluster_resolver, port_base=port_base)
        # Nothing may touch TensorFlow's devices before this: collectives are set up first.
        return tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver,
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING))
    devices = [d.name for d in (tf.config.list_logical_devices("GPU")
                                or tf.config.list_logical_devices("CPU"))]
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.MirroredStrategy(devices)


def worker_info(strategy) -> tuple[int, int]:
    """(number of workers, this worker's index); (1, 0) outside multi-worker training."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver:
        return worker_count(resolver), resolver.task_id or 0
    return 1, 0


def is_chief(strategy) -> bool:
    return worker_info(strategy)[1] == 0


def all_workers_agree(strategy, value: bool) -> bool:
    """True when `value` is True on every worker (all call it at the same point), so workers act
    on what one found instead of waiting in a collective for one that gave up."""
    if worker_info(strategy)[0] == 1:
        return value
    # Collectives sum or average, so count the workers that disagree.
    per_replica = strategy.run(lambda: tf.constant(0.0 if value else 1.0))
    return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None) == 0)


def replica_slice(features: dict, num_replicas: int) -> dict:
    """This replica's rows of the global batch (inside strategy.run): every worker builds the
    same batch from the same seed, so any device count computes what one device does."""
    if num_replicas == 1:
        return features
    replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
    return {key: batch_slice(value, replica_id, num_replicas) for key, value in features.items()}


def batch_slice(value, index, count):
    """Rows `index` of `count` equal slices of `value`'s batch; a batch of a known size that
    does not split evenly is refused, since its remainder would be dropped unseen."""
    if count == 1:
        return value
    rows = value.shape[0]
    if rows is not None and rows % count:
        raise ValueError(f"a batch of {rows} rows does not split into {count} equal slices "
                         "(replicas or accumulation steps): its last rows would be lost")
    size = tf.shape(value)[0] // count
    return value[index * size:(index + 1) * size]
