"""Evaluation processes with real training: following the checkpoints, finished runs, outputs, callbacks, crashes
and signals. Every test runs once per installed backend (the project files come from evaluation_backends)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
from edcore.testing import EdflowProject, process_exists, processes_with_env
from evaluation_backends import WORKER_OVERRIDES, installed_backends, write_project

ALL_STEPS = [3, 6, 9, 12]
FOLLOW = ["-b", "base.yaml", "-t", "train.yaml"]


@pytest.fixture(params=installed_backends())
def project(request, edflow_project):
    """The evaluation project of one backend in a fresh folder."""
    write_project(edflow_project, request.param)
    edflow_project.backend = request.param
    return edflow_project


@pytest.fixture(scope="module", params=installed_backends())
def trained(request, tmp_path_factory):
    """A finished training (checkpoints 3, 6, 9, 12) per backend, trained once; tests work on copies of it."""
    folder = tmp_path_factory.mktemp(f"trained_{request.param}")
    source = EdflowProject(folder)
    write_project(source, request.param)
    source.run(*FOLLOW).assert_success()
    return source


@pytest.fixture
def finished_run(trained, tmp_path):
    """A copy of the trained project: (project, run folder)."""
    copy = tmp_path / "copy"
    shutil.copytree(trained.path, copy)
    project = EdflowProject(copy)
    (run,) = project.runs()
    return project, run


def evaluation_folder(run, name="eval"):
    (folder,) = [p for p in (run / "eval").iterdir() if p.name.endswith(f"_{name}")]
    return folder


def evaluated(run, name="eval"):
    """The metrics.jsonl lines of an evaluation, in the order they were written."""
    path = evaluation_folder(run, name) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def evaluated_steps(run, name="eval"):
    return [record["global_step"] for record in evaluated(run, name)]


def checkpoint_steps(run):
    return sorted(int(p.name) for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())


def manifest(run, step):
    return json.loads((run / "train" / "checkpoints" / f"{step:010d}" / "manifest.json").read_text())


def registration(run, name="eval"):
    return json.loads((run / "train" / "checkpoints" / ".evaluators" / f"{name}.json").read_text())


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------------------------------------------------------
# Following a training


def test_an_evaluator_follows_the_training_and_evaluates_every_checkpoint_once_in_order(project, tmp_path):
    outcome = project.run(*FOLLOW, "-e", "eval.yaml", "--+wait_for_evaluation",
                          "{at_step: 7, step: 3, name: eval}").assert_success()
    (run,) = project.runs()
    assert checkpoint_steps(run) == ALL_STEPS
    records = evaluated(run)
    assert [r["global_step"] for r in records] == ALL_STEPS
    # checkpoint 3 was evaluated while the training ran (the training waited for it before step 8)
    assert records[0]["time"] < manifest(run, 12)["time"]
    assert all(r["num_examples"] == 48 and r["acc/labels_match"] == 1.0 for r in records)
    folder = evaluation_folder(run)
    assert sorted(p.name for p in folder.iterdir() if p.name.isdigit()) == [f"{s:010d}" for s in ALL_STEPS]
    assert "evaluated checkpoint 12" in (folder / "log.txt").read_text()
    assert "evaluated checkpoint" not in (run / "train" / "log.txt").read_text()  # each process has its own log
    assert registration(run)["finished"] is True
    assert "evaluation process for" not in outcome.stderr  # nothing failed

    # the metrics are in TensorBoard at the checkpoints' global steps, next to the training's curves
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard" / "eval_eval"))
    events.Reload()
    assert [e.step for e in events.Scalars("acc/accuracy")] == ALL_STEPS
    assert [e.value for e in events.Scalars("acc/accuracy")] == pytest.approx([r["acc/accuracy"] for r in records])

    # the outputs load back with numpy and edcore alone: no framework, no project code
    script = ("import sys; from edcore.outputs import load_outputs; o = load_outputs(sys.argv[1]); "
              "assert not {'torch', 'tensorflow', 'evalpkg'} & set(sys.modules), sorted(sys.modules); "
              "import json; print(json.dumps([o.global_step, o.num_examples, list(o['logits'].shape), "
              "str(o['logits'].dtype), o['label'].tolist(), o.example(0)['label'].tolist()]))")
    shown = subprocess.run([sys.executable, "-c", script, str(folder / f"{12:010d}")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    step, count, shape, dtype, labels, first = json.loads(shown.stdout)
    assert (step, count, shape, dtype) == (12, 48, [48, 2], "float32")
    import numpy as np

    x = np.random.RandomState(1).randn(48, 4).astype("float32")  # evalpkg.data.Blobs in test_mode
    assert labels == (x[:, 0] + x[:, 1] > 0).astype("int64").tolist() and first == labels[0]


def test_two_evaluators_one_slower_than_the_training_both_cover_every_checkpoint(project):
    outcome = project.run(*FOLLOW, "-e", "eval.yaml", "-e", "slow.yaml", "--ckpt_keep", "1", "--progress", "true")
    outcome.assert_success()
    # the progress bars stack: training on the first line, then one line per -e config in order (tqdm moves the
    # cursor down to its line and back up again)
    assert "train epoch" in outcome.stderr and "eval eval @" in outcome.stderr and "eval slow @" in outcome.stderr
    lines = outcome.stderr.split("\n")
    assert any(re.search(r"eval eval @.*[^A]\x1b\[A$", line) for line in lines), outcome.stderr
    assert any(re.search(r"eval slow @.*[^A]\x1b\[A\x1b\[A$", line) for line in lines), outcome.stderr
    (run,) = project.runs()
    assert checkpoint_steps(run) == ALL_STEPS  # ckpt_keep: 1 kept what the evaluators had not evaluated yet
    assert evaluated_steps(run, "eval") == ALL_STEPS
    slow = evaluated(run, "slow")
    assert [r["global_step"] for r in slow] == ALL_STEPS
    # it sleeps 1 s per checkpoint: the training had long finished while checkpoints waited in its queue
    assert manifest(run, 12)["time"] < slow[2]["time"]
    assert all(r["wait/slept"] == 1.0 for r in slow)


def test_an_evaluator_that_crashes_is_reported_and_the_training_goes_on(project):
    outcome = project.run(*FOLLOW, "-e", "eval.yaml", "-e", "crash.yaml", "--+step_sleep", "0.2")
    outcome.assert_failed(1)
    (run,) = project.runs()
    assert checkpoint_steps(run) == ALL_STEPS
    assert "training finished at global step 12" in (run / "train" / "log.txt").read_text()
    assert evaluated_steps(run, "eval") == ALL_STEPS
    assert evaluated_steps(run, "crash") == [3]
    crash_log = evaluation_folder(run, "crash") / "log.txt"
    report = [line for line in outcome.stderr.splitlines() if "evaluation process for -e crash.yaml" in line]
    assert len(report) == 1, outcome
    assert "crashed on purpose at global step 6" in report[0] and f"its log: {crash_log.relative_to(project.path)}" in report[0]
    assert "crashed on purpose at global step 6" in crash_log.read_text()
    state = registration(run, "crash")
    assert state["finished"] is False and "crashed on purpose" in state["error"]
    # Reported as soon as the supervisor noticed: while the training ran, the report says it goes on. (Whether it
    # noticed before the last step depends on the load of the machine; the report's place in the log tells.)
    train_log = (run / "train" / "log.txt").read_text().splitlines()
    reported_at = next(i for i, line in enumerate(train_log) if "evaluation process for -e crash.yaml" in line)
    finished_at = next(i for i, line in enumerate(train_log) if "training finished at global step 12" in line)
    assert ("training continues" in report[0]) == (reported_at < finished_at), train_log


def test_a_training_crash_stops_the_evaluators_after_the_checkpoints_that_exist(project):
    outcome = project.run(*FOLLOW, "-e", "eval.yaml", "--+fail_at_step", "8")
    outcome.assert_failed(1)
    assert "training crashed on purpose" in outcome.stderr
    (run,) = project.runs()
    assert checkpoint_steps(run) == [3, 6, 8]  # 8: written after the exception
    assert evaluated_steps(run) == [3, 6, 8]
    assert registration(run)["finished"] is True


def test_a_killed_evaluator_restarted_with_p_continues_without_gaps_or_repeats(project):
    process = project.start(*FOLLOW, "-e", "eval.yaml", "--+step_sleep", "0.3",
                            "--+wait_for_evaluation", "{at_step: 7, step: 3, name: eval}")
    try:
        run = wait_for(lambda: project.runs() and project.runs()[0], 120, "the run folder")
        # A line, not just the file: the evaluator creates metrics.jsonl a moment before it writes checkpoint 3's
        # line, and killed in between, the training would wait at step 7 for an evaluation that never comes.
        wait_for(lambda: (run / "eval").is_dir() and any(p.read_text().endswith("\n")
                                                          for p in (run / "eval").glob("*_eval/metrics.jsonl")), 120,
                 "the first evaluated checkpoint")
        evaluator = registration(run)["pid"]
        assert evaluator != process.pid
        os.kill(evaluator, signal.SIGKILL)
        assert process.wait(timeout=180).returncode == 1  # the training finished; the killed evaluator counts as a failure
    finally:
        if process.poll() is None:
            process.kill()
    output = process.output()
    assert "evaluation process for -e eval.yaml" in output and "exit code -9" in output
    before = evaluated_steps(run)
    assert before and before == ALL_STEPS[:len(before)] and len(before) < len(ALL_STEPS)
    assert checkpoint_steps(run) == ALL_STEPS

    project.run("-b", "base.yaml", "-e", "eval.yaml", "-p", run, "--all").assert_success()
    assert evaluated_steps(run) == ALL_STEPS  # each once, in order, in the same evaluation folder
    folder = evaluation_folder(run)
    assert sorted(p.name for p in folder.iterdir() if p.name.isdigit()) == [f"{s:010d}" for s in ALL_STEPS]
    assert "follows the checkpoints" in (folder / "log.txt").read_text()  # the log goes on in the same file


@pytest.mark.parametrize("how", ["SIGTERM to the edflow process", "SIGINT to its process group (Ctrl-C)",
                                 "SIGKILL to the edflow process"])
def test_a_signal_stops_every_process_and_leaves_none_behind(project, how):
    token = uuid.uuid4().hex
    process = project.start(*FOLLOW, "-e", "eval.yaml", "--num_steps", "1000", "--+step_sleep", "0.1",
                            *WORKER_OVERRIDES[project.backend], env={"EDFLOW_TEST_TOKEN": token})
    try:
        run = wait_for(lambda: project.runs() and project.runs()[0], 120, "the run folder")
        wait_for(lambda: any((run / "eval").glob("*_eval/metrics.jsonl")), 120, "the first evaluated checkpoint")
        seen = processes_with_env("EDFLOW_TEST_TOKEN", token)
        # edflow, the evaluator, and with torch their DataLoader workers
        assert len(seen) >= (4 if WORKER_OVERRIDES[project.backend] else 2), seen
        if how.startswith("SIGKILL"):
            process.kill()
            assert process.wait(timeout=10).returncode == -signal.SIGKILL
            # nothing can wait for the children of a killed process but init, so only running ones count here:
            # the evaluator got SIGTERM from the kernel (PR_SET_PDEATHSIG), DataLoader workers notice on their own
            wait_for(lambda: not processes_with_env("EDFLOW_TEST_TOKEN", token), 20,
                     f"every process to end (left: {processes_with_env('EDFLOW_TEST_TOKEN', token)})")
            # stopped by the signal, not by finishing the checkpoints after the training's end (the pipe's end)
            assert registration(run)["finished"] is False
            return
        if how.startswith("SIGTERM"):
            process.send(signal.SIGTERM)
            expected = 128 + signal.SIGTERM
        else:
            process.send(signal.SIGINT, group=True)
            expected = 128 + signal.SIGINT
        assert process.wait(timeout=60).returncode == expected, process.output()
        wait_for(lambda: not any(map(process_exists, seen)) and not processes_with_env("EDFLOW_TEST_TOKEN", token),
                 15, f"every process to be gone (left: {[p for p in seen if process_exists(p)]})")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    # the training checkpointed the step it stopped at (a periodic checkpoint may have been that step already)
    stopped = re.search(r"interrupted at global step (\d+); checkpoint written", (run / "train" / "log.txt").read_text())
    assert stopped and max(checkpoint_steps(run)) == int(stopped.group(1))
    assert registration(run)["finished"] is False  # a restarted evaluator goes on from here


def test_ctrl_c_while_the_evaluators_finish_after_the_training_stops_them(project):
    token = uuid.uuid4().hex
    process = project.start(*FOLLOW, "-e", "slow.yaml", "--sleep_seconds", "3", env={"EDFLOW_TEST_TOKEN": token})
    try:
        run = wait_for(lambda: project.runs() and project.runs()[0], 120, "the run folder")
        train_log = run / "train" / "log.txt"
        wait_for(lambda: train_log.exists() and "training finished" in train_log.read_text(), 120, "the training's end")
        wait_for(lambda: any((run / "eval").glob("*_slow/metrics.jsonl")), 120, "the first evaluated checkpoint")
        seen = processes_with_env("EDFLOW_TEST_TOKEN", token)
        process.send(signal.SIGINT, group=True)
        assert process.wait(timeout=60).returncode == 128 + signal.SIGINT, process.output()
        wait_for(lambda: not any(map(process_exists, seen)), 15, "every process to be gone")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert 1 <= len(evaluated_steps(run, "slow")) < len(ALL_STEPS)  # it did not sit out its queue
    assert registration(run, "slow")["finished"] is False


# ---------------------------------------------------------------------------------------------------------------
# Finished runs


def test_a_finished_run_evaluates_the_latest_then_all_then_exactly_the_named_checkpoint(finished_run):
    project, run = finished_run
    project.run("-b", "base.yaml", "-e", "eval.yaml", "-p", run).assert_success()
    assert evaluated_steps(run) == [12]
    again = project.run("-b", "base.yaml", "-e", "eval.yaml", "-p", run).assert_success()
    assert "evaluated already" in again.stderr and evaluated_steps(run) == [12]
    project.run("-b", "base.yaml", "-e", "eval.yaml", "-p", run, "--all").assert_success()
    assert evaluated_steps(run) == [12, 3, 6, 9]
    checkpoint = run / "train" / "checkpoints" / f"{6:010d}"
    project.run("-b", "base.yaml", "-e", "eval.yaml", "-p", run, "-c", checkpoint).assert_success()
    assert evaluated_steps(run) == [12, 3, 6, 9, 6]  # -c evaluates it again, as asked
    # eval_all in the config does what --all does; -c without -p evaluates into the checkpoint's run
    (project.path / "all.yaml").write_text((project.path / "eval.yaml").read_text() + "eval_all: true\n")
    project.run("-b", "base.yaml", "-e", "all.yaml", "-p", run).assert_success()
    assert evaluated_steps(run, "all") == ALL_STEPS
    project.run("-b", "base.yaml", "-e", "slow.yaml", "-c", checkpoint, "--sleep_seconds", "0").assert_success()
    assert evaluated_steps(run, "slow") == [6]
    assert len(list((run / "eval").iterdir())) == 3


def test_a_run_without_checkpoints_cannot_be_evaluated(finished_run):
    project, run = finished_run
    for checkpoint in (run / "train" / "checkpoints").iterdir():
        shutil.rmtree(checkpoint) if checkpoint.is_dir() else checkpoint.unlink()
    outcome = project.run("-b", "base.yaml", "-e", "eval.yaml", "-p", run).assert_failed(2)
    assert "has no checkpoint to evaluate yet" in outcome.stderr and "Traceback" not in outcome.stderr


def test_callbacks_run_again_on_stored_outputs_without_the_model_code(finished_run):
    project, run = finished_run
    project.run("-b", "base.yaml", "-e", "eval.yaml", "-p", run, "--all").assert_success()
    stored = {r["global_step"]: r["acc/accuracy"] for r in evaluated(run)}
    (project.path / "evalpkg" / "model.py").unlink()
    (project.path / "evalpkg" / "iterator.py").unlink()
    step_dir = evaluation_folder(run) / f"{9:010d}"
    outcome = project.run("eval-outputs", step_dir, "-c", "again:evalpkg.callbacks.accuracy", "--json").assert_success()
    (line,) = outcome.stdout.splitlines()
    result = json.loads(line)
    assert result["global_step"] == 9 and result["metrics"]["again/accuracy"] == pytest.approx(stored[9])
    assert json.loads((step_dir / "metrics.json").read_text())["again/accuracy"] == pytest.approx(stored[9])
    # without -c: the evaluation's own callbacks, on every checkpoint of the evaluation folder
    every = project.run("eval-outputs", evaluation_folder(run), "--json").assert_success()
    rerun = {json.loads(line)["global_step"]: json.loads(line)["metrics"]["acc/accuracy"] for line in every.stdout.splitlines()}
    assert rerun == pytest.approx(stored)
    wrong = project.run("eval-outputs", run, "-c", "x:evalpkg.callbacks.accuracy").assert_failed(2)
    assert "holds no evaluation outputs" in wrong.stderr
