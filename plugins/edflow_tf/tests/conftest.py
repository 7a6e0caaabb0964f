"""Fixtures of the edflow-tf tests: training runs shared by the tests of a module (TensorFlow starts in seconds)."""
from __future__ import annotations

from pathlib import Path

import pytest
from edcore.testing import EdflowProject
from tf_helpers import tf_project


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> tuple[EdflowProject, Path]:
    """One uninterrupted 20-step training run of the TF project, shared by every test that compares with it."""
    project = tf_project(tmp_path_factory.mktemp("tf_reference"))
    outcome = project.run("-t", "train.yaml", env={"PROBE_FILE": str(project.path / "probe.jsonl")}, timeout=300)
    (project.path / "output.txt").write_text(outcome.assert_success().output)
    (run,) = project.runs()
    return project, run
