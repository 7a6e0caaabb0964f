"""Run folders: one training per run (the training lock), ``-p`` shorthands, evaluating a run with its own settings."""
from __future__ import annotations

import json
import signal
import socket
import time

from edcore.testing import TOY_PACKAGE

SLOW_ITERATOR = {
    **TOY_PACKAGE,
    "toy/slow.py": '''
        import time

        from toy.iterator import Iterator as Toy


        class Iterator(Toy):
            def step_op(self, model, x, y, index):
                ops = super().step_op(model, x, y, index)
                train = ops["train_op"]

                def train_op():
                    time.sleep(self.config.get("step_sleep", 0))
                    train()

                evaluate = ops["eval_op"]

                def eval_op():
                    time.sleep(self.config.get("eval_sleep", 0))
                    return evaluate()

                return {**ops, "train_op": train_op, "eval_op": eval_op}
    ''',
}


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def checkpoints(run):
    return sorted(p.name for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())


def test_a_second_training_of_a_run_that_trains_is_refused_and_a_killed_holder_does_not_block(edflow_project):
    edflow_project.toy(num_steps=100000, ckpt_freq=5, log_freq=1, step_sleep=0.05, iterator="toy.slow.Iterator")
    edflow_project.write(SLOW_ITERATOR)
    first = edflow_project.start("-t", "train.yaml")
    try:
        run = wait_for(lambda: (edflow_project.runs() or [None])[0], 120, "the run folder")
        wait_for(lambda: checkpoints(run), 120, "a checkpoint")
        first.send(signal.SIGSTOP)  # frozen: nothing it writes can change the files compared below
        before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
        second = edflow_project.run("-p", str(run), "--num_steps", "12", "--step_sleep", "0")
        after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
        second.assert_failed(2)
        assert f"process {first.pid} on host {socket.gethostname()}" in second.output, second
        assert "Traceback" not in second.output
        assert after == before  # no config, no run.json entry, no metrics line, no checkpoint
        # Evaluating the run while it trains stays possible.
        edflow_project.config("eval.yaml", dataset="toy.data.Data", iterator="toy.iterator.Iterator", batch_size=8)
        edflow_project.run("-e", "eval.yaml", "-p", str(run)).assert_success()
    finally:
        first.send(signal.SIGKILL)
        first.send(signal.SIGCONT)
        first.wait(timeout=60)
    lock = json.loads((run / "train.lock").read_text())
    assert lock == {"pid": first.pid, "host": socket.gethostname()}  # stale: its holder is dead
    edflow_project.run("-p", str(run), "--num_steps", "12", "--step_sleep", "0").assert_success()
    steps = [record["global_step"] for record in edflow_project.metrics(run) if "global_step" in record]
    assert steps[-1] == 12


WIDE_TORCH = {
    "widepkg/__init__.py": "",
    "widepkg/data.py": '''
        import numpy as np


        class Blobs:
            def __init__(self, config):
                rng = np.random.RandomState(1 if config.get("test_mode") else 0)
                self.x = rng.randn(32, 4).astype("float32")
                self.y = (self.x[:, 0] > 0).astype("int64")

            def __len__(self):
                return len(self.x)

            def __getitem__(self, index):
                return {"x": self.x[index], "y": self.y[index]}
    ''',
    "widepkg/model.py": '''
        import torch


        class Net(torch.nn.Module):
            def __init__(self, config):
                super().__init__()
                width = config.get("hidden_units", 8)
                self.layers = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))

            def forward(self, x):
                return self.layers(x)
    ''',
    "widepkg/iterator.py": '''
        import torch
        from edflow_torch import TemplateIterator


        class Iterator(TemplateIterator):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

            def step_op(self, model, x, y):
                logits = model(x)

                def train_op():
                    loss = torch.nn.functional.cross_entropy(logits, y)
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()

                def eval_op():
                    return {"correct": (logits.argmax(1) == y).float()}

                return {"train_op": train_op, "eval_op": eval_op}
    ''',
    "widepkg/callbacks.py": '''
        import numpy as np


        def accuracy(eval_dir, dataset, outputs, config):
            return {"accuracy": float(np.mean(outputs["correct"]))}
    ''',
    "train.yaml": """\
        dataset: widepkg.data.Blobs
        model: widepkg.model.Net
        iterator: widepkg.iterator.Iterator
        batch_size: 8
        num_steps: 4
        hidden_units: 8
        seed: 0
        progress: false
        torch:
          device: cpu
          num_workers: 0
    """,
    "eval.yaml": """\
        dataset: widepkg.data.Blobs
        model: widepkg.model.Net
        iterator: widepkg.iterator.Iterator
        batch_size: 8
        progress: false
        torch:
          device: cpu
          num_workers: 0
        eval_callbacks:
          accuracy: widepkg.callbacks.accuracy
    """,
}


