"""``edflow compare``: one table of five real toy runs: the config keys that differ, last and best metrics, status."""
import csv
import io
import json
import sys

import pytest

from edcore.testing import TOY_CONFIG, TOY_PACKAGE

#: The toy iterator with its learning rate read from the config, so that runs can differ in it.
TOY_WITH_LR = {
    **TOY_PACKAGE,
    "toy/iterator.py": TOY_PACKAGE["toy/iterator.py"].replace("self.w -= 0.1 * x.T",
                                                              "self.w -= self.config['lr'] * x.T"),
    "toy/metrics.py": '''
        import numpy as np


        def mse(eval_dir, dataset, outputs, config):
            targets = np.array([dataset[i]["y"] for i in range(len(dataset))])
            return {"mse": float(np.mean((outputs["prediction"] - targets) ** 2))}
    ''',
}
LEARNING_RATES = (0.01, 0.05, 0.1, 0.2)


@pytest.fixture(autouse=True)
def own_toy_modules():
    """The in-process trainings here import a toy package of their own: forget any other before, and this one after
    (the other tests' toy iterator has no learning rate in the config)."""
    def forget():
        for name in [n for n in sys.modules if n == "toy" or n.startswith("toy.")]:
            del sys.modules[name]

    forget()
    yield
    forget()


@pytest.fixture
def five_runs(edflow_project):
    """Four runs that differ in lr, a fifth in batch_size too, one evaluated; oldest first."""
    config = {**TOY_CONFIG, "lr": 0.1, "num_steps": 10, "log_freq": 2, "ckpt_freq": 10}
    runs = []
    for lr in LEARNING_RATES:
        training = edflow_project.train("-n", f"lr{lr}", "--lr", str(lr), files=TOY_WITH_LR, config=config)
        assert training.returncode == 0
        runs.append(training.run)
    training = edflow_project.train("-n", "small", "--lr", "0.1", "--batch_size", "4", files=TOY_WITH_LR,
                                    config=config)
    runs.append(training.run)
    edflow_project.write({"eval.yaml": "dataset: toy.data.Data\niterator: toy.iterator.Iterator\nbatch_size: 8\n"
                                       "lr: 0.1\neval_callbacks:\n  error: toy.metrics.mse\n"})
    edflow_project.run("-e", "eval.yaml", "-p", str(runs[2]), "--progress", "false", timeout=120).assert_success()
    return runs


def losses(project, run):
    return [record["loss"] for record in project.metrics(run)]


def test_table_of_a_log_folder(edflow_project, five_runs):
    outcome = edflow_project.run("compare", "logs", timeout=60).assert_success()
    lines = outcome.stdout.splitlines()
    header = lines[0].split()
    assert header == ["RUN", "STATUS", "batch_size", "lr", "loss", "last", "loss", "best",
                      "eval/eval/error/mse", "last", "eval/eval/error/mse", "best"]
    assert "seed" not in lines[0] and "dataset" not in lines[0]  # equal in all five: not shown
    rows = [line.split() for line in lines[1:6]]
    assert [row[0] for row in rows] == [run.name for run in five_runs]
    assert all(row[1] == "finished" for row in rows)
    assert [row[3] for row in rows] == ["0.01", "0.05", "0.1", "0.2", "0.1"]
    assert [row[2] for row in rows] == ["8", "8", "8", "8", "4"]
    for row, run in zip(rows, five_runs):
        logged = losses(edflow_project, run)
        assert float(row[4]) == pytest.approx(logged[-1], rel=1e-3)
        assert float(row[5]) == pytest.approx(min(logged), rel=1e-3)
    assert rows[0][6:] == ["-", "-"] and rows[2][6] != "-"  # only the third run was evaluated
    assert "5 runs; best = the smallest logged value (--mode min)" in outcome.stdout


