"""Run folders: one training per run (the training lock), ``-p`` shorthands, evaluating a run with its own settings."""
from __future__ import annotations

import json
import signal
import socket
import time

from edcore.testing import TOY_PACKAGE

SLOW_ITERATOR = {
    **TOY_PACKAGE,
    "toy/slow.py": '''
        import time

        from toy.iterator import Iterator as Toy


        class Iterator(Toy):
            def step_op(self, model, x, y, index):
                ops = super().step_op(model, x, y, index)
                train = ops["train_op"]

                def train_op():
                    time.sleep(self.config.get("step_sleep", 0))
                    train()

                return {**ops, "train_op": train_op}
    ''',
}


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def checkpoints(run):
    return sorted(p.name for p in (run / "train" / "checkpoints").iterdir() if p.name.isdigit())


def test_a_second_training_of_a_run_that_trains_is_refused_and_a_killed_holder_does_not_block(edflow_project):
    edflow_project.toy(num_steps=100000, ckpt_freq=5, log_freq=1, step_sleep=0.05, iterator="toy.slow.Iterator")
    edflow_project.write(SLOW_ITERATOR)
    first = edflow_project.start("-t", "train.yaml")
    try:
        run = wait_for(lambda: (edflow_project.runs() or [None])[0], 120, "the run folder")
        wait_for(lambda: checkpoints(run), 120, "a checkpoint")
        first.send(signal.SIGSTOP)  # frozen: nothing it writes can change the files compared below
        before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
        second = edflow_project.run("-p", str(run), "--num_steps", "12", "--step_sleep", "0")
        after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
        second.assert_failed(2)
        assert f"process {first.pid} on host {socket.gethostname()}" in second.output, second
        assert "Traceback" not in second.output
        assert after == before  # no config, no run.json entry, no metrics line, no checkpoint
        # Evaluating the run while it trains stays possible.
        edflow_project.config("eval.yaml", dataset="toy.data.Data", iterator="toy.iterator.Iterator", batch_size=8)
        edflow_project.run("-e", "eval.yaml", "-p", str(run)).assert_success()
    finally:
        first.send(signal.SIGKILL)
        first.send(signal.SIGCONT)
        first.wait(timeout=60)
    lock = json.loads((run / "train.lock").read_text())
    assert lock == {"pid": first.pid, "host": socket.gethostname()}  # stale: its holder is dead
    edflow_project.run("-p", str(run), "--num_steps", "12", "--step_sleep", "0").assert_success()
    steps = [record["global_step"] for record in edflow_project.metrics(run) if "global_step" in record]
    assert steps[-1] == 12