def test_evaluating_a_run_builds_the_model_with_the_runs_training_settings(edflow_project):
    import pytest

    pytest.importorskip("edflow_torch")
    edflow_project.write(WIDE_TORCH)
    edflow_project.run("-t", "train.yaml", "--hidden_units", "64").assert_success()
    (run,) = edflow_project.runs()
    outcome = edflow_project.run("-e", "eval.yaml", "-p", str(run)).assert_success()
    assert "accuracy" in outcome.output, outcome
    (eval_config,) = (run / "configs").glob("eval_*[0-9].yaml")
    origins = (eval_config.parent / (eval_config.stem + ".origins.yaml")).read_text()
    assert "hidden_units: command line `--hidden_units 64`" in origins, origins
    # the eval file's own keys and the command line still win over the training's
    edflow_project.run("-e", "eval.yaml", "-p", str(run), "--batch_size", "4").assert_success()
    (_, second) = sorted(p for p in (run / "configs").glob("eval_*.yaml") if not p.name.endswith(".origins.yaml"))
    assert "batch_size: 4" in second.read_text()


def test_an_interrupted_evaluation_names_the_eval_file_to_continue_with(edflow_project):
    edflow_project.write(SLOW_ITERATOR)
    edflow_project.toy(num_steps=10, ckpt_freq=5)
    edflow_project.run("-t", "train.yaml").assert_success()
    (run,) = edflow_project.runs()
    edflow_project.config("eval.yaml", dataset="toy.data.Data", iterator="toy.slow.Iterator", batch_size=1,
                          toy_examples=200, eval_sleep=0.05)
    evaluation = edflow_project.start("-e", "eval.yaml", "-p", str(run), "--all")
    wait_for(lambda: list((run / "eval").glob("*_eval/log.txt")), 120, "the evaluation's log")
    (log,) = (run / "eval").glob("*_eval/log.txt")
    wait_for(lambda: "restored" in log.read_text() or "evaluat" in log.read_text(), 120, "the evaluation to start")
    evaluation.send(signal.SIGINT)
    outcome = evaluation.wait(timeout=120)
    assert outcome.returncode == 130, outcome
    assert f"continue it with: edflow -e eval.yaml -p {run} --all" in outcome.output, outcome


def test_p_takes_the_run_names_of_edflow_runs_and_a_finished_run_only_says_it_is_finished(edflow_project):
    edflow_project.toy(num_steps=10, ckpt_freq=5)
    edflow_project.run("-t", "train.yaml", "-n", "baseline").assert_success()
    (run,) = edflow_project.runs()
    metrics = (run / "train" / "metrics.jsonl").read_text()
    for shorthand in (run.name, "_baseline"):  # as 'edflow runs', 'diff' and 'plot' take them
        outcome = edflow_project.run("-p", shorthand).assert_success()
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        assert len(lines) == 2 and "restored checkpoint" in lines[0], outcome
        assert "training already complete at global step 10 (of 10)" in lines[1], outcome
    assert (run / "train" / "metrics.jsonl").read_text() == metrics
    edflow_project.run("-p", "_nosuchrun").assert_failed(2)
