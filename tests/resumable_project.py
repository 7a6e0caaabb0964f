"""A tiny PyTorch user project for the reliability tests: dropout, shuffling, Adam, optional DataLoader workers.

Environment variables let a test stop it at exact places without changing its config:

``RPROJ_DIR``          folder for the marker files the project writes (``paused-<step>``, ``at-<point>``)
``RPROJ_SERVED``       file that every ``__getitem__`` appends ``<index> <pid>`` to (which examples were loaded)
``RPROJ_PAUSE_AT``     comma-separated global steps; the step writes ``paused-<step>`` and waits for a signal
``RPROJ_HOLD``         with ``1`` a paused step keeps waiting after the first signal (for double Ctrl-C)
``RPROJ_RAISE_AT``     global step whose train op raises ``ValueError``
``RPROJ_KILL_STEP``    with ``RPROJ_KILL_POINT``: the checkpoint save of that step writes ``at-<point>`` and waits
                       to be killed; points: before-tensors, after-tensors, during-bulk, before-publication,
                       before-latest
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

FILES = {
    "rproj/__init__.py": "",
    "rproj/data.py": '''
        import os

        import numpy as np


        class Points:
            """36 examples of a 2-class problem; every load is recorded when RPROJ_SERVED is set."""

            def __init__(self, config):
                rng = np.random.RandomState(0)
                self.x = rng.randn(config.get("examples", 36), 4).astype("float32")
                self.y = (self.x[:, 0] - self.x[:, 2] > 0).astype("int64")
                self.record = os.environ.get("RPROJ_SERVED")

            def __len__(self):
                return len(self.x)

            def __getitem__(self, index):
                if self.record:
                    # one short append per example stays one whole line even with several worker processes
                    with open(self.record, "a") as stream:
                        stream.write(f"{index} {os.getpid()}\\n")
                return {"x": self.x[index], "y": self.y[index], "index": index}
    ''',
    "rproj/model.py": '''
        import torch


        class Net(torch.nn.Module):
            def __init__(self, config):
                super().__init__()
                hidden = config.get("hidden", 16)
                self.layers = torch.nn.Sequential(
                    torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(hidden, 2)
                )

            def forward(self, x):
                return self.layers(x)
    ''',
    "rproj/iterator.py": '''
        import os
        import time

        import torch
        from edflow_torch import TemplateIterator


        def _steps(name):
            return {int(s) for s in os.environ.get(name, "").split(",") if s}


        class Iterator(TemplateIterator):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.01)
                self.pause_at = _steps("RPROJ_PAUSE_AT")
                self.raise_at = _steps("RPROJ_RAISE_AT")
                self.kill_step = _steps("RPROJ_KILL_STEP")
                self.marker_dir = os.environ.get("RPROJ_DIR", ".")

            def step_op(self, model, x, y, index):
                loss = torch.nn.functional.cross_entropy(model(x), y)

                def train_op():
                    step = self.get_global_step()
                    if step in self.raise_at:
                        raise ValueError(f"the user's code failed at step {step}")
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                    if step in self.pause_at:
                        self.pause(step)

                def log_op():
                    return {"scalars": {"loss": loss}}

                return {"train_op": train_op, "log_op": log_op}

            def pause(self, step):
                """Tell the test that this step runs, then wait for its signal (the step is not finished yet)."""
                open(os.path.join(self.marker_dir, f"paused-{step}"), "w").close()
                deadline = time.monotonic() + 60
                hold = os.environ.get("RPROJ_HOLD") == "1"
                while time.monotonic() < deadline and (hold or not self.runtime.stop_signal):
                    time.sleep(0.01)

            def save(self, path):
                at_kill_step = self.get_global_step() in self.kill_step
                if at_kill_step:
                    wait_here("before-tensors")
                super().save(path)
                if at_kill_step:
                    wait_here("after-tensors")


        def wait_here(point):
            """At the configured kill point: say so through a file, then wait to be killed."""
            if os.environ.get("RPROJ_KILL_POINT") != point:
                return
            open(os.path.join(os.environ.get("RPROJ_DIR", "."), f"at-{point}"), "w").close()
            time.sleep(60)
    ''',
    "rproj/slowsave.py": '''
        """A plugin that adds a large file to every checkpoint, written slowly, and waits at the kill point."""
        import os

        from edcore import hookimpl

        from rproj.iterator import wait_here

        BULK_BYTES = 4 * 1024 * 1024
        _rename, _replace = os.rename, os.replace


        def _steps():
            return {int(s) for s in os.environ.get("RPROJ_KILL_STEP", "").split(",") if s}


        @hookimpl
        def edflow_save_checkpoint(iterator, path, global_step):
            chunk = bytes(range(256)) * 4096
            with open(os.path.join(path, "bulk.bin"), "wb") as stream:
                for written in range(0, BULK_BYTES, len(chunk)):
                    stream.write(chunk)
                    if written == BULK_BYTES // 2 and global_step in _steps():
                        stream.flush()
                        wait_here("during-bulk")


        def rename(source, target, *args, **kwargs):
            # the core publishes a checkpoint with os.rename(.tmp-..., <step>) and points 'latest' with os.replace
            name = os.path.basename(os.fspath(target))
            if os.path.basename(os.fspath(source)).startswith(".tmp-") and name.isdigit() and int(name) in _steps():
                wait_here("before-publication")
            return _rename(source, target, *args, **kwargs)


        def replace(source, target, *args, **kwargs):
            if os.path.basename(os.fspath(target)) == "latest":
                with open(source) as stream:
                    if int(stream.read().strip()) in _steps():
                        wait_here("before-latest")
            return _replace(source, target, *args, **kwargs)


        os.rename, os.replace = rename, replace
    ''',
}

CONFIG = {
    "dataset": "rproj.data.Points",
    "model": "rproj.model.Net",
    "iterator": "rproj.iterator.Iterator",
    "batch_size": 5,
    "num_epochs": 3,
    "log_freq": 4,
    "seed": 7,
    "tensorboard": False,
    "progress": False,
    "torch": {"num_workers": 0, "device": "cpu"},
}
NUM_EXAMPLES = 36
BATCHES_PER_EPOCH = 8  # ceil(36 / 5)
TOTAL_STEPS = 3 * BATCHES_PER_EPOCH


def write_project(project, name: str = "train.yaml", **overrides) -> Path:
    """Write the package and a config (``CONFIG`` updated with ``overrides``; ``torch`` merges)."""
    project.write(FILES)
    config = {**CONFIG, **overrides}
    config["torch"] = {**CONFIG["torch"], **overrides.get("torch", {})}
    return project.config(name, **config)


def marker_env(folder: Path, **values) -> dict:
    """The environment for one invocation: marker folder plus ``RPROJ_<NAME>`` values."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {"RPROJ_DIR": str(folder)}
    env.update({f"RPROJ_{key.upper()}": str(value) for key, value in values.items()})
    return env


