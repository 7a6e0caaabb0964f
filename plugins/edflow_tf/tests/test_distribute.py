"""``tf: {strategy: mirrored}`` on two logical CPU devices: the step runs on both replicas, checkpoints restore."""
from tf_helpers import tf_project


def test_mirrored_strategy_trains_on_two_logical_cpus_and_resumes(tmp_path):
    project = tf_project(tmp_path, plugins=[], tf={"jit": False, "strategy": "mirrored", "logical_cpus": 2})
    project.run("-t", "train.yaml", timeout=300).assert_success()
    (run,) = project.runs()
    metrics = project.metrics(run)
    assert all(m["replicas"] == 2 for m in metrics)  # the iterator's num_replicas, as the step saw it
    assert metrics[-1]["global_step"] == 20 and metrics[-1]["loss"] < metrics[0]["loss"]

    # The optimizer's slots are mirrored variables made in the strategy's scope when the checkpoint is restored.
    outcome = project.run("-p", str(run), "--num_steps", "24", timeout=300).assert_success()
    assert "restored checkpoint" in outcome.output
    assert [m["global_step"] for m in project.metrics(run)][-2:] == [20, 21]  # the first step of a run is logged
    assert (run / "train" / "checkpoints" / "latest").read_text().strip() == "0000000024"
