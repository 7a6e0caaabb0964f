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
        self.to_tensors: FeedConverter | None = None  # while a TF iterator trains or evaluates
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

            dtype = tf_settings(iterator.config)["float_dtype"]
            self.to_tensors = FeedConverter(iterator.device, None if dtype == "keep" else tf.as_dtype(dtype))

    @hookimpl(tryfirst=True)
    def edflow_before_step(self, feeds):
        """Turn the feeds into ``tf.Tensor``s on the iterator's device; tensors already there are not copied."""
        if self.to_tensors is not None:
            self.to_tensors(feeds)

    @hookimpl
    def edflow_after_training(self, iterator, status):
        self.to_tensors = None


def to_tensors(feeds: dict, device: str, float_dtype: Any) -> None:
    """Convert the numpy arrays and tensors of a (nested) dict in place (see :class:`FeedConverter`)."""
    FeedConverter(device, float_dtype)(feeds)


class FeedConverter:
    """Turns a step's feeds into ``tf.Tensor``s on one device, in place: numpy arrays of numbers become tensors,
    float64 becomes ``float_dtype`` (unless it is None), tensors elsewhere are copied onto the device.

    Made once per run by the plugin, this is the per-step fast path of ``edflow_before_step``: batches from tf.data
    arrive as tensors already on the CPU, and then the check is all that runs (0.9 µs for two tensors; 2.5 µs with
    the modules imported and ``DType.__eq__`` called per step, 11 µs when it also entered ``tf.device``).
    """

    def __init__(self, device: str, float_dtype: Any) -> None:
        import numpy as np
        import tensorflow as tf

        self.tf, self.np = tf, np
        self.device, self.place, self.float_dtype = device, device.split("device:")[-1], float_dtype
        # TensorFlow hands out one DType object per type (EagerTensor.dtype reads its intern table), so ``is``
        # finds float64 tensors; ``==`` goes through DType.__eq__ in Python, 0.7 µs per tensor and step.
        self.float64 = tf.float64 if float_dtype is not None else None

    def __call__(self, feeds: dict) -> None:
        if self.needs_conversion(feeds):
            with self.tf.device(self.device):
                self.convert(feeds)

    def needs_conversion(self, feeds: dict) -> bool:
        tensor, array, place, float64 = self.tf.Tensor, self.np.ndarray, self.place, self.float64
        for value in feeds.values():
            if isinstance(value, tensor):
                if value.dtype is float64 or not value.device.endswith(place):
                    return True
            elif isinstance(value, array):
                if value.dtype.kind in "biuf":
                    return True
            elif isinstance(value, dict) and self.needs_conversion(value):
                return True
        return False

    def convert(self, feeds: dict) -> None:
        tf, np, float_dtype = self.tf, self.np, self.float_dtype
        for key, value in feeds.items():
            if isinstance(value, tf.Tensor):
                if float_dtype is not None and value.dtype == tf.float64:
                    value = tf.cast(value, float_dtype)
                if not value.device.endswith(self.place):
                    value = tf.identity(value)  # a copy onto the device
                feeds[key] = value
            elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                if float_dtype is not None and value.dtype == np.float64:
                    value = value.astype(float_dtype.as_numpy_dtype)
                feeds[key] = tf.convert_to_tensor(value)
            elif isinstance(value, dict):
                self.convert(value)
