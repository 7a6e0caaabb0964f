"""Crash-safe checkpoints: SIGKILL at every point of a save never leaves a checkpoint that loads wrongly; an
unreadable newest checkpoint is skipped; retention keeps what it promises, on real runs."""
import json
import signal

import pytest
from resumable_project import assert_same_training, load_state, marker_env, write_project

from edcore.checkpoint import CheckpointStore

POINTS = ["before-tensors", "after-tensors", "during-bulk", "before-publication", "before-latest"]


def published(run):
    return [c.step for c in CheckpointStore(run / "train" / "checkpoints").published()]


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_during_a_save_leaves_only_loadable_checkpoints(edflow_project, torch_reference, point):
    write_project(edflow_project, ckpt_freq=4, plugins=["rproj.slowsave"])
    markers = edflow_project.path / "markers"
    running = edflow_project.start("-t", "train.yaml", env=marker_env(markers, kill_step=8, kill_point=point))
    running.wait_for_file(markers / f"at-{point}")
    running.send(signal.SIGKILL)
    assert running.wait(timeout=30).returncode == -signal.SIGKILL
    run = edflow_project.runs()[0]
    checkpoints = run / "train" / "checkpoints"

    # after the rename the checkpoint exists, whatever happened to 'latest'; before it, it does not
    expected = [4, 8] if point == "before-latest" else [4]
    assert published(run) == expected
    assert (checkpoints / "latest").read_text().strip() == "0000000004"  # the pointer is updated last
    for checkpoint in CheckpointStore(checkpoints).published():
        state = load_state(checkpoint.path)
        assert json.loads((checkpoint.path / "edcore.json").read_text())["state"]["global_step"] == checkpoint.step
        assert set(state["model"]) == {"layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias"}
    if point != "before-latest":
        assert [p.name for p in checkpoints.iterdir() if p.name.startswith(".tmp-")], "the killed save's leftovers"

    resumed = edflow_project.run("-p", run).assert_success()
    assert f"global step {expected[-1]})" in resumed.stderr
    assert not [p.name for p in checkpoints.iterdir() if p.name.startswith(".tmp-")], "leftovers are cleaned"
    assert_same_training(run, torch_reference(0)[0])


def test_an_unreadable_newest_checkpoint_is_skipped_with_a_warning(edflow_project, torch_reference):
    write_project(edflow_project, ckpt_freq=4)
    edflow_project.run("-t", "train.yaml", "--num_epochs", "1").assert_success()
    run = edflow_project.runs()[0]
    newest = run / "train" / "checkpoints" / "0000000008" / "torch_state.pt"
    newest.write_bytes(b"\0" * newest.stat().st_size)  # same size: the manifest cannot tell, the loader must
    outcome = edflow_project.run("-p", run, "--num_epochs", "3").assert_success()
    assert "0000000008" in outcome.stderr and "falling back to the previous checkpoint" in outcome.stderr
    assert "restored checkpoint" in outcome.stderr and "global step 4)" in outcome.stderr
    # the unreadable checkpoint is set aside (not deleted) and step 8 is written again from the resumed training
    assert [p for p in (run / "train" / "checkpoints").iterdir() if p.name.startswith(".unreadable-0000000008")]
    assert_same_training(run, torch_reference(0)[0])


def test_no_loadable_checkpoint_is_an_error_naming_each(edflow_project):
    write_project(edflow_project, ckpt_freq=4)
    edflow_project.run("-t", "train.yaml", "--num_epochs", "1").assert_success()
    run = edflow_project.runs()[0]
    for step in ("0000000004", "0000000008"):
        state = run / "train" / "checkpoints" / step / "torch_state.pt"
        state.write_bytes(b"\0" * state.stat().st_size)
    outcome = edflow_project.run("-p", run, "--num_epochs", "2")
    assert outcome.returncode == 1, outcome
    assert "no checkpoint of the run can be restored" in outcome.stderr
    assert "0000000004" in outcome.stderr and "0000000008" in outcome.stderr
    assert "Traceback" not in outcome.output


# --- retention, on real (framework-free) runs -------------------------------------------------------------------


def test_ckpt_keep_keeps_the_newest_and_every_final_checkpoint(edflow_project):
    edflow_project.toy(ckpt_freq=2, ckpt_keep=2, num_steps=10)
    edflow_project.run("-t", "train.yaml").assert_success()
    run = edflow_project.runs()[0]
    assert published(run) == [8, 10]
    edflow_project.run("-p", run, "--num_steps", "16", "--ckpt_keep", "1").assert_success()
    assert published(run) == [10, 16]  # 10 was a final checkpoint: kept although ckpt_keep is 1


@pytest.mark.parametrize("mode", ["min", "max"])
def test_ckpt_best_keeps_the_best_by_a_logged_metric(edflow_project, mode):
    edflow_project.toy(ckpt_freq=2, ckpt_keep=1, num_steps=10, log_freq=1,
                       ckpt_best={"metric": "loss", "mode": mode, "keep": 2})
    edflow_project.run("-t", "train.yaml").assert_success()
    run = edflow_project.runs()[0]
    losses = {row["global_step"]: row["loss"] for row in edflow_project.metrics(run)
              if row["global_step"] % 2 == 0}
    best = sorted(losses, key=losses.get, reverse=mode == "max")[:2]
    assert published(run) == sorted(set(best) | {10})
    assert len(published(run)) >= 2


# --- the protocol pieces the tests above rely on -----------------------------------------------------------------


def write_weights(folder):
    (folder / "weights.bin").write_bytes(b"w" * 64)


def test_a_set_aside_checkpoint_is_kept_but_no_longer_published(tmp_path):
    store = CheckpointStore(tmp_path)
    store.write(2, write_weights)
    newest = store.write(4, write_weights)
    aside = store.set_aside(newest)
    assert aside.name.startswith(".unreadable-0000000004-") and (aside / "weights.bin").exists()
    assert [c.step for c in store.published()] == [2]
    assert (tmp_path / "latest").read_text().strip() == "0000000002"
    store.clean_stale()
    assert aside.exists(), "cleaning removes killed writers' leftovers, never a set-aside checkpoint"
    assert store.write(4, write_weights).manifest["step"] == 4  # the step can be written again


def test_a_final_save_of_an_already_saved_step_marks_it_final(tmp_path):
    store = CheckpointStore(tmp_path)
    store.write(6, write_weights, {"reason": "periodic"})
    marked = store.write(6, lambda folder: pytest.fail("a published step is not written twice"), {"reason": "final"})
    assert marked.manifest["reason"] == "final"
    assert store.get(6).manifest["reason"] == "final" and store.get(6).manifest["files"] == {"weights.bin": 64}