def load_state(checkpoint: Path) -> dict:
    """The torch state of a checkpoint folder, loaded as edflow-torch loads it (weights only)."""
    return torch.load(checkpoint / "torch_state.pt", map_location="cpu", weights_only=True)


def final_checkpoint(run: Path) -> Path:
    steps = sorted(p for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())
    return steps[-1]


def assert_bit_identical(a, b, where: str = "state") -> None:
    """Every tensor equal (torch.equal), every other value equal, the same structure."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_bit_identical(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for index, (x, y) in enumerate(zip(a, b)):
            assert_bit_identical(x, y, f"{where}/{index}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_training(run: Path, reference: Path) -> None:
    """Model parameters and optimizer state at the end of ``run`` are bit-identical to ``reference``'s."""
    ours, theirs = load_state(final_checkpoint(run)), load_state(final_checkpoint(reference))
    assert final_checkpoint(run).name == final_checkpoint(reference).name
    assert_bit_identical(ours["model"], theirs["model"], "model")
    assert_bit_identical(ours["optimizers"], theirs["optimizers"], "optimizers")
    core = json.loads((final_checkpoint(run) / "edcore.json").read_text())["state"]
    assert core == json.loads((final_checkpoint(reference) / "edcore.json").read_text())["state"]


def served(path: Path) -> list[tuple[int, int]]:
    """``(example index, pid)`` for every example loaded, in order of writing."""
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]
