"""The edflow plugin of the TensorFlow backend (entry point ``tf`` of group ``edflow``).

It acts only for iterators derived from ``edflow_tf.TemplateIterator`` and imports tensorflow only then, so runs of
other backends do not pay TensorFlow's import time (seconds) or its memory.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator, Mapping

from edcore import hookimpl
from edcore.references import iterator_derives_from

from edflow_tf.settings import SCHEMA, tf_settings


def uses_tf(config: Mapping) -> bool:
    """Whether the config's iterator is a TensorFlow TemplateIterator (already imported by edcore's name check)."""
    return iterator_derives_from(config, "edflow_tf.iterator", "TemplateIterator")


class TFPlugin:
    """Batches, feeds-to-tensor conversion, seeding, devices and the distribution strategy for TF iterators."""

    def __init__(self) -> None:
        self.device: str | None = None
        self.float_dtype: Any = None
        self.distributed: Any = None

    @hookimpl
    def edflow_config_schema(self):
        return {"tf": SCHEMA}

    @hookimpl
    def edflow_check_config(self, config, where):
        """Devices of TensorFlow configs, judged by TensorFlow on this machine before the run folder."""
        if not uses_tf(config):
            return
        from edflow_tf.settings import check_settings

        check_settings(tf_settings(config), where)

    @hookimpl
    def edflow_distributed(self, config):
        """Workers of ``tf: {strategy: multi_worker_mirrored}`` with a ``TF_CONFIG`` of several tasks."""
        if not uses_tf(config) or tf_settings(config)["strategy"] != "multi_worker_mirrored":
            return None
        from edflow_tf.distribute import TFDistributed, cluster_from_environment, configure_devices, make_strategy

        cluster = cluster_from_environment()
        if cluster is None:
            return None
        settings = tf_settings(config)
        configure_devices(settings)
        self.distributed = TFDistributed(make_strategy(settings), *cluster)
        return self.distributed

    @hookimpl
    def edflow_seed(self, seed, config):
        if not uses_tf(config):
            return
        from edflow_tf.distribute import configure_devices, make_strategy
        from edflow_tf.settings import quiet_python_loggers

        quiet_python_loggers()
        settings = tf_settings(config)
        configure_devices(settings)  # before anything creates a tensor: devices are fixed from then on
        if settings["strategy"] != "default":
            make_strategy(settings)  # MultiWorkerMirroredStrategy must exist before the first operation
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed % 2**32)
        # The global generator is part of every checkpoint; a fresh one per run makes it a function of the seed.
        tf.random.set_global_generator(tf.random.Generator.from_seed(seed))
        if settings["deterministic"]:
            tf.config.experimental.enable_op_determinism()

    @hookimpl
    def edflow_to_numpy(self, value):
        """Logged tf tensors and variables as numpy arrays (bfloat16 as float32, which numpy can map)."""
        if not type(value).__module__.startswith("tensorflow") or "tensorflow" not in sys.modules:
            return None
        import tensorflow as tf

        if not isinstance(value, (tf.Tensor, tf.Variable)):
            return None
        if value.dtype == tf.bfloat16:
            value = tf.cast(value, tf.float32)
        return value.numpy()  # a copy or an immutable tensor's buffer: the next step cannot change it

    @hookimpl
    def edflow_batches(self, dataset, config, mode):
        if not uses_tf(config):
            return None
        from edflow_tf.batching import TFBatches

        training = mode == "train"
        return TFBatches(
            dataset, config["batch_size"], seed=config.get("seed") or 0,
            shuffle=training and config.get("shuffle", True), drop_last=training and config.get("drop_last", False),
            settings=tf_settings(config), name=str(config.get("dataset")),
        )

    # Model and iterator are made inside the strategy's scope and on the device, so that the variables they
    # create in __init__ (weights, optimizers) are mirrored and placed without user code.
    @hookimpl(wrapper=True)
    def edflow_model(self, config):
        with self._placement(config):
            return (yield)

    @hookimpl(wrapper=True)
    def edflow_iterator(self, config, root, model, project):
        with self._placement(config):
            return (yield)

    @contextlib.contextmanager
    def _placement(self, config: Mapping) -> Iterator[None]:
        if not uses_tf(config):
            yield
            return
        from edflow_tf.distribute import make_strategy
        from edflow_tf.settings import resolve_device
        import tensorflow as tf

        settings = tf_settings(config)
        strategy = make_strategy(settings)
        if settings["strategy"] != "default":
            with strategy.scope():
                yield
        else:
            with tf.device(resolve_device(settings["device"])):
                yield

    @hookimpl
    def edflow_before_training(self, iterator):
        self._activate(iterator)

    @hookimpl
    def edflow_before_evaluation(self, iterator, global_step, eval_dir):
        self._activate(iterator)

    def _activate(self, iterator: Any) -> None:
        if "edflow_tf.iterator" not in sys.modules:
            return  # no TensorFlow iterator can exist
        from edflow_tf.iterator import TemplateIterator

        if isinstance(iterator, TemplateIterator):
            import tensorflow as tf

            self.device = iterator.device
            dtype = tf_settings(iterator.config)["float_dtype"]
            self.float_dtype = None if dtype == "keep" else tf.as_dtype(dtype)

    @hookimpl(tryfirst=True)
    def edflow_before_step(self, feeds):
        """Turn the feeds into ``tf.Tensor``s on the iterator's device; tensors already there are not copied."""
        if self.device is not None:
            to_tensors(feeds, self.device, self.float_dtype)

    @hookimpl
    def edflow_after_training(self, iterator, status):
        self.device = None


def to_tensors(feeds: dict, device: str, float_dtype: Any) -> None:
    """Convert the numpy arrays and tensors of a (nested) dict in place."""
    import numpy as np
    import tensorflow as tf

    place = device.split("device:")[-1]
    # Batches from tf.data arrive as tensors already on the CPU: then there is nothing to do, and entering and
    # leaving tf.device would cost 7 of the 11 us this hook took per step (benchmarks/README.md, workload 1).
    if not _needs_conversion(feeds, place, float_dtype, tf, np):
        return
    with tf.device(device):
        _convert(feeds, place, float_dtype, tf, np)


def _needs_conversion(feeds: dict, place: str, float_dtype: Any, tf: Any, np: Any) -> bool:
    for value in feeds.values():
        if isinstance(value, tf.Tensor):
            if (float_dtype is not None and value.dtype == tf.float64) or not value.device.endswith(place):
                return True
        elif isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf":
                return True
        elif isinstance(value, dict) and _needs_conversion(value, place, float_dtype, tf, np):
            return True
    return False


def _convert(feeds: dict, place: str, float_dtype: Any, tf: Any, np: Any) -> None:
    for key, value in feeds.items():
        if isinstance(value, tf.Tensor):
            if float_dtype is not None and value.dtype == tf.float64:
                value = tf.cast(value, float_dtype)
            if not value.device.endswith(place):
                value = tf.identity(value)  # a copy onto the device
            feeds[key] = value
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            if float_dtype is not None and value.dtype == np.float64:
                value = value.astype(float_dtype.as_numpy_dtype)
            feeds[key] = tf.convert_to_tensor(value)
        elif isinstance(value, dict):
            _convert(value, place, float_dtype, tf, np)
