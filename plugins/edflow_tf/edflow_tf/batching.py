"""Batches through tf.data: the epoch order of ``edcore.batching.epoch_indices``, parallel loading, prefetching, and
a resumed epoch that starts at the exact next example by index (nothing before it is loaded)."""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np
import tensorflow as tf
from edcore.batching import announce_epoch, batches_per_epoch, check_dataset, collate, epoch_indices, get_example
from edcore.errors import DataError, EdflowError, UserCodeError, describe_exception


class ExampleSpec:
    """The keys, dtypes and shapes of the first example; every other example must match them to be batched."""

    def __init__(self, example: Mapping, index: int, name: str) -> None:
        self.first_example = example
        self.first_index = index
        self.name = name
        self.paths = []  # key paths of the leaves, nested dicts flattened in order
        self.dtypes = []
        self.shapes = []
        for path, value in _leaves(example):
            array = _as_array(value, path, index, name)
            self.paths.append(path)
            self.dtypes.append(tf.as_dtype(array.dtype) if array.dtype.kind != "U" else tf.string)
            self.shapes.append(array.shape)

    def flatten(self, example: Mapping, index: int) -> list:
        """The example's leaves in the spec's order, checked against the first example."""
        leaves = dict(_leaves(example))
        if list(leaves) != self.paths:
            collate([self.first_example, example], [self.first_index, index], self.name)  # names the keys
        arrays = []
        for path, shape in zip(self.paths, self.shapes):
            array = _as_array(leaves[path], path, index, self.name)
            if array.shape != shape:
                collate([self.first_example, example], [self.first_index, index], self.name)  # names the shapes
            arrays.append(array.astype(object) if array.dtype.kind == "U" else array)
        return arrays

    def unflatten(self, tensors: list) -> dict:
        """The nested dict of tensors of one example (or batch)."""
        nested: dict = {}
        for path, tensor in zip(self.paths, tensors):
            target = nested
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = tensor
        return nested


def _leaves(example: Mapping, prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    for key, value in example.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _as_array(value: Any, path: tuple, index: int, name: str) -> np.ndarray:
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()  # a tf.Tensor or torch tensor from the user's dataset
    array = np.asarray(value)
    if array.dtype.kind not in "biufU" and array.dtype != object:
        raise DataError(f"{name}: key '{'/'.join(map(str, path))}' of example {index} is a {type(value).__name__}, "
                        f"which tf.data cannot batch; use numbers, strings or numpy arrays.")
    return array


class TFBatches:
    """``edflow_batches`` for TensorFlow iterators: a ``tf.data`` pipeline per epoch, from a start batch on."""

    def __init__(self, dataset: Any, batch_size: int, *, seed: int, shuffle: bool, drop_last: bool,
                 settings: Mapping, name: str = "dataset") -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.name = name
        self.num_examples = check_dataset(dataset, name, batch_size, drop_last)
        self.length = batches_per_epoch(self.num_examples, batch_size, drop_last)
        self.spec = ExampleSpec(get_example(dataset, 0, name), 0, name)
        parallel = settings["num_parallel_calls"]
        self.num_parallel_calls = tf.data.AUTOTUNE if parallel == "auto" else parallel
        prefetch = settings["prefetch"]
        self.prefetch = tf.data.AUTOTUNE if prefetch == "auto" else prefetch
        self._error: BaseException | None = None  # the user's error behind a failed tf.data step

    def __len__(self) -> int:
        return self.length

    def indices(self, epoch: int, start: int = 0) -> np.ndarray:
        """The example indices of ``epoch`` from batch ``start`` on."""
        order = epoch_indices(self.num_examples, self.seed, epoch, self.shuffle)
        return order[start * self.batch_size:]

    def _load_batch(self, indices: np.ndarray) -> list:
        """The examples ``indices``, stacked per leaf in the spec's order and dtypes."""
        try:
            columns: list = [[] for _ in self.spec.paths]
            for index in indices.tolist():
                for column, array in zip(columns, self.spec.flatten(get_example(self.dataset, index, self.name),
                                                                    index)):
                    column.append(array)
            return [np.stack(column) if dtype == tf.string else np.stack(column).astype(dtype.as_numpy_dtype,
                                                                                       copy=False)
                    for column, dtype in zip(columns, self.spec.dtypes)]
        except BaseException as err:
            self._error = err  # tf.data wraps it into an OpError; epoch() re-raises the original
            raise

    def pipeline(self, epoch: int, start: int = 0) -> tf.data.Dataset:
        """The ``tf.data.Dataset`` of one epoch: batches of indices, parallel loading (order kept), prefetching.

        One ``numpy_function`` call loads a whole batch: a call per example cost about 100 µs of crossing into
        Python each, ten times what a step of the tiny MLP costs (benchmarks/user_path.py --tf)."""
        spec = self.spec
        rows = self.batch_size if self.drop_last else None

        def load(indices: tf.Tensor) -> list:
            tensors = tf.numpy_function(self._load_batch, [indices], spec.dtypes, stateful=False)
            for tensor, shape in zip(tensors, spec.shapes):
                tensor.set_shape((rows, *shape))
            return tensors

        data = tf.data.Dataset.from_tensor_slices(self.indices(epoch, start).astype(np.int64))
        data = data.batch(self.batch_size, drop_remainder=self.drop_last)
        # deterministic=True: parallel loading must not change the order, which resume relies on.
        data = data.map(load, num_parallel_calls=self.num_parallel_calls, deterministic=True)
        data = data.map(lambda *tensors: spec.unflatten(list(tensors)))
        if self.prefetch:
            data = data.prefetch(self.prefetch)
        return data

    def epoch(self, epoch: int, start: int = 0) -> Iterator[dict]:
        """The batches of ``epoch`` from batch ``start`` on, as dicts of ``tf.Tensor`` on the CPU."""
        self._error = None
        announce_epoch(self.dataset, epoch, self.name)  # tf.data loads in threads of this process
        iterator = iter(self.pipeline(epoch, start))
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except tf.errors.OpError as err:
                raise self._explain(err) from None
            yield batch

    def _explain(self, err: tf.errors.OpError) -> BaseException:
        original, self._error = self._error, None
        if isinstance(original, EdflowError):
            return original
        if original is not None:
            return UserCodeError(f"loading a batch of '{self.name}' failed: {describe_exception(original)}")
        return DataError(f"tf.data could not make a batch of '{self.name}': {err.message}")

    def close(self) -> None:
        pass
