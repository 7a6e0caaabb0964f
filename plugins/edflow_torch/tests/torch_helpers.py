"""A tiny torch project (4 features, 2 classes, dropout, Adam and a scheduler) that every test trains for real.

A module of its own, not conftest.py: the TensorFlow tests have a conftest too, and ``from conftest import``
would pick whichever comes first on sys.path."""
import os
import subprocess
import sys

from edcore import hookimpl
from edcore.testing import EdflowProject, Outcome

TINY_PACKAGE = {
    "tiny/__init__.py": "",
    "tiny/data.py": '''
        import os

        import numpy as np


        class Data:
            """n examples {"x": float64[4], "y": int64, "index": int}; each loaded index is appended to
            $TINY_LOADED when it is set (so tests see which examples were read, and in which order)."""

            def __init__(self, config):
                n = config.get("tiny_examples", 40)
                self.x = np.random.RandomState(0).randn(n, 4)
                self.y = (self.x[:, 0] + self.x[:, 1] > 0).astype("int64")
                self.record = os.environ.get("TINY_LOADED")

            def __len__(self):
                return len(self.x)

            def __getitem__(self, index):
                if self.record:
                    with open(self.record, "a") as stream:
                        stream.write(f"{index}\\n")
                return {"x": self.x[index], "y": self.y[index], "index": index}
    ''',
    "tiny/model.py": '''
        import torch


        class Net(torch.nn.Module):
            def __init__(self, config):
                super().__init__()
                self.layers = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                                  torch.nn.Linear(16, 2))

            def forward(self, x):
                return self.layers(x)
    ''',
    "tiny/iterator.py": '''
        import json
        import os

        import torch
        from edflow_torch import TemplateIterator


        class Iterator(TemplateIterator):
            """Adam with a step-wise LR schedule; every op call is traced into self.trace (and $TINY_TRACE)."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.02)
                self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=5, gamma=0.5)
                self.trace = []

            def _trace(self, op, model, x, logits, index):
                entry = {"op": op, "global_step": self.get_global_step(), "training": model.training,
                         "inference_mode": torch.is_inference_mode_enabled(), "x_dtype": str(x.dtype),
                         "logits_dtype": str(logits.dtype), "device": str(x.device), "index": index.tolist()}
                self.trace.append(entry)
                if os.environ.get("TINY_TRACE"):
                    with open(os.environ["TINY_TRACE"], "a") as stream:
                        stream.write(json.dumps(entry) + "\\n")

            def step_op(self, model, x, y, index, **other_feeds):
                logits = model(x)
                loss = torch.nn.functional.cross_entropy(logits.float(), y)

                def train_op():
                    self._trace("train_op", model, x, logits, index)
                    self.optimize(loss, self.optimizer)
                    self.scheduler.step()

                def log_op():
                    self._trace("log_op", model, x, logits, index)
                    return {"scalars": {"loss": loss, "accuracy": (logits.argmax(1) == y).float().mean(),
                                        "rank": float(os.environ.get("RANK", 0))}}  # averaged: 0.5 on 2 ranks

                def eval_op():
                    self._trace("eval_op", model, x, logits, index)
                    return {"prediction": logits.argmax(1)}

                return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
    ''',
    "tiny/ranks.py": '''
        import json
        import os
        import time

        import torch
        from edcore import hookimpl


        class RankRecorder:
            """Writes what each rank trained on and its final weights into the folder $TINY_RANKS. With
            $TINY_HOLD=1 each rank then writes stopped_<rank> there and waits for go_<rank> (at most 120 s)."""

            def __init__(self):
                self.indices = []

            @hookimpl
            def edflow_after_step(self, global_step, feeds):
                self.indices.append([global_step, feeds["index"].tolist()])

            @hookimpl
            def edflow_after_training(self, iterator, status):
                folder, rank = os.environ["TINY_RANKS"], os.environ.get("RANK", "0")
                model = getattr(iterator.model, "module", iterator.model)  # inside DistributedDataParallel
                torch.save(model.state_dict(), os.path.join(folder, f"weights_{rank}.pt"))
                with open(os.path.join(folder, f"indices_{rank}.json"), "w") as stream:
                    json.dump({"indices": self.indices, "ddp": type(iterator.model).__name__}, stream)
                if os.environ.get("TINY_HOLD") == "1":
                    open(os.path.join(folder, f"stopped_{rank}"), "w").close()
                    deadline = time.monotonic() + 120
                    while not os.path.exists(os.path.join(folder, f"go_{rank}")) and time.monotonic() < deadline:
                        time.sleep(0.02)
    ''',
}

TINY_CONFIG = {
    "dataset": "tiny.data.Data",
    "model": "tiny.model.Net",
    "iterator": "tiny.iterator.Iterator",
    "batch_size": 4,
    "num_steps": 10,
    "log_freq": 4,
    "seed": 3,
    "tensorboard": False,
    "progress": False,
    "torch": {"device": "cpu", "num_workers": 0, "num_threads": 1},
}


class TorchProject(EdflowProject):
    """An :class:`EdflowProject` holding the tiny torch package."""

    def torchrun(self, nproc, *args, timeout=300, env=None):
        """``torchrun --standalone --nproc_per_node=N -m edcore ARGS``."""
        result = subprocess.run(torchrun_command(nproc, *args), cwd=self.path, capture_output=True, text=True,
                                timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        return Outcome(["torchrun", *map(str, args)], result.returncode, result.stdout, result.stderr, self.path)

    def tiny(self, name="train.yaml", drop=(), torch=None, **overrides):
        """Write the package and a config: TINY_CONFIG with ``overrides`` (``torch`` merges into its section)."""
        self.write(TINY_PACKAGE)
        values = {**TINY_CONFIG, **overrides}
        values["torch"] = {**TINY_CONFIG["torch"], **(torch or {})}
        return self.config(name, **{key: value for key, value in values.items() if key not in drop})


def torchrun_command(nproc, *args):
    """torchrun with a free port (``--standalone``), so that parallel test runs never clash."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "edcore", *map(str, args)]


class IteratorCatcher:
    """A plugin that keeps the iterator of an in-process run, to inspect it afterwards."""

    def __init__(self):
        self.iterator = None

    @hookimpl
    def edflow_before_training(self, iterator):
        self.iterator = iterator
