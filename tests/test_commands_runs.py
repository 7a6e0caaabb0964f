"""``edflow runs``: the status each real run records (running with its PID, finished, interrupted, failed)."""
import datetime
import json
import os
import signal
import subprocess
import sys
import time

#: A config plugin that slows every step down, so the run is still going while the test looks at it.
SLOW_PLUGIN = {
    "slow.py": '''
        import time
        from edcore import hookimpl


        @hookimpl
        def edflow_after_step(global_step):
            time.sleep(0.02)
    ''',
}


def runs_json(project, *args):
    outcome = project.run("runs", *args, "--json", timeout=60).assert_success()
    return {row["name"].split("_", 1)[1]: row for row in json.loads(outcome.stdout)}


def start_slow_run(project, name):
    project.write(SLOW_PLUGIN)
    project.toy(num_steps=100000, plugins=["slow"], ckpt_freq=5)
    process = subprocess.Popen([sys.executable, "-m", "edcore", "-t", "train.yaml", "-n", name], cwd=project.path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **project.env})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = [r for r in project.runs() if r.name.endswith(name) and (r / "train" / "checkpoints" / "latest").exists()]
        if runs:
            return process, runs[0]
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the slow run did not write a checkpoint within 60 s")


def test_finished_run_with_checkpoint_step_and_last_metrics(edflow_project):
    edflow_project.toy(num_steps=10, log_freq=5)
    edflow_project.run("-t", "train.yaml", "-n", "done", timeout=120).assert_success()
    row = runs_json(edflow_project)["done"]
    assert row["status"] == "finished" and row["pid"] is None
    assert row["checkpoint_step"] == 10
    last = edflow_project.metrics(edflow_project.runs()[0])[-1]
    assert row["metrics"] == {"loss": last["loss"]}
    started = datetime.datetime.strptime(edflow_project.runs()[0].name[:19], "%Y-%m-%dT%H-%M-%S")
    assert row["started"] == started.isoformat()

    table = edflow_project.run("runs", timeout=60).assert_success().stdout.splitlines()
    assert table[0].split() == ["RUN", "STARTED", "STATUS", "CHECKPOINT", "LAST", "METRICS"]
    assert table[1].split()[3:6] == ["finished", "10", "loss"]


def test_running_run_shows_its_pid_then_sigterm_makes_it_interrupted(edflow_project):
    process, run = start_slow_run(edflow_project, "live")
    try:
        row = runs_json(edflow_project)["live"]
        assert row["status"] == "running" and row["pid"] == process.pid
        assert f"running (PID {process.pid})" in edflow_project.run("runs", timeout=60).stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        process.kill()
        process.wait(timeout=60)
    row = runs_json(edflow_project)["live"]
    assert row["status"] == "interrupted" and row["checkpoint_step"] >= 5


def test_killed_run_reads_as_interrupted(edflow_project):
    process, run = start_slow_run(edflow_project, "killed")
    process.kill()  # SIGKILL: the process cannot record anything
    process.wait(timeout=60)
    assert json.loads((run / "status.json").read_text())["status"] == "running"
    assert runs_json(edflow_project)["killed"]["status"] == "interrupted"


def test_failed_run(edflow_project):
    edflow_project.toy(num_steps=10)
    edflow_project.write({"toy/failing.py": '''
        from toy.iterator import Iterator


        class Failing(Iterator):
            def step_op(self, model, x, y, index):
                if self.get_global_step() == 3:
                    raise RuntimeError("diverged")
                return super().step_op(model, x, y, index)
    '''})
    edflow_project.run("-t", "train.yaml", "-n", "broken", "--iterator", "toy.failing.Failing",
                       timeout=120).assert_failed(1)
    row = runs_json(edflow_project)["broken"]
    assert row["status"] == "failed" and row["checkpoint_step"] == 3


def test_a_run_that_fails_before_its_first_step_reads_as_failed(edflow_project):
    edflow_project.toy(num_steps=10)
    edflow_project.write({"toy/unreachable.py": '''
        class Data:
            def __init__(self, config):
                raise ConnectionError("the data server is unreachable")
    '''})
    edflow_project.run("-t", "train.yaml", "-n", "nodata", "--dataset", "toy.unreachable.Data",
                       timeout=120).assert_failed(1)
    (run,) = edflow_project.runs()
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and "the data server is unreachable" in status["error"]
    assert runs_json(edflow_project)["nodata"]["status"] == "failed"


def test_empty_and_missing_log_folders(edflow_project):
    (edflow_project.path / "logs").mkdir()
    assert edflow_project.run("runs", timeout=60).assert_success().stdout.strip() == "no runs in 'logs'"
    outcome = edflow_project.run("runs", "nowhere", timeout=60).assert_failed(2)
    assert "log folder 'nowhere' does not exist" in outcome.stderr and "Traceback" not in outcome.stderr


def test_runs_without_a_status_file_read_the_last_checkpoints_reason(edflow_project):
    edflow_project.toy(num_steps=10)
    edflow_project.run("-t", "train.yaml", "-n", "older", timeout=120).assert_success()
    (edflow_project.runs()[0] / "status.json").unlink()  # as in run folders written before status.json existed
    assert runs_json(edflow_project)["older"]["status"] == "finished"
