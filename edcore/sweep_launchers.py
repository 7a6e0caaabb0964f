"""The optional launchers of ``edflow sweep``: Ray (``launcher: ray``, a local ``ray.init()``) and submitit
(``launcher: slurm``: SLURM where ``sbatch`` exists, else submitit's local executor).

Either engine runs :func:`run_trial` as its task: it starts the trial's ``edflow`` process exactly as the local
launcher does (this interpreter's edcore, its own session, dying with its parent) and writes the child's PID and
host next to the trial's output, so the sweep can forward its SIGINT/SIGTERM to the trial itself: the engines'
own cancellation would kill the task before the training has written its interrupt checkpoint. Installed with
``pip install 'edcore[ray]'`` or ``'edcore[slurm]'``; edcore never imports them otherwise.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable

from edcore.errors import EXIT_FAILURE


def run_trial(argv: list[str], cwd: str, output: str) -> int:
    """Run ``edflow ARGV`` in ``cwd`` with its output appended to ``output``; return its exit code. Runs inside a
    Ray worker or a submitit job."""
    from edcore.supervisor import die_with_parent, edflow_command

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(output, "a", encoding="utf-8") as stream:
        process = subprocess.Popen(edflow_command(argv), cwd=cwd, stdout=stream, stderr=stream, env=env,
                                   start_new_session=True, preexec_fn=die_with_parent())
    pid_file = Path(output + ".pid")
    tmp = pid_file.with_name(pid_file.name + ".tmp")
    tmp.write_text(json.dumps({"pid": process.pid, "host": socket.gethostname()}))
    os.replace(tmp, pid_file)
    try:
        return process.wait()
    finally:
        with contextlib.suppress(OSError):
            pid_file.unlink()


class EngineLauncher:
    """What both engines share: a thread per trial that waits for the engine's result, and signals sent to the
    trials' own processes through their PID files."""

    def __init__(self, on_exit: Callable[[str, int], None]) -> None:
        self.on_exit = on_exit
        self.outputs: dict[str, Path] = {}
        self.ended: set[str] = set()

    def start(self, label: str, argv: list[str], output: Path) -> None:
        output.touch()
        for stale in (output.with_name(output.name + ".pid"),):
            with contextlib.suppress(OSError):
                stale.unlink()
        self.outputs[label] = output
        handle = self.submit(argv, str(output.resolve()))
        threading.Thread(target=self._wait, args=(label, handle), name=f"trial {label}", daemon=True).start()

    def _wait(self, label: str, handle: Any) -> None:
        try:
            code = int(self.result(handle))
        except Exception:  # the task itself died (its worker was killed): the trial's run tells how it ended
            code = EXIT_FAILURE
        self.ended.add(label)
        self.on_exit(label, code)

    def _pids(self) -> list[int]:
        pids = []
        for label, output in self.outputs.items():
            if label in self.ended:
                continue
            try:
                holder = json.loads(output.with_name(output.name + ".pid").read_text())
            except (OSError, ValueError):
                continue  # not started yet: the sweep starts no new trial after a signal
            if holder.get("host") == socket.gethostname():
                pids.append(int(holder["pid"]))
        return pids

    def forward(self, signum: int) -> None:
        for pid in self._pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        self.forward_remote(signum)

    def kill(self) -> None:
        self.forward(signal.SIGKILL)

    def forward_remote(self, signum: int) -> None:
        """Signals for trials on other hosts (SLURM); nothing for a local engine."""

    def submit(self, argv: list[str], output: str) -> Any:
        raise NotImplementedError

    def result(self, handle: Any) -> int:
        raise NotImplementedError


class RayLauncher(EngineLauncher):
    """Trials as Ray tasks of a local ``ray.init()`` with one CPU each, so at most ``max_parallel`` run at once."""

    def __init__(self, spec: Any, on_exit: Callable[[str, int], None]) -> None:
        super().__init__(on_exit)
        import ray

        self.ray = ray
        if not ray.is_initialized():
            ray.init(num_cpus=spec.max_parallel, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        self.task = ray.remote(num_cpus=1, max_retries=0)(run_trial)

    def submit(self, argv: list[str], output: str) -> Any:
        return self.task.remote(argv, os.getcwd(), output)

    def result(self, handle: Any) -> int:
        return self.ray.get(handle)

    def close(self) -> None:
        self.ray.shutdown()


class SubmititLauncher(EngineLauncher):
    """Trials as submitit jobs: on SLURM where ``sbatch`` exists, else with submitit's local executor; the jobs'
    files go to ``SWEEP_DIR/submitit``."""

    def __init__(self, spec: Any, folder: Path, on_exit: Callable[[str, int], None]) -> None:
        super().__init__(on_exit)
        import submitit

        self.executor = submitit.AutoExecutor(folder=folder / "submitit", cluster=None)
        self.executor.update_parameters(timeout_min=24 * 60)
        self.jobs: list[Any] = []

    def submit(self, argv: list[str], output: str) -> Any:
        job = self.executor.submit(run_trial, argv, os.getcwd(), output)
        self.jobs.append(job)
        return job

    def result(self, handle: Any) -> int:
        return handle.result()

    def forward_remote(self, signum: int) -> None:
        if self.executor.cluster != "slurm" or signum == signal.SIGKILL:
            return
        for job in self.jobs:
            if not job.done():  # SLURM delivers the signal to the job's processes on its node
                subprocess.run(["scancel", f"--signal={signal.Signals(signum).name[3:]}", "--full", str(job.job_id)],
                               check=False, capture_output=True)

    def close(self) -> None:
        pass


def make(spec: Any, folder: Path, on_exit: Callable[[str, int], None]) -> EngineLauncher:
    """The launcher the sweep file names (``ray`` or ``slurm``)."""
    if spec.launcher == "ray":
        return RayLauncher(spec, on_exit)
    return SubmititLauncher(spec, folder, on_exit)

