"""Child processes of one ``edflow`` invocation (the evaluation processes next to a training).

Each child is started so that it can never outlive this process or be left behind as a zombie: it gets
``PR_SET_PDEATHSIG`` (SIGTERM when this process dies, even by SIGKILL) on Linux, its own session (a terminal's
Ctrl-C reaches it once, forwarded by this process, not twice), a pipe whose end-of-file tells it that the training
has ended (also when this process dies), and a thread here that waits for it, so its exit is collected and a crash
is reported at once. EDFlow hung here when only the main PID got the signal.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from edcore.errors import EXIT_FAILURE, EXIT_SIGNAL_BASE

log = logging.getLogger("edflow")

PR_SET_PDEATHSIG = 1
#: After a forwarded stop signal, how long children get to end before they are killed.
STOP_GRACE_SECONDS = 30.0
#: torchrun's variables: a child must not join the training's process group.
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                   "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")


#: What an ``edflow`` child process runs (``python -c``). ``python -m edcore`` would put the working directory first on
#: sys.path, where a folder named edcore (a copy of the repository, say) shadows the installed package; ``-c`` puts
#: it there as '', which is dropped. The user's modules are still found in the working directory: edcore.references
#: adds it when it resolves a dotted name, in the parent and the children alike.
LAUNCHER = """\
import sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
sys.argv[0] = sys.argv.pop(1)
from edcore.cli import main
sys.exit(main())
"""


def edflow_command(argv: list[str], program: str = "edflow") -> list[str]:
    """The command line of the ``edflow ARGV`` child process, with this interpreter and the installed edcore;
    ``program`` becomes its ``sys.argv[0]`` (recorded in run.json)."""
    return [sys.executable, "-c", LAUNCHER, program, *argv]


def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    except OSError:
        return None


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive SIGTERM when this process dies (Linux; elsewhere the pipe's
    end-of-file still ends it). libc is loaded here, before the fork, because the child may only call into it."""
    libc = _libc()
    parent = os.getpid()

    def preexec() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(EXIT_FAILURE)

    return preexec


@dataclass
class Child:
    """One child process and what is known about it."""

    label: str
    process: subprocess.Popen
    pipe: int | None
    returncode: int | None = None
    reported: bool = False
    watcher: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Starts children, forwards signals to them, reports a failed one at once, and waits for all of them.

    ``describe_failure(child)`` returns the sentence that reports a failed child (which config, the error, where
    its log is); with ``None`` the caller reports failures itself (through ``on_exit``).
    """

    def __init__(self, describe_failure: Callable[[Child], str] | None,
                 on_exit: Callable[[Child], None] | None = None) -> None:
        self.children: list[Child] = []
        self.describe_failure = describe_failure
        self.on_exit = on_exit  # called in the child's watcher thread once its exit code is known
        self.ended = False
        self.stop_signal = 0
        self._lock = threading.Lock()

    def start(self, label: str, argv: list[str], env: dict | None = None, follow: bool = True,
              **popen: Any) -> Child:
        """Start ``edflow ARGV --follow-fd N`` (:func:`edflow_command`); the child's pipe N reaches end-of-file at
        :meth:`end`. ``follow=False`` starts a plain ``edflow ARGV`` (a sweep's trial, which is no follower);
        ``popen`` goes to :class:`subprocess.Popen` (``stdout=``, ``cwd=``)."""
        child_env = {key: value for key, value in {**os.environ, **(env or {})}.items() if key not in DISTRIBUTED_ENV}
        program = sys.argv[0] or "edflow"
        if not follow:
            process = subprocess.Popen(edflow_command(argv, program=program), env=child_env, start_new_session=True,
                                       preexec_fn=die_with_parent(), **popen)
            return self._watched(Child(label, process, None))
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(
                edflow_command([*argv, "--follow-fd", str(read_end)], program=program),
                pass_fds=(read_end,), env=child_env, start_new_session=True, preexec_fn=die_with_parent(), **popen,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return self._watched(Child(label, process, write_end))

    def _watched(self, child: Child) -> Child:
        child.watcher = threading.Thread(target=self._watch, args=(child,), name=f"watch {child.label}", daemon=True)
        self.children.append(child)
        child.watcher.start()
        return child

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def _watch(self, child: Child) -> None:
        code = child.process.wait()  # collects the exit status: no zombie
        with self._lock:
            child.returncode = code
            if code != 0 and not self.ended and not self.stop_signal and self.describe_failure is not None:
                child.reported = True
                log.error("%s", self.describe_failure(child))
        if self.on_exit is not None:
            self.on_exit(child)

    def forward(self, signum: int) -> None:
        """Send ``signum`` to every child that still runs."""
        self.stop_signal = self.stop_signal or signum
        for child in self.children:
            if child.returncode is None:
                try:
                    child.process.send_signal(signum)
                except OSError:
                    pass

    def end(self) -> None:
        """Tell every child that the training has ended (their pipes reach end-of-file)."""
        self.ended = True
        for child in self.children:
            if child.pipe is not None:
                os.close(child.pipe)
                child.pipe = None

    def wait(self) -> list[Child]:
        """Wait for every child, forwarding SIGINT/SIGTERM meanwhile (a second one kills them); return the children
        that failed."""
        self.end()
        previous = {}

        def on_signal(signum: int, frame: Any) -> None:
            if self.stop_signal:
                self.kill()
            else:
                log.warning("received %s: stopping the evaluation processes", signal.Signals(signum).name)
                self.forward(signum)

        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_signal)
        except ValueError:  # not the main thread
            previous.clear()
        deadline = None
        try:
            for child in self.children:
                while child.watcher is not None and child.watcher.is_alive():
                    if self.stop_signal and deadline is None:
                        deadline = time.monotonic() + STOP_GRACE_SECONDS
                    if deadline is not None and time.monotonic() > deadline:
                        self.kill()
                    child.watcher.join(0.2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return [child for child in self.children if child.returncode not in (0, None)
                and not (self.stop_signal and child.returncode == EXIT_SIGNAL_BASE + self.stop_signal)]

    def kill(self) -> None:
        for child in self.children:
            if child.returncode is None:
                try:
                    child.process.kill()
                except OSError:
                    pass
