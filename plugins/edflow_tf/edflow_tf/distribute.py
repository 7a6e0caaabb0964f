"""tf.distribute: logical devices, the strategy of ``tf: {strategy: ...}``, and running a step on every replica."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import tensorflow as tf
from edcore.errors import ConfigError

_strategies: dict[str, Any] = {}  # one strategy per process: a second MirroredStrategy would mirror anew


def configure_devices(settings: Mapping) -> None:
    """Split the CPU into ``logical_cpus`` devices; only possible before TensorFlow has made its devices."""
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
        raise ConfigError(
            f"tf: {{logical_cpus: {count}}} cannot be applied: TensorFlow has already made its devices ({err}). "
            f"Create no tensors or variables when your modules are imported."
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
