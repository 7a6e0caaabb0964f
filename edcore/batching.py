"""Epoch orders that resume without replay, example checks, and the numpy fallback batches.

The order of epoch ``e`` is a function of ``(seed, e)`` alone. A resumed run therefore starts at the exact next batch
of the interrupted epoch by index arithmetic, without loading the examples before it, and the cost of resuming does
not grow with the step count. Backends (DataLoader, tf.data) use :func:`epoch_indices` so that every backend and
every rank agree on the order.
"""
from __future__ import annotations

import math
from collections import abc
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from edcore.errors import DataError, UserCodeError, describe_exception


def epoch_indices(num_examples: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The example order of one epoch: a permutation seeded by ``(seed, epoch)``, or ``0..n-1``."""
    if not shuffle:
        return np.arange(num_examples)
    return np.random.default_rng([int(seed), int(epoch)]).permutation(num_examples)


def batches_per_epoch(num_examples: int, batch_size: int, drop_last: bool, world_size: int = 1) -> int:
    """How many batches one rank sees per epoch."""
    per_rank = num_examples // world_size if drop_last else math.ceil(num_examples / world_size)
    return per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)


def rank_indices(order: np.ndarray, rank: int, world_size: int, drop_last: bool) -> np.ndarray:
    """This rank's slice of an epoch order: every ``world_size``-th example, padded by wrapping around so all
    ranks take the same number of steps (as torch's DistributedSampler does)."""
    if world_size == 1:
        return order
    if drop_last:
        order = order[: len(order) - len(order) % world_size]
    else:
        padding = (-len(order)) % world_size
        if padding:
            order = np.concatenate([order, order[:padding]])
    return order[rank::world_size]


def check_dataset(dataset: Any, name: str, batch_size: int, drop_last: bool) -> int:
    """Check that a dataset has a length, is not empty and yields at least one batch; return its length."""
    try:
        length = len(dataset)
    except TypeError as err:
        raise DataError(f"dataset '{name}' has no length: datasets need __len__ and __getitem__.") from err
    except Exception as err:
        raise UserCodeError(f"len() of dataset '{name}' raised {describe_exception(err)}") from err
    if length == 0:
        raise DataError(f"dataset '{name}' is empty (len() is 0); there is nothing to train or evaluate on.")
    if drop_last and length < batch_size:
        raise DataError(
            f"dataset '{name}' has {length} examples, fewer than batch_size {batch_size}, and drop_last is true: "
            f"every batch would be dropped. Lower batch_size or set drop_last: false."
        )
    return length


def example_error(name: str, index: int, err: BaseException) -> UserCodeError:
    """The error for a dataset that raised on example ``index``."""
    return UserCodeError(f"dataset '{name}' raised on example {index}: {describe_exception(err)}")


def get_example(dataset: Any, index: int, name: str) -> Mapping:
    """``dataset[index]``, checked to be a dict; user errors name the dataset and index."""
    try:
        example = dataset[index]
    except Exception as err:
        raise example_error(name, index, err) from err
    # type() first: this runs for every example, and isinstance against typing.Mapping costs ~2 us (benchmarks/).
    if type(example) is not dict and not isinstance(example, abc.Mapping):
        raise DataError(
            f"dataset '{name}' returned {type(example).__name__} for example {index}; examples must be dicts like "
            f"{{'image': array, 'label': 3}}."
        )
    return example


def announce_epoch(dataset: Any, epoch: int, name: str) -> None:
    """Call the dataset's optional ``set_epoch(epoch)`` (as torch's DistributedSampler has one): batches call it
    before loading the examples of an epoch, in every process that loads them, so that what a dataset draws per
    epoch (``edcore.data.RandomlyAugmented``) depends on the epoch and nothing else."""
    set_epoch = getattr(dataset, "set_epoch", None)
    if not callable(set_epoch):
        return
    try:
        set_epoch(epoch)
    except Exception as err:
        raise UserCodeError(f"dataset '{name}': set_epoch({epoch}) raised {describe_exception(err)}") from err


def collate(examples: Sequence[Mapping], indices: Sequence[int] = (), name: str = "dataset") -> dict:
    """Stack a list of example dicts into a dict of numpy arrays (nested dicts keep their structure).

    Keys must agree across examples and arrays must have equal shapes; the error names the examples that differ.
    """
    first = examples[0]
    keys = list(first)
    for position, example in enumerate(examples[1:], start=1):
        if list(example) != keys and set(example) != set(keys):
            index = indices[position] if len(indices) > position else position
            first_index = indices[0] if indices else 0
            missing = sorted(map(str, set(keys) - set(example)))
            extra = sorted(map(str, set(example) - set(keys)))
            raise DataError(
                f"{name}: example {index} has different keys than example {first_index} "
                f"(missing {missing or 'none'}, extra {extra or 'none'}); all examples must have the same keys."
            )
    batch = {}
    for key in keys:
        values = [example[key] for example in examples]
        if isinstance(values[0], Mapping):
            batch[key] = collate(values, indices, f"{name}, key '{key}'")
        elif isinstance(values[0], (str, bytes)) or values[0] is None:
            batch[key] = list(values)
        else:
            try:
                batch[key] = np.stack([np.asarray(v) for v in values])
            except ValueError as err:
                shapes = {}
                for position, value in enumerate(values):
                    shapes.setdefault(np.shape(value), indices[position] if len(indices) > position else position)
                described = ", ".join(f"{shape} (example {index})" for shape, index in shapes.items())
                raise DataError(
                    f"{name}: key '{key}' has different shapes across examples: {described}; "
                    f"examples must have equal shapes to be batched."
                ) from err
    return batch


class NumpyBatches:
    """The core's fallback batching: examples stacked into dicts of numpy arrays, in the main process."""

    def __init__(self, dataset: Any, batch_size: int, *, seed: int, shuffle: bool, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1, name: str = "dataset") -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.name = name
        self.num_examples = check_dataset(dataset, name, batch_size, drop_last)
        self._length = batches_per_epoch(self.num_examples, batch_size, drop_last, world_size)

    def __len__(self) -> int:
        return self._length

    def indices(self, epoch: int) -> np.ndarray:
        order = epoch_indices(self.num_examples, self.seed, epoch, self.shuffle)
        return rank_indices(order, self.rank, self.world_size, self.drop_last)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[dict]:
        """The batches of ``epoch`` from batch ``start`` on; examples before ``start`` are not loaded."""
        order = self.indices(epoch)
        announce_epoch(self.dataset, epoch, self.name)
        for position in range(start, self._length):
            chunk = order[position * self.batch_size:(position + 1) * self.batch_size]
            chunk = [int(i) for i in chunk]
            yield collate([get_example(self.dataset, i, self.name) for i in chunk], chunk, self.name)

    def close(self) -> None:
        pass


class LimitedDataset:
    """The first ``limit`` examples of a dataset (debug mode); the user's class is not touched."""

    def __init__(self, dataset: Any, limit: int) -> None:
        self.dataset = dataset
        self.limit = min(limit, len(dataset))

    def __len__(self) -> int:
        return self.limit

    def __getitem__(self, index: int) -> Any:
        if not -self.limit <= index < self.limit:
            raise IndexError(index)
        return self.dataset[index % self.limit]

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not yet set while unpickling in a worker process
            raise AttributeError(name)
        return getattr(self.dataset, name)