def test_json_sort_where_and_mode(edflow_project, five_runs):
    report = json.loads(edflow_project.run("compare", "logs", "--json", "--sort", "loss", timeout=60)
                        .assert_success().stdout)
    assert report["best"] == "min" and report["config_keys"] == ["batch_size", "lr"]
    best = [run["metrics"]["loss"]["best"] for run in report["runs"]]
    assert best == sorted(best) and len(best) == 5
    by_name = {run["name"]: run for run in report["runs"]}
    first = by_name[five_runs[0].name]
    assert first["config"] == {"batch_size": 8, "lr": 0.01} and first["status"] == "finished"
    assert first["metrics"]["loss"]["last"] == losses(edflow_project, five_runs[0])[-1]
    assert first["metrics"]["loss"]["last_step"] == 10

    descending = json.loads(edflow_project.run("compare", "logs", "--json", "--sort", "loss", "--desc", "--mode",
                                               "max", timeout=60).assert_success().stdout)
    assert descending["best"] == "max"
    highest = [run["metrics"]["loss"]["best"] for run in descending["runs"]]
    assert highest == sorted(highest, reverse=True)
    assert highest[0] == max(max(losses(edflow_project, run)) for run in five_runs)

    # --where values are typed as YAML; runs given by folder and by name; the fifth differs only in batch_size
    where = json.loads(edflow_project.run("compare", "logs", "--where", "lr=0.1", "--json", timeout=60)
                       .assert_success().stdout)
    assert [run["name"] for run in where["runs"]] == [five_runs[2].name, five_runs[4].name]
    assert where["config_keys"] == ["batch_size"]
    named = json.loads(edflow_project.run("compare", "_lr0.01", str(five_runs[1]), "--where", "batch_size=8",
                                          "--json", timeout=60).assert_success().stdout)
    assert [run["name"] for run in named["runs"]] == [five_runs[0].name, five_runs[1].name]


def test_csv(edflow_project, five_runs):
    text = edflow_project.run("compare", *map(str, five_runs), "--csv", timeout=60).assert_success().stdout
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:4] == ["run", "status", "batch_size", "lr"] and table[0][4:6] == ["loss last", "loss best"]
    assert len(table) == 6
    assert float(table[1][4]) == losses(edflow_project, five_runs[0])[-1]  # full precision, not the table's 4 digits
    assert table[1][6:] == ["", ""]  # not evaluated: empty cells


def test_bad_input(edflow_project, five_runs):
    outcome = edflow_project.run("compare", "logs", "--where", "lrr=0.1", timeout=60).assert_failed(2)
    assert "no run's effective config has the key 'lrr'; did you mean lr?" in outcome.stderr
    assert "Traceback" not in outcome.stderr
    outcome = edflow_project.run("compare", "logs", "--where", "lr=7", timeout=60).assert_failed(2)
    assert "no run matches --where lr=7" in outcome.stderr
    outcome = edflow_project.run("compare", "logs", "--sort", "accuracy", timeout=60).assert_failed(2)
    assert "--sort 'accuracy': no run logged this metric; the metrics are loss, eval/eval/error/mse" in outcome.stderr
    outcome = edflow_project.run("compare", "logs", "--where", "lr", timeout=60).assert_failed(2)
    assert "--where 'lr': expected KEY=VALUE" in outcome.stderr
    (edflow_project.path / "empty").mkdir()
    outcome = edflow_project.run("compare", "empty", timeout=60).assert_failed(2)
    assert "'empty' holds no run folders" in outcome.stderr


def test_runs_without_a_common_metric_are_refused(edflow_project, five_runs):
    other = five_runs[1]
    lines = (other / "train" / "metrics.jsonl").read_text().replace('"loss"', '"error"')
    (other / "train" / "metrics.jsonl").write_text(lines)
    outcome = edflow_project.run("compare", str(five_runs[0]), str(other), timeout=60).assert_failed(2)
    assert (f"the runs have no metric in common ({five_runs[0].name}: loss; {other.name}: error)"
            in outcome.stderr)
