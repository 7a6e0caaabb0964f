"""One training per run folder: ``RUN/train.lock``, held with ``fcntl.flock`` by the process that trains (and one
``edflow sweep`` per sweep folder: ``SWEEP_DIR/sweep.lock``).

The kernel releases a flock when its holder ends, however it ends (SIGKILL included), so a lock left behind by a
dead process never blocks. The file records the PID and host of the holder, to name them when a second training
of the same run is refused. Evaluations (``-e -p RUN``) do not take this lock: evaluating while training is fine.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any, Callable

from edcore.errors import UsageError

LOCK_FILE = "train.lock"
SWEEP_LOCK_FILE = "sweep.lock"

#: The open lock files of this process: the lock lives as long as the file stays open.
_held: dict[str, Any] = {}


class RunLockedError(UsageError):
    """Another process is training this run folder."""


def lock_training(root: str | os.PathLike) -> None:
    """Take the training lock of the run folder ``root`` for the life of this process, or raise
    :class:`RunLockedError` naming the process and host that hold it. Nothing else in the run is written."""
    path = Path(root) / LOCK_FILE
    _lock(path, lambda holder: RunLockedError(
        f"run '{root}' is being trained by process {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"(lock file {path}); only one training of a run at a time. Wait for it to end or stop it, then "
        f"continue with 'edflow -p {root}'. Evaluating it with -e -p works while it trains."
    ))


def lock_sweep(folder: str | os.PathLike) -> None:
    """The same lock for a sweep folder (``SWEEP_DIR/sweep.lock``): one ``edflow sweep`` runs a sweep at a time."""
    path = Path(folder) / SWEEP_LOCK_FILE
    _lock(path, lambda holder: RunLockedError(
        f"sweep '{folder}' is being run by process {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"(lock file {path}); only one 'edflow sweep' of a sweep folder at a time. Wait for it to end or stop it, "
        f"then continue with 'edflow sweep -p {folder}'."
    ))


def _lock(path: Path, refusal: Callable[[dict], Exception]) -> None:
    key = str(path.resolve())
    if key in _held:
        return
    stream = open(path, "a+", encoding="utf-8")  # never truncated before the lock is ours
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        stream.seek(0)
        holder = _read_holder(stream.read())
        stream.close()
        raise refusal(holder) from None
    stream.seek(0)
    stream.truncate()
    stream.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
    stream.flush()
    _held[key] = stream


def _read_holder(text: str) -> dict:
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
