"""The issue's acceptance case: a user project outside the repository trains with `edflow -t train.yaml` through
the installed edflow-torch, and a separately installed third-party plugin sees every step."""
import json
import subprocess
import sys

import pytest

USER_PROJECT = {
    "userpkg/__init__.py": "",
    "userpkg/data.py": '''
        import numpy as np


        class Blobs:
            def __init__(self, config):
                rng = np.random.RandomState(0)
                self.x = rng.randn(96, 4).astype("float32")
                self.y = (self.x[:, 0] + self.x[:, 1] > 0).astype("int64")

            def __len__(self):
                return len(self.x)

            def __getitem__(self, index):
                return {"x": self.x[index], "y": self.y[index]}
    ''',
    "userpkg/model.py": '''
        import torch


        class Net(torch.nn.Module):
            def __init__(self, config):
                super().__init__()
                self.layers = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

            def forward(self, x):
                return self.layers(x)
    ''',
    "userpkg/iterator.py": '''
        import torch
        from edflow_torch import TemplateIterator


        class Iterator(TemplateIterator):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.05)

            def step_op(self, model, x, y):
                logits = model(x)
                loss = torch.nn.functional.cross_entropy(logits, y)

                def train_op():
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()

                def log_op():
                    return {"scalars": {"loss": loss, "accuracy": (logits.argmax(1) == y).float().mean()}}

                return {"train_op": train_op, "log_op": log_op}
    ''',
}

TRAIN_YAML = """\
dataset: userpkg.data.Blobs
model: userpkg.model.Net
iterator: userpkg.iterator.Iterator
batch_size: 16
num_epochs: 8
log_freq: 6
seed: 0
torch:
  num_workers: 0
"""

PLUGIN_SOURCE = {
    "pyproject.toml": """\
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "edflow-step-recorder"
        version = "1.0"

        [project.entry-points.edflow]
        step_recorder = "step_recorder"

        [tool.setuptools]
        py-modules = ["step_recorder"]
    """,
    "step_recorder.py": '''
        import json
        import os

        from edcore import hookimpl


        def _write(record):
            with open(os.environ["STEP_RECORD"], "a") as stream:
                stream.write(json.dumps(record) + "\\n")


        @hookimpl
        def edflow_before_step(global_step, feeds):
            _write({"hook": "before", "step": global_step, "keys": sorted(feeds),
                    "types": sorted({type(v).__module__ for v in feeds.values()})})


        @hookimpl
        def edflow_after_step(global_step, results):
            _write({"hook": "after", "step": global_step, "results": sorted(results)})
    ''',
}


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """The third-party plugin, really built and installed by pip into its own site folder."""
    from edcore.testing import EdflowProject

    source = tmp_path_factory.mktemp("plugin_source")
    EdflowProject(source).write(PLUGIN_SOURCE)
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True)
    return site


def test_user_project_trains_through_the_installed_backend(edflow_project, installed_plugin, tmp_path):
    record = tmp_path / "steps.jsonl"
    edflow_project.write(USER_PROJECT)
    (edflow_project.path / "train.yaml").write_text(TRAIN_YAML)
    listing = edflow_project.run("plugins", env={"PYTHONPATH": str(installed_plugin)}).assert_success().stdout
    assert "step_recorder" in listing and "edflow-step-recorder 1.0" in listing and "torch" in listing

    edflow_project.run("-t", "train.yaml", env={"PYTHONPATH": str(installed_plugin), "STEP_RECORD": str(record)}).assert_success()

    (run,) = edflow_project.runs()
    metrics = edflow_project.metrics(run)
    assert metrics[-1]["global_step"] == 48 and metrics[-1]["accuracy"] > 0.85
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(c["hook"], c["step"]) for c in calls] == [(h, s + (h == "after")) for s in range(48) for h in ("before", "after")]
    before = [c for c in calls if c["hook"] == "before"]
    assert all(c["keys"] == ["x", "y"] and c["types"] == ["torch"] for c in before)  # tensors by the time plugins see them
    assert all(c["results"] == ["log_op", "train_op"] or c["results"] == ["train_op"] for c in calls if c["hook"] == "after")
    assert sorted(p.name for p in (run / "code" / "userpkg").iterdir()) == ["__init__.py", "data.py", "iterator.py", "model.py"]
