"""DataLoader batching: the resumable sampler, exact mid-epoch resume, and the feeds on their device."""
import json

import numpy as np
import pytest
import torch
from edcore import hookimpl
from edcore.batching import epoch_indices
from edflow_torch.batching import EpochSampler, TorchBatches
from edflow_torch.settings import torch_settings
from edflow_torch.plugin import to_device


def test_the_sampler_starts_mid_epoch_at_the_exact_next_example():
    sampler = EpochSampler(num_examples=10, seed=5, shuffle=True, batch_size=3, drop_last=False)
    sampler.set_epoch(2)
    full = list(sampler)
    assert full == epoch_indices(10, 5, 2, True).tolist() and sorted(full) == list(range(10))
    sampler.set_epoch(2, start_batch=2)
    assert list(sampler) == full[6:] and len(sampler) == 4
    sampler.set_epoch(3)
    assert list(sampler) != full  # a new order every epoch


def test_ranks_take_disjoint_slices_of_the_same_order():
    slices = []
    for rank in range(2):
        sampler = EpochSampler(num_examples=11, seed=5, shuffle=True, batch_size=2, drop_last=False, rank=rank,
                               world_size=2)
        sampler.set_epoch(1)
        slices.append(list(sampler))
    order = epoch_indices(11, 5, 1, True).tolist()
    assert slices[0] == order[0::2] and slices[1] == (order + order[:1])[1::2]  # padded to equal length
    assert set(slices[0]) | set(slices[1]) == set(range(11))


class Augmented:
    """Draws noise from torch's, NumPy's and Python's global RNGs in ``__getitem__``, as augmentation does."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        import random

        return {"index": index, "torch": torch.rand(2), "numpy": np.random.rand(2), "python": random.random()}


def augmented_epoch(workers, start=0):
    batches = TorchBatches(Augmented(), 3, seed=4, shuffle=True, drop_last=False, device=torch.device("cpu"),
                           settings=torch_settings({"torch": {"num_workers": workers}}))
    try:
        batches_seen = list(batches.epoch(0))  # the workers' RNGs have served a whole epoch before
        return batches_seen, list(batches.epoch(1, start))
    finally:
        batches.close()


def test_augmentation_in_workers_is_the_same_after_a_mid_epoch_resume_and_for_any_number_of_workers():
    _, reference = augmented_epoch(workers=2)
    for workers, start in [(2, 2), (1, 1), (1, 0)]:
        _, resumed = augmented_epoch(workers, start)
        assert len(resumed) == 4 - start
        for expected, batch in zip(reference[start:], resumed):
            for key in ("index", "torch", "numpy", "python"):
                assert torch.equal(batch[key], expected[key]), (workers, start, key)
    first, second = augmented_epoch(workers=2)
    assert not torch.equal(first[0]["torch"], second[0]["torch"])  # every epoch draws anew
    assert len({batch["torch"][0, 0].item() for batch in second}) == 4  # and every batch


def trace(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def train_indices(path):
    return [t["index"] for t in trace(path) if t["op"] == "train_op"]


def run(project, monkeypatch, *args, **env):
    """``edflow ARGS`` in this process (torch is imported once for all runs) with environment ``env``."""
    for name in ("TINY_TRACE", "TINY_LOADED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    assert project.run_in_process(*args) == 0


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_continues_with_the_next_example_and_the_same_weights(torch_project, tmp_path, workers,
                                                                               monkeypatch, capfd):
    # 40 examples in batches of 4: 10 steps per epoch. Stop at step 7 (mid epoch 0), resume up to 13 (epoch 1).
    torch_project.tiny(num_steps=13, torch={"num_workers": workers})
    straight, first, resumed = tmp_path / "straight.jsonl", tmp_path / "first.jsonl", tmp_path / "resumed.jsonl"
    loaded = tmp_path / "loaded.txt"
    run(torch_project, monkeypatch, "-t", "train.yaml", "-n", "straight", TINY_TRACE=straight)
    run(torch_project, monkeypatch, "-t", "train.yaml", "-n", "stopped", "--num_steps", "7", TINY_TRACE=first)
    stopped = next(run for run in torch_project.runs() if run.name.endswith("_stopped"))
    capfd.readouterr()
    run(torch_project, monkeypatch, "-p", str(stopped), "--num_steps", "13", TINY_TRACE=resumed, TINY_LOADED=loaded)
    assert "from global step 7" in capfd.readouterr().err

    expected = train_indices(straight)
    assert train_indices(first) == expected[:7]
    assert train_indices(resumed) == expected[7:13]
    if workers == 0:  # without prefetching workers the examples read are exactly those of the steps run
        assert [int(i) for i in loaded.read_text().split()] == [i for batch in expected[7:13] for i in batch]

    (straight_run,) = [run for run in torch_project.runs() if run.name.endswith("_straight")]
    finals = [torch.load(run / "train" / "checkpoints" / "0000000013" / "torch_state.pt", weights_only=True)
              for run in (straight_run, stopped)]
    for kind in ("model", "optimizers", "schedulers"):  # dropout and shuffling included: bit-identical
        assert_equal_nested(finals[0][kind], finals[1][kind])


def assert_equal_nested(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_equal_nested(a[key], b[key])
    elif isinstance(a, list):
        for x, y in zip(a, b, strict=True):
            assert_equal_nested(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


class FeedRecorder:
    """Records, after the torch plugin's conversion, the type, dtype and device of every feed, and whether the
    feed is still the very object the batch holds (no copy)."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def edflow_before_step(self, feeds, batch):
        self.seen.append({key: (type(value).__name__, str(getattr(value, "dtype", "")),
                                str(getattr(value, "device", "")), value is batch[key])
                          for key, value in feeds.items()})


