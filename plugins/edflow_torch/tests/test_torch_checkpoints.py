"""Automatic checkpoints of edflow_torch.TemplateIterator: what they hold, and what they refuse to load."""
import os

import pytest
import torch
from torch_helpers import TINY_CONFIG
from edcore.errors import CheckpointError
from edflow_torch.batching import TorchBatches
from edflow_torch.iterator import STATE_FILE
from edflow_torch.plugin import TorchPlugin
from edflow_torch.settings import torch_settings


def tiny_iterator(project, tmp_path, seed, with_ema=True):
    """The tiny iterator made by hand, plus a second module attribute (an EMA copy) when ``with_ema``."""
    project.tiny()
    from tiny.data import Data
    from tiny.iterator import Iterator
    from tiny.model import Net

    torch.manual_seed(seed)  # a different initialisation per call
    iterator = Iterator(TINY_CONFIG, str(tmp_path), Net(TINY_CONFIG))
    if with_ema:
        iterator.ema = Net(TINY_CONFIG)
    batches = TorchBatches(Data(TINY_CONFIG), 4, seed=0, shuffle=True, drop_last=False,
                           settings=torch_settings(TINY_CONFIG), device=torch.device("cpu"))
    plugin = TorchPlugin()
    plugin.edflow_before_training(iterator)
    iterator.runtime.before_step = lambda step, fetches, feeds, batch: plugin.edflow_before_step(feeds)
    return iterator, batches


def assert_same_tensors(a, b):
    """Nested state dicts hold equal values (tensors bit for bit)."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_tensors(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tensors(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def test_save_restore_round_trip_of_model_optimizer_scheduler_modules_and_rng(torch_project, tmp_path):
    trained, batches = tiny_iterator(torch_project, tmp_path, seed=1)
    trained.runtime.num_steps = 7
    trained.iterate(batches)
    with torch.no_grad():
        trained.ema.layers[0].weight.mul_(0.5)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    trained.save(str(checkpoint))
    draws_after_save = torch.rand(5)

    fresh, _ = tiny_iterator(torch_project, tmp_path, seed=2)
    assert not torch.equal(fresh.model.layers[0].weight, trained.model.layers[0].weight)
    fresh.restore(str(checkpoint))
    assert_same_tensors(fresh.model.state_dict(), trained.model.state_dict())
    assert_same_tensors(fresh.ema.state_dict(), trained.ema.state_dict())
    assert_same_tensors(fresh.optimizer.state_dict(), trained.optimizer.state_dict())
    assert fresh.optimizer.state_dict()["state"][0]["step"] == 7  # Adam's moments came back, not fresh ones
    assert fresh.scheduler.state_dict() == trained.scheduler.state_dict()
    assert fresh.scheduler.get_last_lr() == [0.02 * 0.5]  # 7 steps of StepLR(5, 0.5)
    assert fresh.optimizer.param_groups[0]["lr"] == 0.02 * 0.5
    assert fresh.scaler.state_dict() == trained.scaler.state_dict()
    assert torch.equal(torch.rand(5), draws_after_save)  # the torch RNG continues where it was saved


def test_a_checkpoint_file_cannot_execute_code(torch_project, tmp_path):
    marker = tmp_path / "code-was-executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    torch.save({"format": 1, "model": Payload()}, checkpoint / STATE_FILE)
    iterator, _ = tiny_iterator(torch_project, tmp_path, seed=1)
    with pytest.raises(CheckpointError, match=f"'{checkpoint / STATE_FILE}' cannot be read: .*Weights only load failed"):
        iterator.restore(str(checkpoint))
    assert not marker.exists()


def test_a_checkpoint_of_another_model_names_the_parameter(torch_project, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    wider = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(32, 2))
    other = {f"layers.{name}": value for name, value in wider.state_dict().items()}
    torch.save({"format": 1, "model": other}, checkpoint / STATE_FILE)
    iterator, _ = tiny_iterator(torch_project, tmp_path, seed=1)
    with pytest.raises(CheckpointError, match=r"does not fit the model .*size mismatch for layers\.0\.weight"):
        iterator.restore(str(checkpoint))


def test_a_checkpoint_with_state_the_iterator_lacks_is_refused(torch_project, tmp_path):
    with_ema, _ = tiny_iterator(torch_project, tmp_path, seed=1)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    with_ema.save(str(checkpoint))
    without, _ = tiny_iterator(torch_project, tmp_path, seed=1, with_ema=False)
    with pytest.raises(CheckpointError, match="holds module 'ema' but Iterator has no such attribute"):
        without.restore(str(checkpoint))


def test_a_folder_without_the_state_file_is_not_a_torch_checkpoint(torch_project, tmp_path):
    iterator, _ = tiny_iterator(torch_project, tmp_path, seed=1)
    with pytest.raises(CheckpointError, match=f"has no {STATE_FILE}; it was not written by edflow-torch"):
        iterator.restore(str(tmp_path))
