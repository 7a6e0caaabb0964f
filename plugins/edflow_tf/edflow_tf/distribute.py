"""tf.distribute: logical devices, the strategy of ``tf: {strategy: ...}``, and running a step on every replica."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import tensorflow as tf
from edcore.errors import ConfigError

_strategies: dict[str, Any] = {}  # one strategy per process: a second MirroredStrategy would mirror anew


def configure_devices(settings: Mapping, where: str = "") -> None:
    """Split the CPU into ``logical_cpus`` devices; only possible before TensorFlow has made its devices.

    ``where`` (``train.yaml:9, key 'tf/logical_cpus'``) is put in front of the error."""
    count = settings.get("logical_cpus")
    if not count:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError as err:
        prefix = f"{where}: " if where else ""
        raise ConfigError(
            f"{prefix}tf: {{logical_cpus: {count}}} cannot be applied: TensorFlow has already made its devices "
            f"({err}). Create no tensors or variables when your modules are imported."
        ) from err


def make_strategy(settings: Mapping) -> Any:
    """The process's ``tf.distribute.Strategy`` for ``tf: {strategy: ...}`` (made once, then reused)."""
    name = settings["strategy"]
    if name not in _strategies:
        if name == "default":
            _strategies[name] = tf.distribute.get_strategy()
        elif name == "mirrored":
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
            _strategies[name] = tf.distribute.MirroredStrategy(devices=devices)
        elif name == "multi_worker_mirrored":
            # The cluster comes from the TF_CONFIG environment variable of each worker (see the README).
            _strategies[name] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            raise ConfigError(f"tf: {{strategy: {name}}} is not a known strategy; use default, mirrored or "
                              f"multi_worker_mirrored.")
    return _strategies[name]


def split_for_replicas(strategy: Any, tensors: Any) -> Any:
    """Distribute a batch (a nested structure of tensors) over the replicas: replica ``i`` gets the ``i``-th
    contiguous part along the first axis."""
    count = strategy.num_replicas_in_sync

    def part(context: Any) -> dict:
        replica = context.replica_id_in_sync_group
        return tf.nest.map_structure(lambda t: _slice(t, replica, count), tensors)

    return strategy.experimental_distribute_values_from_function(part)


def _slice(tensor: Any, replica: int, count: int) -> Any:
    if not isinstance(tensor, tf.Tensor) or tensor.shape.rank == 0:
        return tensor
    size = tf.shape(tensor)[0]
    begin, end = (size * replica) // count, (size * (replica + 1)) // count
    return tensor[begin:end]


def run_on_replicas(strategy: Any, function: Callable, inputs: Any) -> Any:
    """Run ``function(*args, **kwargs)`` on every replica with its part of ``inputs`` (``{"args": ..., "kwargs":
    ...}`` from :func:`split_for_replicas`) and average the (nested) tensors it returns over the replicas."""
    results = strategy.run(lambda part: function(*part["args"], **part["kwargs"]), args=(inputs,))
    return tf.nest.map_structure(lambda value: _reduce_mean(strategy, value), results)


def _reduce_mean(strategy: Any, value: Any) -> Any:
    if isinstance(value, (tf.Tensor, tf.Variable)) or hasattr(value, "values"):
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
    return value


# ---------------------------------------------------------------------------------------------------------------
# Workers on several machines: edcore's process-group contract on top of MultiWorkerMirroredStrategy

BROADCAST_BYTES = 4096  # a run folder's path, and whatever else rank 0 shares, fits


def cluster_from_environment() -> tuple[int, int] | None:
    """(rank, number of workers) from ``TF_CONFIG``; None unless it describes more than one task."""
    import json
    import os

    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        rank = int(task.get("index", 0)) + (len(chiefs) if task["type"] == "worker" else 0)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"the environment variable TF_CONFIG is not a cluster description ({err}): expected "
                          f"{{\"cluster\": {{\"worker\": [\"host:port\", ...]}}, \"task\": {{\"type\": \"worker\", "
                          f"\"index\": 0}}}}.") from err
    world_size = len(chiefs) + len(workers)
    return (rank, world_size) if world_size > 1 else None


class TFDistributed:
    """The workers of a MultiWorkerMirroredStrategy (edcore's ``edflow_distributed`` contract): rank 0 (the chief,
    or worker 0) writes the run folder, logs and checkpoints; the others share its decisions through all-reduces."""

    def __init__(self, strategy: Any, rank: int, world_size: int) -> None:
        self.strategy = strategy
        self.rank = rank
        self.world_size = world_size

    def _sum(self, values: Any) -> Any:
        per_replica = self.strategy.run(lambda: tf.identity(values))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def broadcast(self, obj: Any) -> Any:
        import json

        payload = json.dumps(obj).encode() if self.rank == 0 else b""
        if len(payload) > BROADCAST_BYTES:
            raise ValueError(f"cannot share {len(payload)} bytes between workers (at most {BROADCAST_BYTES})")
        buffer = tf.constant(list(payload.ljust(BROADCAST_BYTES, b"\0")), dtype=tf.int32)
        replicas = self.strategy.num_replicas_in_sync // self.world_size  # local replicas add rank 0's bytes too
        received = bytes((self._sum(buffer).numpy() // max(replicas, 1)).astype("uint8").tolist())
        return json.loads(received.rstrip(b"\0").decode())

    def barrier(self) -> None:
        self._sum(tf.constant(0.0))

    def all_reduce_mean(self, scalars: Mapping[str, float]) -> dict:
        if not scalars:
            return dict(scalars)
        names = sorted(scalars)
        values = tf.constant([float(scalars[name]) for name in names], dtype=tf.float64)
        total = self._sum(values) / float(self.strategy.num_replicas_in_sync)
        return dict(zip(names, total.numpy().tolist()))

    def close(self) -> None:
        pass
