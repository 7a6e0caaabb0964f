"""Epoch orders from (seed, epoch), resuming without replay, and clear errors for bad examples."""
import numpy as np
import pytest

from edcore.batching import LimitedDataset, NumpyBatches, collate, epoch_indices, rank_indices
from edcore.errors import DataError, UserCodeError


class Counting:
    def __init__(self, n=10):
        self.n = n
        self.loaded = []

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        self.loaded.append(index)
        return {"x": np.full(2, index, dtype="float32"), "i": index, "name": f"ex{index}", "meta": {"k": index}}


def test_epoch_order_is_a_function_of_seed_and_epoch():
    a = epoch_indices(50, seed=1, epoch=3, shuffle=True)
    assert np.array_equal(a, epoch_indices(50, seed=1, epoch=3, shuffle=True))
    assert not np.array_equal(a, epoch_indices(50, seed=1, epoch=4, shuffle=True))
    assert not np.array_equal(a, epoch_indices(50, seed=2, epoch=3, shuffle=True))
    assert sorted(a) == list(range(50))
    assert list(epoch_indices(5, seed=1, epoch=3, shuffle=False)) == [0, 1, 2, 3, 4]


def test_ranks_take_disjoint_slices_of_the_same_order():
    order = np.arange(10)
    slices = [rank_indices(order, rank, 3, drop_last=False) for rank in range(3)]
    assert all(len(s) == 4 for s in slices)  # padded by wrapping around
    assert set(np.concatenate(slices)) == set(range(10))
    dropped = [rank_indices(order, rank, 3, drop_last=True) for rank in range(3)]
    assert all(len(s) == 3 for s in dropped)


def test_batches_stack_examples_and_keep_structure():
    batches = NumpyBatches(Counting(5), 2, seed=0, shuffle=False)
    assert len(batches) == 3
    first = next(batches.epoch(0))
    assert first["x"].shape == (2, 2) and first["i"].tolist() == [0, 1]
    assert first["name"] == ["ex0", "ex1"] and first["meta"]["k"].tolist() == [0, 1]
    assert [len(b["i"]) for b in batches.epoch(0)] == [2, 2, 1]


def test_drop_last():
    assert len(NumpyBatches(Counting(5), 2, seed=0, shuffle=False, drop_last=True)) == 2


def test_resuming_mid_epoch_loads_only_the_rest():
    dataset = Counting(10)
    batches = NumpyBatches(dataset, 2, seed=7, shuffle=True)
    full = [b["i"].tolist() for b in batches.epoch(3)]
    dataset.loaded.clear()
    resumed = [b["i"].tolist() for b in batches.epoch(3, start=3)]
    assert resumed == full[3:]
    assert len(dataset.loaded) == 4  # 2 batches of 2: the skipped examples were never loaded


def test_empty_dataset_and_too_small_with_drop_last():
    with pytest.raises(DataError, match="is empty"):
        NumpyBatches(Counting(0), 2, seed=0, shuffle=False)
    with pytest.raises(DataError, match="fewer than batch_size 8, and drop_last is true"):
        NumpyBatches(Counting(3), 8, seed=0, shuffle=False, drop_last=True)


def test_examples_must_be_dicts():
    class Lists(Counting):
        def __getitem__(self, index):
            return [index]

    with pytest.raises(DataError, match="returned list for example 0; examples must be dicts"):
        next(NumpyBatches(Lists(), 2, seed=0, shuffle=False).epoch(0))


def test_user_errors_in_getitem_name_the_example():
    class Raising(Counting):
        def __getitem__(self, index):
            raise KeyError("no such file")

    with pytest.raises(UserCodeError, match="raised on example 0"):
        next(NumpyBatches(Raising(), 2, seed=0, shuffle=False).epoch(0))


def test_inconsistent_keys_and_shapes_are_named():
    with pytest.raises(DataError, match=r"example 5 has different keys than example 4 \(missing \['y'\]"):
        collate([{"x": 1, "y": 2}, {"x": 1}], [4, 5], "data")
    with pytest.raises(DataError, match=r"key 'x' has different shapes across examples: \(2,\) \(example 0\), \(3,\) \(example 1\)"):
        collate([{"x": np.zeros(2)}, {"x": np.zeros(3)}], [0, 1], "data")


def test_limited_dataset():
    limited = LimitedDataset(Counting(10), 3)
    assert len(limited) == 3 and limited[2]["i"] == 2 and limited.n == 10
    with pytest.raises(IndexError):
        limited[3]
