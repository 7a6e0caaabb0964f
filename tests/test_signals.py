"""Signals and errors with real processes: finish the step, checkpoint, exit 128+N, leave no process behind; a second
signal aborts at once; an exception in user code checkpoints the last completed step and is reported trimmed."""
import json
import os
import signal
import time

import pytest
from resumable_project import FILES, assert_same_training, load_state, marker_env, served, write_project


def group_is_gone(pgid: int, timeout: float = 20) -> bool:
    """Whether every process of the group (the run and its data workers) has exited within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_to_the_pid_checkpoints_and_stops_the_data_workers(edflow_project, signum):
    write_project(edflow_project, torch={"num_workers": 2})
    served_file = edflow_project.path / "served.txt"
    markers = edflow_project.path / "markers"
    running = edflow_project.start("-t", "train.yaml", env=marker_env(markers, pause_at=10, served=served_file))
    running.wait_for_file(markers / "paused-10")
    running.send(signum)
    outcome = running.wait(timeout=60)
    assert outcome.returncode == 128 + signum, outcome
    assert f"received {signal.Signals(signum).name}" in outcome.stderr
    run = edflow_project.runs()[0]
    checkpoint = run / "train" / "checkpoints" / "0000000011"
    assert json.loads((checkpoint / "manifest.json").read_text())["reason"] == "interrupt"
    assert json.loads((checkpoint / "edcore.json").read_text())["state"] == {"global_step": 11, "epoch": 1,
                                                                                "position": 3, "world_size": 1}
    workers = {pid for _, pid in served(served_file)} - {running.pid}
    assert len(workers) == 2, "the examples were loaded by two worker processes"
    assert group_is_gone(running.pid), "a process of the run is still alive"
    assert not any(alive(pid) for pid in workers)


def test_ctrl_c_to_the_process_group_reaches_workers_and_still_checkpoints(edflow_project):
    write_project(edflow_project, torch={"num_workers": 2})
    markers = edflow_project.path / "markers"
    running = edflow_project.start("-t", "train.yaml", env=marker_env(markers, pause_at=2))
    running.wait_for_file(markers / "paused-2")
    running.send(signal.SIGINT, group=True)  # what a terminal does on Ctrl-C: every process gets it
    outcome = running.wait(timeout=60)
    assert outcome.returncode == 130, outcome
    assert "Traceback" not in outcome.output
    assert (edflow_project.runs()[0] / "train" / "checkpoints" / "0000000003" / "manifest.json").exists()
    assert group_is_gone(running.pid)


def test_sigterm_to_the_process_group_with_data_workers_ends_as_an_interrupt(edflow_project, torch_reference):
    # what timeout(1), kill -TERM -PGID and SLURM do: the DataLoader workers get the signal too
    write_project(edflow_project, torch={"num_workers": 2})
    markers = edflow_project.path / "markers"
    running = edflow_project.start("-t", "train.yaml", env=marker_env(markers, pause_at=10))
    running.wait_for_file(markers / "paused-10")
    running.send(signal.SIGTERM, group=True)
    outcome = running.wait(timeout=60)
    assert outcome.returncode == 128 + signal.SIGTERM, outcome
    assert "Traceback" not in outcome.output and "DataLoader worker" not in outcome.output, outcome
    assert outcome.stderr.count("received SIGTERM") == 1, outcome
    assert outcome.stderr.count("interrupted at global step 11; checkpoint written") == 1, outcome
    assert group_is_gone(running.pid), "a process of the run is still alive"
    run = edflow_project.runs()[0]
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    checkpoint = run / "train" / "checkpoints" / "0000000011"
    assert json.loads((checkpoint / "manifest.json").read_text())["reason"] == "interrupt"
    load_state(checkpoint)
    resumed = edflow_project.run("-p", run).assert_success()
    assert "restored checkpoint" in resumed.stderr and "global step 11" in resumed.stderr
    assert_same_training(run, torch_reference(2)[0])


def test_one_ctrl_c_is_announced_once_by_training_evaluator_and_workers(edflow_project):
    from evaluation_backends import write_project as write_evaluation_project

    write_evaluation_project(edflow_project, "torch")
    running = edflow_project.start("-b", "base.yaml", "-t", "train.yaml", "-e", "eval.yaml", "--num_steps", "1000",
                                   "--+step_sleep", "0.1", "--torch/num_workers", "2")
    try:
        deadline = time.monotonic() + 120
        while not (edflow_project.runs() and any((edflow_project.runs()[0] / "eval").glob("*_eval/metrics.jsonl"))):
            assert running.poll() is None and time.monotonic() < deadline, running.output()
            time.sleep(0.1)
        running.send(signal.SIGINT, group=True)  # the terminal's Ctrl-C: every process of the group gets it
        outcome = running.wait(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
    assert outcome.returncode == 130, outcome
    assert outcome.output.count("received SIGINT") == 1, outcome
    run = edflow_project.runs()[0]
    assert (run / "train" / "log.txt").read_text().count("received SIGINT") == 1
    # the evaluator stopped quietly: its own log still says why
    (eval_log,) = (run / "eval").glob("*_eval/log.txt")
    assert eval_log.read_text().count("received SIGINT") == 1


def test_a_second_signal_aborts_at_once_and_the_last_checkpoint_still_loads(edflow_project, torch_reference):
    write_project(edflow_project, ckpt_freq=4)
    markers = edflow_project.path / "markers"
    # with hold the paused step ignores the first signal: only the second one can end the process early
    running = edflow_project.start("-t", "train.yaml", env=marker_env(markers, pause_at=9, hold=1))
    running.wait_for_file(markers / "paused-9")
    running.send(signal.SIGINT)
    time.sleep(0.5)
    running.send(signal.SIGINT)
    outcome = running.wait(timeout=30)  # the step would hold for 60 s
    assert outcome.returncode == 130, outcome
    assert "second signal (SIGINT): aborting now" in outcome.stderr
    run = edflow_project.runs()[0]
    published = sorted(p.name for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())
    assert published == ["0000000004", "0000000008"]
    load_state(run / "train" / "checkpoints" / "0000000008")
    resumed = edflow_project.run("-p", run).assert_success()
    assert "restored checkpoint" in resumed.stderr and "global step 8" in resumed.stderr
    assert_same_training(run, torch_reference(0)[0])


def test_a_second_signal_while_the_interrupt_checkpoint_is_written_leaves_the_older_ones(edflow_project,
                                                                                          torch_reference):
    write_project(edflow_project, ckpt_freq=4, plugins=["rproj.slowsave"])
    markers = edflow_project.path / "markers"
    env = marker_env(markers, pause_at=9, kill_step=10, kill_point="during-bulk")
    running = edflow_project.start("-t", "train.yaml", env=env)
    running.wait_for_file(markers / "paused-9")
    running.send(signal.SIGINT)
    running.wait_for_file(markers / "at-during-bulk")  # the checkpoint of step 10 is half written
    running.send(signal.SIGINT)
    outcome = running.wait(timeout=30)
    assert outcome.returncode == 130, outcome
    run = edflow_project.runs()[0]
    published = sorted(p.name for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())
    assert published == ["0000000004", "0000000008"]
    edflow_project.run("-p", run).assert_success()
    assert_same_training(run, torch_reference(0)[0])


def raise_line() -> int:
    """The line of the user's ``raise`` in the project's iterator module."""
    lines = FILES["rproj/iterator.py"].lstrip("\n").splitlines()
    return next(number for number, line in enumerate(lines, 1) if "raise ValueError" in line)


def test_an_exception_in_user_code_checkpoints_the_last_completed_step(edflow_project):
    write_project(edflow_project)
    outcome = edflow_project.run("-t", "train.yaml", env=marker_env(edflow_project.path / "m", raise_at=10))
    assert outcome.returncode == 1, outcome
    assert "the user's code failed at step 10" in outcome.stderr
    assert f"rproj/iterator.py\", line {raise_line()}" in outcome.stderr
    assert "Traceback (most recent call last)" not in outcome.output
    assert "edcore" + os.sep not in outcome.stderr and "pluggy" not in outcome.stderr  # framework frames trimmed
    run = edflow_project.runs()[0]
    checkpoint = run / "train" / "checkpoints" / "0000000010"
    assert json.loads((checkpoint / "manifest.json").read_text())["reason"] == "exception"
    assert "wrote a checkpoint of global step 10" in outcome.stderr
    resumed = edflow_project.run("-p", run).assert_success()
    assert "global step 10" in resumed.stderr


def test_an_exception_before_any_step_completed_writes_no_checkpoint(edflow_project):
    write_project(edflow_project)
    outcome = edflow_project.run("-t", "train.yaml", env=marker_env(edflow_project.path / "m", raise_at=0))
    assert outcome.returncode == 1, outcome
    assert not [p for p in (edflow_project.runs()[0] / "train" / "checkpoints").iterdir() if p.name.isdigit()]


def test_debug_shows_the_full_traceback(edflow_project):
    write_project(edflow_project)
    outcome = edflow_project.run("-t", "train.yaml", "-d", env=marker_env(edflow_project.path / "m", raise_at=1))
    assert outcome.returncode == 1, outcome
    assert "Traceback (most recent call last)" in outcome.stderr