MIXED_DATA = '''
    import numpy as np
    import torch


    class Mixed:
        """Every kind of value a dataset may return."""

        def __len__(self):
            return 8

        def __init__(self, config):
            pass

        def __getitem__(self, index):
            return {"x": np.full(4, index, dtype="float64"), "y": index % 2, "image": np.zeros((2, 2), "uint8"),
                    "t": torch.ones(4), "name": f"example {index}", "index": index}
'''


def test_feeds_arrive_as_tensors_on_the_device_and_tensors_there_are_not_copied(torch_project):
    torch_project.tiny(dataset="tiny.mixed.Mixed", num_steps=2)
    torch_project.write({"tiny/mixed.py": MIXED_DATA})
    recorder = FeedRecorder()
    assert torch_project.run_in_process("-t", "train.yaml", plugins=[recorder]) == 0
    assert recorder.seen[0] == {
        "x": ("Tensor", "torch.float32", "cpu", False),      # float64 is cast to torch: {float_dtype} (float32)
        "y": ("Tensor", "torch.int64", "cpu", True),         # already a CPU tensor (collated): the same object
        "image": ("Tensor", "torch.uint8", "cpu", True),
        "t": ("Tensor", "torch.float32", "cpu", True),
        "name": ("list", "", "", False),                     # strings stay strings (the core copies lists)
        "index": ("Tensor", "torch.int64", "cpu", True),
    }


def test_to_device_keeps_memory_it_need_not_copy():
    on_device = torch.arange(4.0)
    array = np.arange(4, dtype="float32")
    feeds = {"tensor": on_device, "array": array, "double": np.arange(3.0), "nested": {"ids": np.arange(3)},
             "label": "cat"}
    to_device(feeds, torch.device("cpu"), torch.float32)
    assert feeds["tensor"] is on_device
    assert feeds["array"].data_ptr() == array.ctypes.data  # a view of the numpy array, not a copy
    assert feeds["double"].dtype == torch.float32 and feeds["nested"]["ids"].dtype == torch.int64
    assert feeds["label"] == "cat"
    kept = {"double": np.arange(3.0)}
    to_device(kept, torch.device("cpu"), None)  # torch: {float_dtype: keep}
    assert kept["double"].dtype == torch.float64
