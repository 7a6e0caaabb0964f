"""The training loop of the seed, observed through every hook call of real in-process runs."""
import json

import pytest

from edcore import hookimpl
from edcore.iterator import DummyModel, Iterator, TemplateIterator, call_leaves, copy_structure


def run(project, recorder, drop=(), **config):
    project.toy(drop=drop, **config)
    assert project.run_in_process("-t", "train.yaml", plugins=[recorder]) == 0
    return project.runs()[-1]


def test_the_exact_hook_sequence(edflow_project, hook_recorder):
    run(edflow_project, hook_recorder, num_steps=3, log_freq=2)
    assert hook_recorder.names() == [
        "edflow_check_config",                                            # before the run folder exists
        "edflow_project_init", "edflow_seed", "edflow_before_training", "edflow_before_epoch",
        "edflow_before_step", "edflow_after_step", "edflow_log",          # the first step is always logged
        "edflow_before_step", "edflow_after_step", "edflow_log",          # step 2: log_freq
        "edflow_before_step", "edflow_after_step",
        "edflow_save_checkpoint", "edflow_checkpoint_published",          # the end of training
        "edflow_after_training",
    ]


def test_steps_increase_and_feeds_hold_the_batch_keys(edflow_project, hook_recorder):
    run(edflow_project, hook_recorder, num_steps=6)
    assert hook_recorder.steps() == [(name, step) for s in range(6)
                                     for name, step in (("edflow_before_step", s), ("edflow_after_step", s + 1))]
    for name, args in hook_recorder.calls:
        if name in ("edflow_before_step", "edflow_after_step"):
            assert args["feeds"] == args["batch"] == ["index", "x", "y"]
            assert args["fetches"] == ["step_op"]
        if name == "edflow_after_step":
            assert args["results"] == ["train_op"] or args["results"] == ["log_op", "train_op"]


def test_epochs_and_end_of_epoch_checkpoints(edflow_project, hook_recorder):
    root = run(edflow_project, hook_recorder, num_epochs=2, drop=["num_steps"], log_freq=100)
    names = hook_recorder.names()
    assert names.count("edflow_before_epoch") == 2 and names.count("edflow_after_epoch") == 2
    assert hook_recorder.steps()[-1] == ("edflow_after_step", 10)  # 40 examples, batch 8
    assert sorted(p.name for p in (root / "train" / "checkpoints").iterdir() if p.name.isdigit()) == \
        ["0000000005", "0000000010"]


def test_num_steps_stops_before_num_epochs(edflow_project, hook_recorder):
    run(edflow_project, hook_recorder, num_epochs=3, num_steps=7, ckpt_freq=3)
    assert hook_recorder.steps()[-1] == ("edflow_after_step", 7)
    published = [args["checkpoint"] for name, args in hook_recorder.calls if name == "edflow_checkpoint_published"]
    assert len(published) == 3  # steps 3, 6 and the final 7


def test_metrics_are_logged_at_the_global_step(edflow_project, hook_recorder):
    root = run(edflow_project, hook_recorder, num_steps=10, log_freq=5)
    lines = [json.loads(line) for line in (root / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [line["global_step"] for line in lines] == [1, 5, 10]
    assert all(isinstance(line["loss"], float) for line in lines)
    assert lines[-1]["loss"] < lines[0]["loss"]


def test_logging_off(edflow_project, hook_recorder):
    run(edflow_project, hook_recorder, num_steps=4, log_freq=None)
    assert "edflow_log" not in hook_recorder.names()


class FetchAdder:
    """A plugin that adds a fetch of its own and reads its result after the step."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def edflow_before_step(self, global_step, fetches):
        fetches["extra"] = lambda model, **feeds: ("extra", global_step, len(feeds["x"]))

    @hookimpl
    def edflow_after_step(self, results):
        self.seen.append(results["extra"])


def test_hooks_can_add_fetches(edflow_project):
    adder = FetchAdder()
    edflow_project.toy(num_steps=2)
    assert edflow_project.run_in_process("-t", "train.yaml", plugins=[adder]) == 0
    assert adder.seen == [("extra", 0, 8), ("extra", 1, 8)]


def test_dummy_model_when_no_model_is_configured(edflow_project):
    seen = {}

    class Capture:
        @hookimpl
        def edflow_before_training(self, iterator):
            seen["model"] = iterator.model

    edflow_project.toy(num_steps=1)
    assert edflow_project.run_in_process("-t", "train.yaml", plugins=[Capture()]) == 0
    assert isinstance(seen["model"], DummyModel) and seen["model"].config["batch_size"] == 8


def test_the_generic_iterator_calls_every_leaf_with_model_and_feeds():
    fetches = {"a": lambda model, x: (model, x), "nested": [lambda model, x: x * 2, 5]}
    assert call_leaves(fetches, "m", {"x": 3}) == {"a": ("m", 3), "nested": [6, 5]}
    batch = {"x": "array", "d": {"y": 2}}
    feeds = copy_structure(batch)
    feeds["d"]["y"] = 3
    assert batch["d"]["y"] == 2 and feeds["x"] is batch["x"]


class Counter(TemplateIterator):
    def step_op(self, model, x):
        step = self.get_global_step()
        return {"train_op": lambda: ("train", step), "log_op": lambda: {"scalars": {"step": step}},
                "eval_op": lambda: ("eval", step)}


class Batches:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def epoch(self, epoch, start=0):
        for i in range(start, self.n):
            yield {"x": (epoch, i)}


def test_template_contract_without_a_process():
    iterator = Counter({"test_mode": False}, "root", None)
    iterator.runtime.num_epochs = 2
    results = []
    iterator.runtime.after_step = lambda step, fetches, feeds, batch, result: results.append((step, result))
    iterator.iterate(Batches(3))
    assert [step for step, _ in results] == [1, 2, 3, 4, 5, 6]
    assert results[0][1] == {"train_op": ("train", 0)}
    evaluator = Counter({"test_mode": True}, "root", None)
    evaluator.set_global_step(42)
    evaluated = []
    evaluator.runtime.after_step = lambda step, fetches, feeds, batch, result: evaluated.append((step, result))
    evaluator.iterate(Batches(2))
    assert evaluated == [(42, {"eval_op": ("eval", 42)}), (42, {"eval_op": ("eval", 42)})]


def test_a_step_op_that_returns_no_dict_is_reported():
    class Bad(TemplateIterator):
        def step_op(self, model, x):
            return None

    from edcore.errors import UserCodeError

    with pytest.raises(UserCodeError, match="step_op returned NoneType"):
        Bad({}, "root", None).iterate(Batches(1))


def test_plain_iterator_needs_step_ops():
    with pytest.raises(NotImplementedError):
        Iterator({}, "root", None).step_ops()
