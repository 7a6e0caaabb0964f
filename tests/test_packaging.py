"""The edcore wheel ships the schemas, so a non-editable install validates too."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """edcore and edflow-torch installed (not editable) into a folder of their own, for PYTHONPATH."""
    folder = tmp_path_factory.mktemp("installed") / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(folder), str(ROOT), str(ROOT / "plugins" / "edflow_torch")], check=True, capture_output=True)
    return folder


def test_wheel_contains_the_schemas_and_the_console_script(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("edcore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "edcore/schemas/edflow.schema.json" in names
    assert "edcore/schemas/sweep.schema.json" in names
    assert "edcore/hookspecs.py" in names and "edcore/builtin/providers.py" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "edflow = edcore.cli:main" in entry_points


def test_a_non_editable_install_trains_a_user_project(tmp_path, site):
    """`pip install . plugins/edflow_torch` (not editable) is enough: schemas, entry point and CLI all work."""
    from edcore.testing import EdflowProject
    from test_end_to_end import TRAIN_YAML, USER_PROJECT

    project = EdflowProject(tmp_path / "project", env={"PYTHONPATH": str(site)})
    project.path.mkdir()
    project.write(USER_PROJECT)
    (project.path / "train.yaml").write_text(TRAIN_YAML.replace("num_epochs: 8", "num_epochs: 1"))
    where = subprocess.run(
        [sys.executable, "-c", "import edcore, edflow_torch, edcore.schema as s; print(edcore.__file__); "
                               "print(edflow_torch.__file__); print(s.__file__)"],
        env={**project.env, "PATH": ""}, capture_output=True, text=True, check=True, cwd=project.path).stdout.split()
    assert all(path.startswith(str(site)) for path in where), where  # the installed copies, not the checkout

    rejected = project.run("-t", "train.yaml", "--batch_size", "0").assert_failed(2)
    assert "key 'batch_size': expected an integer >= 1" in rejected.stderr  # the shipped schema is in use
    project.run("-t", "train.yaml").assert_success()
    (run,) = project.runs()
    assert project.metrics(run)[-1]["global_step"] == 6
    assert (run / "train" / "checkpoints" / "latest").exists()


def test_an_edcore_folder_in_the_working_directory_shadows_no_process_of_the_run(tmp_path, site):
    """Run from a copy of the repository (here: just a folder named edcore), the training and its evaluation
    process both use the installed edcore, and the user's modules are still found in the working directory."""
    from edcore.testing import EdflowProject
    from evaluation_backends import write_project

    project = EdflowProject(tmp_path / "project", env={"PYTHONPATH": str(site)})
    project.path.mkdir()
    write_project(project, "torch")
    project.write({"edcore/__init__.py": "raise ImportError('the edcore folder of the working directory')\n"})
    # the console script as pip installed it, the way a user starts edflow
    result = subprocess.run([str(site / "bin" / "edflow"), "-b", "base.yaml", "-t", "train.yaml", "-e", "eval.yaml"],
                            cwd=project.path, env={**os.environ, **project.env, "PYTHONUNBUFFERED": "1"}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "evaluation process for" not in result.stderr  # no evaluation process failed
    (run,) = project.runs()
    (metrics,) = (run / "eval").glob("*_eval/metrics.jsonl")
    assert [json.loads(line)["global_step"] for line in metrics.read_text().splitlines()] == [3, 6, 9, 12]
    entries = json.loads((run / "run.json").read_text())["invocations"]
    assert [entry["mode"] for entry in entries] == ["train", "eval"]
    assert entries[1]["command"][1:3] == ["-b", "base.yaml"]  # the evaluator's own command line, recorded as such
