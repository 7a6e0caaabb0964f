"""``edflow diff``: differences of two real runs' effective configs (with origins) and code snapshots."""
import json


def two_runs(project):
    project.toy(num_steps=2)
    project.write({"toy/old.py": "OLD = 1\n"})
    project.run("-t", "train.yaml", "-n", "first", timeout=120).assert_success()
    project.toy(num_steps=2, log_freq=1)  # a changed train.yaml: log_freq on the same line
    (project.path / "toy" / "old.py").unlink()
    project.write({"toy/new.py": "NEW = 2\n"})
    iterator = project.path / "toy" / "iterator.py"
    iterator.write_text(iterator.read_text().replace("0.1 * x.T", "0.05 * x.T"))
    project.run("-t", "train.yaml", "-n", "second", "--batch_size", "4", timeout=120).assert_success()
    return project.runs()


def test_config_and_code_differences(edflow_project):
    first, second = two_runs(edflow_project)
    outcome = edflow_project.run("diff", str(first), "_second", timeout=60).assert_failed(1)  # differ: 1, as diff(1)
    text = outcome.stdout
    assert "  batch_size:\n    A: 8    (train.yaml:3)\n    B: 4    (command line `--batch_size 4`)" in text
    assert "  log_freq:\n    A: 5    (train.yaml:5)\n    B: 1    (train.yaml:5)" in text
    assert "  seed:" not in text and "  dataset:" not in text  # equal values are not listed
    assert "only in A: toy/old.py" in text and "only in B: toy/new.py" in text
    assert "changed:   toy/iterator.py" in text
    assert f"--- {first.name}/code/toy/iterator.py" in text
    assert "\n-            self.w -= 0.1 * x.T" in text and "\n+            self.w -= 0.05 * x.T" in text


def test_json_and_identical_runs(edflow_project):
    first, second = two_runs(edflow_project)
    outcome = edflow_project.run("diff", str(first), str(second), "--json", timeout=60).assert_failed(1)
    report = json.loads(outcome.stdout)
    by_key = {entry["key"]: entry for entry in report["config"]}
    assert by_key["batch_size"]["a"] == 8 and by_key["batch_size"]["b_origin"] == "command line `--batch_size 4`"
    assert report["code"]["added"] == ["toy/new.py"] and list(report["code"]["changed"]) == ["toy/iterator.py"]
    same = edflow_project.run("diff", str(first), str(first), timeout=60).assert_success().stdout
    assert "config (train):\n  identical" in same and "code:\n  identical" in same


def test_a_missing_run_is_a_usage_error(edflow_project):
    outcome = edflow_project.run("diff", "logs/nope", "logs/nope2", timeout=60).assert_failed(2)
    assert "run folder 'logs/nope' does not exist" in outcome.stderr and "Traceback" not in outcome.stderr
    (edflow_project.path / "notarun").mkdir()
    outcome = edflow_project.run("diff", "notarun", "notarun", timeout=60).assert_failed(2)
    assert "'notarun' is not an edflow run folder" in outcome.stderr


def test_runs_that_differ_only_in_code_or_only_in_config_exit_1(edflow_project):
    first, second = two_runs(edflow_project)
    edflow_project.run("diff", str(first), str(second), "--no-code", timeout=60).assert_failed(1)  # batch_size
    copy = first.parent / "copy"
    import shutil

    shutil.copytree(first, copy)
    (copy / "code" / "toy" / "old.py").write_text("OLD = 2\n")
    edflow_project.run("diff", str(first), str(copy), "--no-code", timeout=60).assert_success()
    outcome = edflow_project.run("diff", str(first), str(copy), timeout=60).assert_failed(1)
    assert "changed:   toy/old.py" in outcome.stdout
