"""The optional launchers of ``edflow sweep``: Ray (``launcher: ray``, a local ``ray.init()``) and submitit
(``launcher: slurm``: SLURM where ``sbatch`` exists, else submitit's local executor).

Either engine runs a :class:`Trial` as its task: it starts the trial's ``edflow`` process exactly as the local
launcher does (this interpreter's edcore, its own session, dying with its parent) and writes the child's PID and
host next to the trial's output, so the sweep can forward its SIGINT/SIGTERM to the trial itself: the engines'
own cancellation would kill the task before the training has written its interrupt checkpoint. Under submitit a
trial preempted by SLURM is requeued and resumes from its interrupt checkpoint (:class:`Trial`). Installed with
``pip install 'edcore[ray]'`` or ``'edcore[slurm]'``; edcore never imports them otherwise.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from edcore.errors import EXIT_FAILURE


def run_trial(argv: list[str], cwd: str, output: str, run_pattern: str = "") -> int:
    """Run ``edflow ARGV`` in ``cwd`` with its output appended to ``output``; return its exit code (a Ray task)."""
    return Trial(argv, cwd, output, run_pattern)()


class Trial:
    """A trial's ``edflow`` process as an engine's task, requeued by submitit when SLURM preempts the job.

    SLURM announces a preemption (or the coming time limit) with submitit's signal (USR2 unless
    ``SUBMITIT_PREEMPT_SIGNAL`` says otherwise) to the processes of the job. The trial's process ignores it, so
    that it is stopped exactly once: submitit calls :meth:`checkpoint` in this process, which stops the training
    with SIGTERM (it writes its interrupt checkpoint), waits for it and hands submitit this trial to requeue.
    Whenever the task starts, again after a requeue or after SLURM requeued the job by itself, a run folder
    matching ``run_pattern`` means the trial has begun: it continues with ``edflow -p RUN`` from its latest
    checkpoint, so a preempted trial resumes exactly.
    """

    def __init__(self, argv: list[str], cwd: str, output: str, run_pattern: str = "") -> None:
        self.argv, self.cwd, self.output, self.run_pattern = argv, cwd, output, run_pattern
        self.finished: int | None = None  # the exit code of a training that ended before a preemption's signal
        self.process: subprocess.Popen | None = None
        self.ended = threading.Event()

    def __getstate__(self) -> dict:  # pickled by submitit for the requeue: without the process of this node
        return {key: value for key, value in self.__dict__.items() if key not in ("process", "ended")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, process=None, ended=threading.Event())

    def command(self) -> list[str]:
        run = sorted(glob.glob(self.run_pattern)) if self.run_pattern and self.argv[:1] != ["-p"] else []
        return ["-p", run[-1]] if run else self.argv

    def __call__(self) -> int:
        if self.finished is not None:
            return self.finished
        from edcore.supervisor import die_with_parent, edflow_command

        preemption = _preemption_signal()
        to_parent = die_with_parent()

        def preexec() -> None:
            to_parent()
            if preemption is not None:  # SLURM's preemption signal is for this process, not for the training
                signal.signal(preemption, signal.SIG_IGN)

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.output, "a", encoding="utf-8") as stream:
            self.process = subprocess.Popen(edflow_command(self.command()), cwd=self.cwd, stdout=stream,
                                            stderr=stream, env=env, start_new_session=True, preexec_fn=preexec)
        # A thread waits for the process: submitit's signal handler, in this (main) thread, waits for it too, and
        # Popen.wait() holds a lock while it blocks that a handler interrupting it could never take.
        code: list[int] = []
        waiter = threading.Thread(target=lambda: (code.append(self.process.wait()), self.ended.set()), daemon=True)
        waiter.start()
        pid_file = Path(self.output + ".pid")
        tmp = pid_file.with_name(pid_file.name + ".tmp")
        tmp.write_text(json.dumps({"pid": self.process.pid, "host": socket.gethostname(), "task": os.getpid()}))
        os.replace(tmp, pid_file)
        try:
            while not self.ended.wait(0.5):  # wakes up for signals
                pass
            return code[0]
        finally:
            with contextlib.suppress(OSError):
                pid_file.unlink()

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on the preemption signal: stop the training once, wait for its interrupt checkpoint,
        and return this trial to requeue (it then continues with ``-p``)."""
        import submitit

        if self.process is not None:
            with contextlib.suppress(OSError):
                if not self.ended.is_set():
                    os.kill(self.process.pid, signal.SIGTERM)
            self.ended.wait()
            if self.process.returncode == 0:  # it had just finished: the requeued task only reports it
                self.finished = 0
        return submitit.helpers.DelayedSubmission(self)


