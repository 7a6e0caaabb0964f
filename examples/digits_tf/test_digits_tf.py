"""The digits example trains through the real ``edflow -t`` and reaches its held-out accuracy (the time is measured
in benchmarks/, not here)."""
import json
from pathlib import Path

from edcore.testing import EdflowProject

REPOSITORY = Path(__file__).resolve().parents[2]


def test_digits_tf_reaches_95_percent_on_the_held_out_split(tmp_path):
    project = EdflowProject(REPOSITORY)  # the config's dotted names are relative to the repository root
    project.run("-t", "examples/digits_tf/train.yaml", "--logdir", str(tmp_path), "--progress", "false",
                timeout=600).assert_success()
    (run,) = project.runs(str(tmp_path))
    final = project.metrics(run)[-1]
    assert final["global_step"] == 675
    assert final["heldout_accuracy"] >= 0.95
    assert (run / "code" / "examples" / "digits_tf" / "model.py").exists()


def eval_metrics(run):
    """The lines of the digits evaluation's metrics.jsonl (one per evaluated checkpoint)."""
    (path,) = (run / "eval").glob("*_eval/metrics.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_digits_tf_eval_yaml_evaluates_a_run_and_follows_a_training(tmp_path):
    """``edflow -e examples/digits_tf/eval.yaml -p RUN`` on a short run, and ``-t ... -e ...`` next to a training:
    the callback's held-out accuracy is recorded for the checkpoints (one epoch already beats chance, 10%)."""
    project = EdflowProject(REPOSITORY)
    short = ("--logdir", str(tmp_path / "alone"), "--progress", "false", "--num_epochs", "1")
    project.run("-t", "examples/digits_tf/train.yaml", *short, timeout=600).assert_success()
    (run,) = project.runs(str(tmp_path / "alone"))
    project.run("-e", "examples/digits_tf/eval.yaml", "-p", str(run), timeout=600).assert_success()
    (line,) = eval_metrics(run)
    assert line["global_step"] == 45 and 0.3 < line["accuracy/accuracy"] <= 1, line

    both = ("--logdir", str(tmp_path / "both"), "--progress", "false", "--num_epochs", "2")
    project.run("-t", "examples/digits_tf/train.yaml", "-e", "examples/digits_tf/eval.yaml", *both,
                timeout=600).assert_success()
    (run,) = project.runs(str(tmp_path / "both"))
    lines = eval_metrics(run)
    assert [m["global_step"] for m in lines][-1] == 90 and all(0.3 < m["accuracy/accuracy"] <= 1 for m in lines), lines
