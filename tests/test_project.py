"""Run folders and the code snapshot."""
import datetime
import json
import subprocess

import pytest

from edcore.errors import UsageError
from edcore.project import ProjectManager, default_code_root

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5)


def test_layout_and_attributes(tmp_path):
    project = ProjectManager.create(tmp_path / "logs", "mnist", NOW)
    assert project.root == tmp_path / "logs" / "2026-01-02T03-04-05_mnist"
    for folder in (project.configs, project.code, project.train, project.checkpoints, project.eval):
        assert folder.is_dir()
    assert project.checkpoints == project.train / "checkpoints"
    assert project.name == "mnist"


def test_two_runs_in_the_same_second_get_distinct_folders(tmp_path):
    first = ProjectManager.create(tmp_path, "same", NOW)
    second = ProjectManager.create(tmp_path, "same", NOW)
    assert first.root != second.root and second.root.name == "2026-01-02T03-04-05_same_2"


def test_names_are_made_safe_for_paths(tmp_path):
    assert ProjectManager.create(tmp_path, "a/b c", NOW).root.name == "2026-01-02T03-04-05_a-b-c"


def test_open_requires_a_run_folder(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        ProjectManager.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="is not an edflow run folder"):
        ProjectManager.open(tmp_path / "plain")
    created = ProjectManager.create(tmp_path, "x", NOW)
    assert ProjectManager.open(created.root).train == created.train


def test_effective_config_and_origins_are_written(tmp_path):
    from edcore.config import apply_overrides, load_text, parse_overrides

    config = apply_overrides(load_text("a: 1\nb: {c: 2}\n", "train.yaml"), parse_overrides(["--b/c", "5"]))
    project = ProjectManager.create(tmp_path, "x", NOW)
    path = project.write_config("train", config, NOW)
    again = project.write_config("train", config, NOW)
    assert path.name == "train_2026-01-02T03-04-05.yaml" and again != path
    assert "c: 5" in path.read_text()
    origins = path.with_suffix(".origins.yaml").read_text()
    assert "a: train.yaml:1" in origins and "b/c: command line `--b/c 5`" in origins
    assert project.latest_config("train") == again


def make_code(root):
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "model.py").write_text("class Net: pass\n")
    (root / "pkg" / "config.yaml").write_text("a: 1\n")
    (root / "pkg" / "notes.bin").write_bytes(b"\0" * 10)
    (root / "pkg" / "big.py").write_text("#" * 5000)
    (root / "pkg" / ".env").write_text("SECRET=1\n")
    (root / "pkg" / "id_rsa").write_text("-----BEGIN KEY-----\n")
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"x")


def snapshot_files(project):
    return sorted(str(p.relative_to(project.code)) for p in project.code.rglob("*") if p.is_file())


def test_snapshot_outside_git_copies_code_files_only(tmp_path):
    make_code(tmp_path / "src")
    project = ProjectManager.create(tmp_path / "logs", "x", NOW)
    summary = project.snapshot_code(tmp_path / "src" / "pkg", max_file_size=1000)
    assert snapshot_files(project) == ["pkg/__init__.py", "pkg/config.yaml", "pkg/model.py"]
    assert summary["skipped_large"] == ["big.py (5000 bytes)"] and "git" not in summary


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_snapshot_inside_git_takes_what_git_would_track(tmp_path):
    repo = tmp_path / "repo"
    make_code(repo)
    (repo / "pkg" / "ignored.py").write_text("x = 1\n")
    (repo / "pkg" / "data.csv").write_text("1,2\n")
    (repo / ".gitignore").write_text("ignored.py\n")
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=n", "add", ".gitignore", "pkg/model.py")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=n", "commit", "-qm", "init")
    (repo / "pkg" / "model.py").write_text("class Net: changed = True\n")
    project = ProjectManager.create(repo / "logs", "x", NOW)
    summary = project.snapshot_code(repo / "pkg", max_file_size=1000, logdir=repo / "logs")
    files = snapshot_files(project)
    assert "pkg/data.csv" in files and "pkg/model.py" in files and "pkg/notes.bin" in files  # untracked, not ignored
    assert "pkg/ignored.py" not in files and "pkg/.env" not in files and "pkg/id_rsa" not in files
    assert not any("__pycache__" in f for f in files)
    assert summary["git"]["dirty"] is True and len(summary["git"]["commit"]) == 40
    assert "changed = True" in (project.root / "git.diff").read_text()


def test_default_code_root_is_the_iterators_top_level_package(tmp_path, monkeypatch):
    make_code(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert default_code_root({"iterator": "pkg.model.Net"}) == str(tmp_path / "pkg")
    assert default_code_root({"iterator": "pkg.model.Net", "code_root": None}) is None
    assert default_code_root({"iterator": "pkg.model.Net", "code_root": "elsewhere"}) == "elsewhere"


def test_default_code_root_of_a_namespace_package_is_its_folder(tmp_path, monkeypatch):
    """Like ``examples.digits_tf.iterator.Iterator`` run from the repository root: ``examples`` has no __init__.py."""
    (tmp_path / "space" / "inner").mkdir(parents=True)
    (tmp_path / "space" / "inner" / "iterator.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert default_code_root({"iterator": "space.inner.iterator.Iterator"}) == str(tmp_path / "space")


def test_invocations_are_recorded(tmp_path):
    project = ProjectManager.create(tmp_path, "x", NOW)
    project.record_invocation(["-t", "train.yaml"], "train", [{"name": "core.providers"}])
    project.record_invocation(["-p", "run"], "train", [])
    record = json.loads((project.root / "run.json").read_text())
    assert [i["command"][1:] for i in record["invocations"]] == [["-t", "train.yaml"], ["-p", "run"]]
    assert "edcore" in record["invocations"][0]["packages"]
