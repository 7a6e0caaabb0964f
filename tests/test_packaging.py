"""The edcore wheel ships the schemas, so a non-editable install validates too."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_wheel_contains_the_schemas_and_the_console_script(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("edcore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "edcore/schemas/edflow.schema.json" in names
    assert "edcore/hookspecs.py" in names and "edcore/builtin/providers.py" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "edflow = edcore.cli:main" in entry_points


def test_a_non_editable_install_trains_a_user_project(tmp_path):
    """`pip install . plugins/edflow_torch` (not editable) is enough: schemas, entry point and CLI all work."""
    from edcore.testing import EdflowProject
    from test_end_to_end import TRAIN_YAML, USER_PROJECT

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(ROOT), str(ROOT / "plugins" / "edflow_torch")], check=True, capture_output=True)
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
