"""``edflow reproduce`` of a real torch run (dropout, Adam, a scheduler): the same scalars at every logged step."""
import json

from torch_helpers import TorchProject


def test_a_torch_run_reproduces_identically(tmp_path):
    project = TorchProject(tmp_path)
    project.tiny(num_steps=8, log_freq=2)
    project.run("-t", "train.yaml", "-n", "tiny", timeout=300).assert_success()
    (run,) = project.runs()
    # the working tree changes after the run: the snapshot's learning rate is the one used again
    iterator = tmp_path / "tiny" / "iterator.py"
    iterator.write_text(iterator.read_text().replace("lr=0.02", "lr=0.5"))

    outcome = project.run("reproduce", "_tiny", timeout=300).assert_success()
    assert f"identical: 5 logged steps (up to global step 8) of {run.name}" in outcome.stdout
    (new,) = [r for r in project.runs() if r != run]
    assert [m["loss"] for m in project.metrics(new)] == [m["loss"] for m in project.metrics(run)]
    assert json.loads((new / "run.json").read_text())["reproduction"]["identical"] is True
