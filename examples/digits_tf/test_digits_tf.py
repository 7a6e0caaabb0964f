"""The digits example trains through the real ``edflow -t`` and reaches its held-out accuracy (the time is measured
in benchmarks/, not here)."""
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
