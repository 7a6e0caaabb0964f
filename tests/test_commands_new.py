"""``edflow new``: the skeleton trains out of the box with the real backend, evaluates, and never overwrites."""
import importlib.util
import json

import pytest


def test_torch_skeleton_trains_and_evaluates_out_of_the_box(edflow_project):
    outcome = edflow_project.run("new", "my_project", timeout=60).assert_success()
    assert "train it:     edflow -t my_project/train.yaml" in outcome.stdout
    folder = edflow_project.path / "my_project"
    assert sorted(p.name for p in folder.iterdir()) == ["__init__.py", "data.py", "eval.yaml", "iterator.py",
                                                        "metrics.py", "model.py", "train.yaml"]
    edflow_project.run("-t", "my_project/train.yaml", timeout=300).assert_success()
    (run,) = edflow_project.runs()
    metrics = edflow_project.metrics(run)
    assert [m["global_step"] for m in metrics] == [1, 50, 100, 150, 200, 250, 300]
    assert metrics[-1]["loss"] < metrics[0]["loss"] and metrics[-1]["accuracy"] > 0.8
    assert (run / "code" / "my_project" / "model.py").exists()
    outcome = edflow_project.run("-e", "my_project/eval.yaml", "-p", str(run), "--progress", "false",
                                 timeout=300).assert_success()
    assert [p.name for p in (run / "eval").glob("*/*") if p.is_dir()] == ["0000000300"]
    (result,) = (run / "eval").glob("*/0000000300/metrics.json")
    accuracy = json.loads(result.read_text())["heldout/accuracy"]
    assert accuracy > 0.8 and f"heldout/accuracy {accuracy:.4g}" in outcome.output, outcome  # printed, and good
    (row,) = json.loads(edflow_project.run("runs", "--json", timeout=60).stdout)
    assert row["status"] == "finished" and row["checkpoint_step"] == 300


def test_the_skeleton_fixes_its_seed_so_two_runs_are_identical(edflow_project):
    import torch

    edflow_project.run("new", "same", timeout=60).assert_success()
    for name in ("first", "second"):
        edflow_project.run("-t", "same/train.yaml", "-n", name, "--num_steps", "60", "--log_freq", "10",
                           timeout=300).assert_success()
    runs = edflow_project.runs()
    logged = [[{k: v for k, v in m.items() if k != "time"} for m in edflow_project.metrics(run)] for run in runs]
    assert len(logged[0]) == 7 and logged[0] == logged[1]
    first, second = (torch.load(run / "train" / "checkpoints" / "0000000060" / "torch_state.pt", weights_only=True)
                     for run in runs)
    assert all(torch.equal(first["model"][key], second["model"][key]) for key in first["model"])


def test_refuses_to_overwrite_and_rejects_bad_names(edflow_project):
    edflow_project.write({"taken/train.yaml": "mine: 1\n"})
    outcome = edflow_project.run("new", "taken", timeout=60).assert_failed(2)
    assert "'taken' already exists; edflow new never overwrites" in outcome.stderr
    assert (edflow_project.path / "taken" / "train.yaml").read_text() == "mine: 1\n"
    assert sorted(p.name for p in (edflow_project.path / "taken").iterdir()) == ["train.yaml"]
    outcome = edflow_project.run("new", "my-project", timeout=60).assert_failed(2)
    assert "'my-project' cannot be a Python package name" in outcome.stderr and "'my_project'" in outcome.stderr
    assert not (edflow_project.path / "my-project").exists()


def test_nested_path_names_the_package_after_its_last_part(edflow_project):
    outcome = edflow_project.run("new", "work/demo", timeout=60).assert_success()
    assert "cd work && edflow -t demo/train.yaml" in outcome.stdout
    assert "dataset: demo.data.Dataset" in (edflow_project.path / "work" / "demo" / "train.yaml").read_text()


@pytest.mark.skipif(importlib.util.find_spec("edflow_tf") is None, reason="the TensorFlow backend is not installed")
def test_tf_skeleton_trains_out_of_the_box(edflow_project):
    edflow_project.run("new", "tf_project", "--backend", "tf", timeout=60).assert_success()
    assert "from edflow_tf import TemplateIterator" in (edflow_project.path / "tf_project" / "iterator.py").read_text()
    edflow_project.run("-t", "tf_project/train.yaml", "--num_steps", "100", timeout=300).assert_success()
    (run,) = edflow_project.runs()
    metrics = edflow_project.metrics(run)
    assert metrics[-1]["global_step"] == 100 and metrics[-1]["loss"] < metrics[0]["loss"]
    edflow_project.run("-e", "tf_project/eval.yaml", "-p", str(run), timeout=300).assert_success()
