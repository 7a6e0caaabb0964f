"""Exact resume and crash-safe checkpoints with TensorFlow (issue 6's guarantees): real processes, real signals sent
to the PID, the result compared bit for bit with the uninterrupted run."""
import json
import os
import signal

import numpy as np
from edcore.checkpoint import CheckpointStore
from tf_helpers import checkpoint_arrays, probe_records, start_edflow, tf_project, wait_for


def assert_identical_final_state(run, reference):
    """Weights, optimizer slots (and its step counter), dropout seeds and generators: bit for bit."""
    final = run / "train" / "checkpoints" / "0000000020"
    expected = checkpoint_arrays(reference / "train" / "checkpoints" / "0000000020")
    actual = checkpoint_arrays(final)
    assert sorted(actual) == sorted(expected)
    different = [key for key in expected if not np.array_equal(actual[key], expected[key])]
    assert not different, f"differs from the uninterrupted run: {different}"
    assert len([k for k in expected if k.startswith("optimizer/")]) == 14


def test_sigterm_then_resume_is_bit_identical_to_the_uninterrupted_run(tmp_path, reference_run):
    reference_project, reference = reference_run
    project = tf_project(tmp_path)
    probe = tmp_path / "first.jsonl"
    process = start_edflow(project, "-t", "train.yaml", env={"PROBE_FILE": str(probe), "STEP_DELAY": "0.2"})
    wait_for(lambda: len(probe_records(probe)) >= 7, process)
    os.kill(process.pid, signal.SIGTERM)  # to the PID only, as a scheduler does
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output
    (run,) = project.runs()
    interrupted = CheckpointStore(run / "train" / "checkpoints").latest()
    assert 7 <= interrupted.step < 20 and interrupted.manifest["reason"] == "interrupt"

    resumed_probe = tmp_path / "resumed.jsonl"
    project.run("-p", str(run), env={"PROBE_FILE": str(resumed_probe)}, timeout=300).assert_success()
    first, resumed = probe_records(probe), probe_records(resumed_probe)
    assert [r["step"] for r in first] == list(range(interrupted.step))
    assert [r["step"] for r in resumed] == list(range(interrupted.step, 20))  # the step count continues
    # the data position continues at the exact next example, as in the uninterrupted run
    expected = probe_records(reference_project.path / "probe.jsonl")
    assert [r["index"] for r in first + resumed] == [r["index"] for r in expected]
    logged = [m["global_step"] for m in project.metrics(run)]  # one metrics file, continued by the resumed run
    assert logged == sorted(logged) and logged[-1] == 20 and interrupted.step + 1 in logged
    assert_identical_final_state(run, reference)


def kill_when_held(project, point, step, tmp_path, *args):
    """Start ``edflow ARGS``, wait until the probe holds it at ``point`` of the checkpoint of ``step``, SIGKILL it."""
    marker = tmp_path / f"holding-{point}"
    process = start_edflow(project, *args, env={"PROBE_FILE": str(tmp_path / "probe.jsonl"), "HOLD_AT": point,
                                                "HOLD_STEP": str(step), "HOLD_MARKER": str(marker)})
    wait_for(marker.exists, process)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def test_sigkill_during_or_after_a_checkpoint_write_never_leaves_one_that_loads_wrongly(tmp_path, reference_run):
    """Killed while a checkpoint's files are written but not yet published; the resumed run is killed right after
    a publication, and that newest checkpoint is then corrupted: resuming must fall back to the one before."""
    _reference_project, reference = reference_run
    project = tf_project(tmp_path)
    kill_when_held(project, "save", 8, tmp_path, "-t", "train.yaml")
    (run,) = project.runs()
    folder = run / "train" / "checkpoints"
    store = CheckpointStore(folder)
    assert [c.step for c in store.published()] == [2, 4, 6] and any(p.name.startswith(".tmp-") for p in folder.iterdir())

    kill_when_held(project, "published", 12, tmp_path, "-p", str(run))
    assert [c.step for c in store.published()] == [2, 4, 6, 8, 10, 12]
    assert (folder / "latest").read_text().strip() == "0000000012"
    assert not any(p.name.startswith(".tmp-") for p in folder.iterdir())  # the resumed run removed the torn one
    data = folder / "0000000012" / "tf_state.data-00000-of-00001"
    corrupted = bytearray(data.read_bytes())
    corrupted[: len(corrupted) // 2] = bytes(len(corrupted) // 2)  # same size: the manifest still matches
    data.write_bytes(bytes(corrupted))

    outcome = project.run("-p", str(run), timeout=300).assert_success()
    assert "0000000012' cannot be restored" in outcome.output
    assert "falling back to the previous checkpoint" in outcome.output
    assert "restored checkpoint" in outcome.output and "0000000010 (global step 10)" in outcome.output
    assert_identical_final_state(run, reference)
    assert json.loads((folder / "0000000020" / "edcore.json").read_text())["state"]["global_step"] == 20