def _wait_gone(pid: int, timeout: float = 120.0) -> None:
    """Wait until process ``pid`` has ended (a zombie nobody reaps counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                if stat.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                    return
        except OSError:
            try:
                os.kill(pid, 0)
            except OSError:
                return
        time.sleep(0.05)


def _preemption_signal() -> int | None:
    """The signal submitit's job environment checkpoints and requeues on, inside a submitit job; else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, name, None)


class EngineLauncher:
    """What both engines share: a thread per trial that waits for the engine's result, and signals sent to the
    trials' own processes through their PID files."""

    def __init__(self, on_exit: Callable[[str, int], None]) -> None:
        self.on_exit = on_exit
        self.outputs: dict[str, Path] = {}
        self.ended: set[str] = set()
        self.holders: dict[str, dict] = {}

    def start(self, label: str, argv: list[str], output: Path, run_pattern: str = "") -> None:
        output.touch()
        for stale in (output.with_name(output.name + ".pid"),):
            with contextlib.suppress(OSError):
                stale.unlink()
        self.holders.pop(label, None)
        self.outputs[label] = output
        handle = self.submit(argv, str(output.resolve()), run_pattern)
        threading.Thread(target=self._wait, args=(label, handle), name=f"trial {label}", daemon=True).start()

    def _wait(self, label: str, handle: Any) -> None:
        try:
            code = int(self.result(handle))
        except Exception:  # the task itself died (its worker was killed): the trial's run tells how it ended,
            code = EXIT_FAILURE  # once its process, which outlives the task to write its checkpoint, has ended
            holder = self._holder(label)
            if holder is not None:
                _wait_gone(int(holder["pid"]))
        self.ended.add(label)
        self.on_exit(label, code)

    def _holder(self, label: str) -> dict | None:
        """What the trial's task published about its process on this host (None: not started, or elsewhere)."""
        output = self.outputs[label]
        try:
            holder = json.loads(output.with_name(output.name + ".pid").read_text())
        except (OSError, ValueError):  # gone with its task: what was read last (by forward()) still names it
            holder = self.holders.get(label)
        else:
            self.holders[label] = holder
        return holder if holder is not None and holder.get("host") == socket.gethostname() else None

    def _pids(self) -> list[int]:
        # a trial not started yet has none: the sweep starts no new trial after a signal
        holders = [self._holder(label) for label in self.outputs if label not in self.ended]
        return [int(holder["pid"]) for holder in holders if holder is not None]

    def forward(self, signum: int) -> None:
        for pid in self._pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        self.forward_remote(signum)

    def kill(self) -> None:
        self.forward(signal.SIGKILL)

    def forward_remote(self, signum: int) -> None:
        """Signals for trials on other hosts (SLURM); nothing for a local engine."""

    def submit(self, argv: list[str], output: str, run_pattern: str) -> Any:
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

    def submit(self, argv: list[str], output: str, run_pattern: str) -> Any:
        return self.task.remote(argv, os.getcwd(), output, run_pattern)

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

    def submit(self, argv: list[str], output: str, run_pattern: str) -> Any:
        job = self.executor.submit(Trial(argv, os.getcwd(), output, run_pattern))
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

