"""The template contract of edflow_torch.TemplateIterator, observed in real tiny trainings."""
import pytest
import torch

from torch_helpers import TINY_CONFIG
from edcore.errors import UserCodeError
from edflow_torch import TemplateIterator
from edflow_torch.batching import TorchBatches
from edflow_torch.plugin import TorchPlugin
from edflow_torch.settings import torch_settings


def train(project, catcher, **config):
    project.tiny(**config)
    assert project.run_in_process("-t", "train.yaml", plugins=[catcher]) == 0
    return catcher.iterator


def test_train_op_every_step_log_op_every_log_freq_with_the_global_step(torch_project, catcher):
    iterator = train(torch_project, catcher, num_steps=10, log_freq=4)
    train_steps = [t["global_step"] for t in iterator.trace if t["op"] == "train_op"]
    log_steps = [t["global_step"] for t in iterator.trace if t["op"] == "log_op"]
    assert train_steps == list(range(10))  # inside an op: the step being run, counted from 0
    assert log_steps == [0, 3, 7]  # the first step, then every log_freq-th (logged as steps 1, 4, 8)
    assert [m["global_step"] for m in torch_project.metrics(torch_project.runs()[0])] == [1, 4, 8]
    assert not any(t["op"] == "eval_op" for t in iterator.trace)
    assert iterator.get_global_step() == 10


def test_training_runs_in_train_mode_and_learns(torch_project, catcher):
    iterator = train(torch_project, catcher, num_steps=60, log_freq=20)
    assert all(t["training"] and not t["inference_mode"] for t in iterator.trace)
    metrics = torch_project.metrics(torch_project.runs()[0])
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert iterator.scheduler.get_last_lr() == [0.02 * 0.5 ** 12]  # the scheduler stepped once per step


def make_iterator(project, tmp_path, **config):
    """An iterator and batches made by hand, as a notebook would, with the plugin's feed conversion attached."""
    project.tiny()
    from tiny.data import Data
    from tiny.iterator import Iterator
    from tiny.model import Net

    values = {**TINY_CONFIG, **config}
    iterator = Iterator(values, str(tmp_path), Net(values))
    batches = TorchBatches(Data(values), values["batch_size"], seed=0, shuffle=False, drop_last=False,
                           settings=torch_settings(values), device=torch.device("cpu"))
    plugin = TorchPlugin()
    plugin.edflow_before_training(iterator)
    iterator.runtime.before_step = lambda step, fetches, feeds, batch: plugin.edflow_before_step(feeds)
    return iterator, batches


def test_evaluation_runs_eval_op_in_eval_mode_under_inference_mode(torch_project, tmp_path):
    iterator, batches = make_iterator(torch_project, tmp_path, test_mode=True)
    iterator.set_global_step(7)
    iterator.iterate(batches)
    ops = {t["op"] for t in iterator.trace}
    assert ops == {"eval_op"} and len(iterator.trace) == len(batches) == 10
    assert all(not t["training"] and t["inference_mode"] and t["global_step"] == 7 for t in iterator.trace)
    assert [i for t in iterator.trace for i in t["index"]] == list(range(40))  # every example once, in order
    # The same iterator trains in train mode again afterwards.
    iterator.config = {**iterator.config, "test_mode": False}
    iterator.runtime.num_steps = 10  # from global step 7: three steps
    iterator.iterate(batches)
    assert [(t["op"], t["training"], t["inference_mode"]) for t in iterator.trace[10:]] == [("train_op", True, False)] * 3


def test_amp_bf16_on_the_cpu_runs_the_ops_under_autocast(torch_project, catcher):
    iterator = train(torch_project, catcher, num_steps=30, log_freq=10, torch={"amp": "bf16"})
    assert {t["logits_dtype"] for t in iterator.trace} == {"torch.bfloat16"}
    assert {t["x_dtype"] for t in iterator.trace} == {"torch.float32"}  # the feeds are not cast, only the ops
    assert all(p.dtype == torch.float32 for p in iterator.model.parameters())  # master weights stay float32
    assert not iterator.scaler.is_enabled()  # bf16 needs no loss scaling
    metrics = torch_project.metrics(torch_project.runs()[0])
    assert metrics[-1]["loss"] < metrics[0]["loss"]


def test_amp_off_runs_in_float32(torch_project, catcher):
    iterator = train(torch_project, catcher, num_steps=2)
    assert {t["logits_dtype"] for t in iterator.trace} == {"torch.float32"}


def test_fp16_on_the_cpu_is_a_config_error(torch_project):
    torch_project.tiny(torch={"amp": "fp16"})
    outcome = torch_project.run("-t", "train.yaml", timeout=120).assert_failed(2)
    assert "torch: {amp: fp16} needs a CUDA device; on the CPU use amp: bf16." in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_step_op_must_return_a_dict(torch_project, tmp_path):
    class Broken(TemplateIterator):
        def step_op(self, model, **batch):
            return [lambda: None]

    iterator = Broken(TINY_CONFIG, str(tmp_path), torch.nn.Linear(4, 2))
    with pytest.raises(UserCodeError, match="Broken.step_op returned list; it must return a dict of callables"):
        iterator.run({"step_op": iterator.step_op}, {"x": torch.zeros(1, 4)})
