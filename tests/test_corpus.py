"""User projects written as users write them (``tests/corpus/<name>/``), each an installable package with its
``train.yaml`` and ``eval.yaml``. They are installed as wheels (not editable) next to wheels of edcore and the
backends, and run with the installed ``edflow`` console script from a folder outside the repository that holds
only the two configs. Each one trains, is stopped by SIGTERM to its process group after some steps, resumes with
``edflow -p RUN`` to the end bit for bit like the uninterrupted run, and is evaluated with ``edflow -e eval.yaml -p
RUN``."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from edcore.checkpoint import CheckpointStore
from edcore.testing import EdflowProject

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
HAS_TF = importlib.util.find_spec("edflow_tf") is not None


@dataclass(frozen=True)
class Case:
    backend: str  # "torch" or "tf": how the checkpoints are compared
    steps: int  # global steps of the whole training (train.yaml's epochs times batches per epoch)
    stop_after: int  # the step after which SIGTERM reaches the process group (mid-epoch)
    metric: str  # what eval.yaml's callback reports


CASES = {
    "keras_subclassed": Case("tf", steps=24, stop_after=11, metric="blobs/accuracy"),
    "keras_functional": Case("tf", steps=24, stop_after=10, metric="ring/accuracy"),
    "tinygan": Case("torch", steps=24, stop_after=11, metric="gan/mean_error"),
    "noisyshapes": Case("torch", steps=18, stop_after=8, metric="heldout/accuracy"),
}
PARAMS = [pytest.param(name, marks=pytest.mark.skipif(case.backend == "tf" and not HAS_TF,
                                                      reason="the TensorFlow backend is not installed"))
          for name, case in CASES.items()]


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """A folder with edcore, the backends, the pause probe and every corpus project pip-installed into it from
    wheels (no build isolation, no dependencies: the frameworks come from the test environment)."""
    sources = tmp_path_factory.mktemp("corpus-sources")
    site = tmp_path_factory.mktemp("corpus-site")
    # Build from copies, so that setuptools' build/ and egg-info folders never land in the repository.
    leftovers = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    projects = [shutil.copytree(CORPUS / name, sources / name, ignore=leftovers) for name in [*CASES, "pause_probe"]]
    backends = [shutil.copytree(ROOT / "plugins" / name, sources / name, ignore=leftovers)
                for name in ["edflow_torch", *(["edflow_tf"] if HAS_TF else [])]]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(ROOT), *map(str, backends), *map(str, projects)],
                   check=True, capture_output=True, timeout=600)
    assert (site / "bin" / "edflow").exists()
    return site


def user_folder(installed: Path, folder: Path, name: str) -> EdflowProject:
    """A working folder outside the repository holding only ``name``'s configs, as a user's would."""
    folder.mkdir(parents=True, exist_ok=True)
    for config in ("train.yaml", "eval.yaml"):
        shutil.copy(CORPUS / name / config, folder / config)
    return EdflowProject(folder, env={"PYTHONPATH": str(installed)}, command=[str(installed / "bin" / "edflow")])


@pytest.fixture(scope="session")
def reference_runs(installed, tmp_path_factory):
    """``reference_runs(name)``: the project in its folder and its uninterrupted run, trained once per session."""
    runs = {}

    def reference(name: str) -> tuple[EdflowProject, Path]:
        if name not in runs:
            project = user_folder(installed, tmp_path_factory.mktemp(f"reference-{name}"), name)
            project.run("-t", "train.yaml", "--progress", "false", timeout=600).assert_success()
            (run,) = project.runs()
            runs[name] = (project, run)
        return runs[name]

    return reference


@pytest.mark.parametrize("name", PARAMS)
def test_the_installed_project_trains_and_its_run_is_evaluated(name, installed, reference_runs):
    case = CASES[name]
    project, run = reference_runs(name)
    final = CheckpointStore(run / "train" / "checkpoints").latest()
    assert final.step == case.steps and final.manifest["reason"] == "final"
    snapshot = {path.name for path in (run / "code").rglob("*.py")}
    assert {"model.py", "iterator.py", "data.py"} <= snapshot  # the installed package was snapshotted

    outcome = project.run("-e", "eval.yaml", "-p", str(run), "--progress", "false", timeout=600).assert_success()
    assert case.metric in outcome.output, outcome
    (metrics_file,) = (run / "eval").glob(f"*_eval/{case.steps:010d}/metrics.json")
    value = json.loads(metrics_file.read_text())[case.metric]
    assert np.isfinite(value), value


@pytest.mark.parametrize("name", PARAMS)
def test_sigterm_to_the_group_then_resume_is_bit_identical(name, installed, reference_runs, tmp_path):
    case = CASES[name]
    _, reference = reference_runs(name)
    project = user_folder(installed, tmp_path / "work", name)
    held, release = tmp_path / "held", tmp_path / "release"
    training = project.start("-t", "train.yaml", "--progress", "false",
                             env={"PAUSE_PROBE_STEP": str(case.stop_after), "PAUSE_PROBE_HELD": str(held),
                                  "PAUSE_PROBE_RELEASE": str(release)})
    training.wait_for_file(held, timeout=600)
    os.killpg(training.pid, signal.SIGTERM)  # as `timeout`, `kill -TERM -PGID` and SLURM do
    release.touch()  # the signal is already pending: the training stops after exactly this step
    stopped = training.wait(timeout=300)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped
    (run,) = project.runs()
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    interrupted = CheckpointStore(run / "train" / "checkpoints").latest()
    assert interrupted.step == case.stop_after and interrupted.manifest["reason"] == "interrupt", stopped

    resumed = project.run("-p", str(run), "--progress", "false", timeout=600).assert_success()
    assert f"global step {case.stop_after}" in resumed.output
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert_same_final_state(case, run, reference)


def assert_same_final_state(case: Case, run: Path, reference: Path) -> None:
    """The final checkpoints hold the same step, data position and RNG states, and bit-identical weights and
    optimizer (and scheduler) states."""
    ours = CheckpointStore(run / "train" / "checkpoints").latest()
    theirs = CheckpointStore(reference / "train" / "checkpoints").latest()
    assert ours.step == theirs.step == case.steps
    core_state = [json.loads((checkpoint.path / "edcore.json").read_text())["state"] for checkpoint in (ours, theirs)]
    assert core_state[0] == core_state[1]
    if case.backend == "torch":
        from resumable_project import assert_bit_identical, load_state

        state, expected = load_state(ours.path), load_state(theirs.path)
        assert expected["optimizers"], "no optimizer state in the checkpoint"
        assert_bit_identical(state, expected, "torch_state")
    else:
        state, expected = tf_arrays(ours.path), tf_arrays(theirs.path)
        assert any("optimizer" in key for key in expected), sorted(expected)
        assert sorted(state) == sorted(expected)
        different = [key for key in expected if not np.array_equal(state[key], expected[key])]
        assert not different, f"differs from the uninterrupted run: {different}"


def tf_arrays(checkpoint: Path) -> dict:
    """Every tensor of a checkpoint's TensorFlow state (model, optimizer slots and counters, seeds), by key."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint / "tf_state"))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}
