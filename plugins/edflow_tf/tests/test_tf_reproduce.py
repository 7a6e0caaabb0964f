"""``edflow reproduce`` of a real TensorFlow run (dropout, Adam, a compiled step): the same scalars at every logged
step; the plugin module outside the snapshot (tfprobe.py) is still found in the working directory."""
import json

from tf_helpers import tf_project


def test_a_tf_run_reproduces_identically(tmp_path):
    project = tf_project(tmp_path, num_steps=8, log_freq=2)
    project.run("-t", "train.yaml", "-n", "blobs", timeout=300).assert_success()
    (run,) = project.runs()
    model = tmp_path / "tfuser" / "model.py"  # changed after the run: the snapshot's model is the one trained again
    model.write_text(model.read_text().replace("self.out = keras.layers.Dense(2)", "self.out = keras.layers.Dense(3)"))

    outcome = project.run("reproduce", "_blobs", timeout=300).assert_success()
    assert f"identical: 5 logged steps (up to global step 8) of {run.name}" in outcome.stdout
    (new,) = [r for r in project.runs() if r != run]
    assert project.metrics(new)
    assert [m["loss"] for m in project.metrics(new)] == [m["loss"] for m in project.metrics(run)]
    assert json.loads((new / "run.json").read_text())["reproduction"]["compared_steps"] == [1, 2, 4, 6, 8]
