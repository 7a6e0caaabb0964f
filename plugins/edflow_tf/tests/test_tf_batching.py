"""tf.data batches: the core's epoch order, resume by index without loading skipped examples, checked examples."""
import numpy as np
import pytest
import tensorflow as tf
from edcore.batching import epoch_indices
from edcore.data import RandomlyAugmented
from edcore.errors import DataError, UserCodeError
from edflow_tf.batching import TFBatches
from edflow_tf.settings import DEFAULTS


class Recorded:
    """20 examples with a nested dict and a string; records which indices were loaded."""

    def __init__(self, size=20):
        self.size = size
        self.loaded = []

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        self.loaded.append(index)
        return {"x": np.full((3,), index, dtype="float32"), "meta": {"index": index, "name": f"n{index}"}}


def batches(dataset, **options):
    settings = {**DEFAULTS, "num_parallel_calls": 2}
    values = {"seed": 5, "shuffle": True, "drop_last": False, **options}
    return TFBatches(dataset, 4, settings=settings, name="Recorded", **values)


def test_an_epoch_follows_the_core_order_with_nested_keys_as_tensors():
    data = batches(Recorded())
    epoch = list(data.epoch(1))
    assert len(data) == len(epoch) == 5
    order = epoch_indices(20, 5, 1, True)
    assert np.concatenate([b["meta"]["index"].numpy() for b in epoch]).tolist() == order.tolist()
    first = epoch[0]
    assert isinstance(first["x"], tf.Tensor) and first["x"].shape == (4, 3) and first["x"].dtype == tf.float32
    assert first["meta"]["name"].numpy().tolist() == [f"n{i}".encode() for i in order[:4]]
    assert first["x"].numpy()[:, 0].tolist() == order[:4].tolist()


def test_a_resumed_epoch_starts_at_the_next_batch_without_loading_the_skipped_examples():
    dataset = Recorded()
    data = batches(dataset)
    dataset.loaded.clear()  # the first example was read once to learn the keys, dtypes and shapes
    resumed = list(data.epoch(2, start=3))
    order = epoch_indices(20, 5, 2, True)
    assert np.concatenate([b["meta"]["index"].numpy() for b in resumed]).tolist() == order[12:].tolist()
    assert sorted(dataset.loaded) == sorted(order[12:].tolist())


def test_the_dataset_learns_the_epoch_so_seeded_augmentation_resumes_exactly():
    def jitter(example, rng):
        return {"x": example["x"] + rng.normal(size=3).astype("float32")}

    augmented = RandomlyAugmented(Recorded(), jitter, seed=2)
    data = batches(augmented)
    epoch_0, epoch_1 = list(data.epoch(0)), list(data.epoch(1))
    resumed = list(batches(augmented).epoch(1, start=3))
    for expected, batch in zip(epoch_1[3:], resumed, strict=True):
        assert np.array_equal(batch["x"].numpy(), expected["x"].numpy())
    first = epoch_1[0]["meta"]["index"].numpy()[0]
    noise = np.random.default_rng(np.random.SeedSequence([2, 1, first])).normal(size=3).astype("float32")
    assert np.array_equal(epoch_1[0]["x"].numpy()[0], np.full(3, first, "float32") + noise)
    assert not np.array_equal(np.concatenate([b["x"].numpy() for b in epoch_0]).sum(0),
                              np.concatenate([b["x"].numpy() for b in epoch_1]).sum(0))


def test_without_shuffle_and_with_drop_last():
    data = batches(Recorded(18), shuffle=False, drop_last=True)
    indices = [b["meta"]["index"].numpy().tolist() for b in data.epoch(0)]
    assert len(data) == 4 and indices == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]


class Broken(Recorded):
    def __init__(self, problem):
        super().__init__()
        self.problem = problem

    def __getitem__(self, index):
        example = super().__getitem__(index)
        if index == 7:
            if self.problem == "shape":
                example["x"] = np.zeros((2,), "float32")
            elif self.problem == "keys":
                del example["meta"]
            elif self.problem == "raises":
                raise KeyError("no such file: 7.png")
            else:
                return [1, 2]
        return example


@pytest.mark.parametrize(("problem", "error", "message"), [
    ("shape", DataError, "key 'x' has different shapes across examples: (3,) (example 0), (2,) (example 7)"),
    ("keys", DataError, "example 7 has different keys than example 0 (missing ['meta'], extra none)"),
    ("raises", UserCodeError, "dataset 'Recorded' raised on example 7: KeyError: 'no such file: 7.png'"),
    ("list", DataError, "dataset 'Recorded' returned list for example 7; examples must be dicts"),
])
def test_bad_examples_are_reported_by_index_not_as_tensorflow_errors(problem, error, message):
    data = batches(Broken(problem), shuffle=False)
    with pytest.raises(error) as raised:
        list(data.epoch(0))
    assert message in str(raised.value)
