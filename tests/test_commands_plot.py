"""``edflow plot``: PNGs of the logged metrics of real runs, several runs overlaid."""
import json
import sys

import matplotlib.image

from edcore import cli
from edcore.commands import plot
from edcore.commands.runinfo import metric_series


def add_evaluation(run, name, values):
    """An evaluation's metrics.jsonl as the evaluation processes write it: one record per evaluated step."""
    folder = run / "eval" / f"2026-01-01T00-00-00_{name}"
    folder.mkdir(parents=True)
    lines = [json.dumps({"global_step": step, "time": 0.0, "num_examples": 40, "accuracy": value})
             for step, value in values]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_png_of_two_runs_with_training_and_evaluation_metrics(edflow_train, edflow_project):
    first = edflow_train(config={"num_steps": 10, "log_freq": 2}).run
    second = edflow_train("--batch_size", "4", config={"num_steps": 10, "log_freq": 2}).run
    add_evaluation(first, "holdout", [(5, 0.25), (10, 0.75), (5, 0.5)])  # step 5 evaluated again: last wins
    outcome = edflow_project.run("plot", str(first), str(second), "-o", "plots/both.png", timeout=120)
    assert outcome.assert_success().stdout.strip() == "wrote plots/both.png (2 metrics, 2 runs)"
    image = matplotlib.image.imread(edflow_project.path / "plots" / "both.png")
    assert image.shape[:2] == (400, 1200)  # one row of two 600 x 400 panels

    figure = plot.make_figure(metric_series(first) + metric_series(second))
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["train: loss", "eval/holdout: accuracy"]
    loss, accuracy = figure.axes
    assert loss.get_ylabel() == "loss" and loss.get_xlabel() == "global step"
    assert [line.get_label() for line in loss.get_lines()] == [first.name, second.name]
    assert list(loss.get_lines()[0].get_xdata()) == [m["global_step"] for m in edflow_project.metrics(first)]
    assert list(accuracy.get_lines()[0].get_ydata()) == [0.5, 0.75]


def test_metric_filter_and_panel_grid(edflow_train, edflow_project):
    class ThreeScalars:
        from edcore import hookimpl

        @hookimpl(tryfirst=True)
        def edflow_log(self, global_step, logs):
            logs["scalars"].update({"lr": 0.1, "grad_norm": 1.0 / global_step})

    run = edflow_train(plugins=[ThreeScalars()], config={"num_steps": 4, "log_freq": 1}).run
    edflow_project.run("plot", str(run), timeout=120).assert_success()
    assert matplotlib.image.imread(edflow_project.path / "metrics.png").shape[:2] == (800, 1200)  # 2 x 2 panels
    edflow_project.run("plot", str(run), "-m", "l*", "-o", "l.png", timeout=120).assert_success()
    assert matplotlib.image.imread(edflow_project.path / "l.png").shape[:2] == (400, 1200)  # loss and lr
    outcome = edflow_project.run("plot", str(run), "-m", "nothing*", timeout=120).assert_failed(2)
    assert "no logged metrics matching nothing*" in outcome.stderr


def test_missing_matplotlib_is_named_with_the_extra(edflow_train, monkeypatch, capsys):
    run = edflow_train(config={"num_steps": 2}).run
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert cli.main(["plot", str(run), "-o", str(run / "x.png")]) == 1
    error = capsys.readouterr().err
    assert "edflow plot needs matplotlib" in error and "pip install 'edcore[plot]'" in error
    assert not (run / "x.png").exists()
