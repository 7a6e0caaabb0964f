"""Built-in run status: ``status.json`` in the run folder says whether the training is running (and where), or how
it ended, so that ``edflow runs`` can tell a live run from a finished, interrupted or crashed one."""
from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

from edcore.hookspecs import hookimpl

STATUS_FILE = "status.json"


def write_status(root: Path, status: str, **extra: object) -> None:
    """Replace ``root/status.json`` atomically with ``status`` plus this process's PID and host."""
    from edcore.project import write_text_atomic

    record = {
        "status": status,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        **extra,
    }
    write_text_atomic(Path(root) / STATUS_FILE, json.dumps(record, indent=2))


def read_status(root: Path) -> dict:
    """The recorded status of the run folder ``root``; a "running" one whose process is gone reads as
    "interrupted" (killed, or crashed before it could record how it ended)."""
    try:
        record = json.loads((Path(root) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {"status": "unknown"}
    if not isinstance(record, dict):
        return {"status": "unknown"}
    if record.get("status") == "running" and record.get("host") == socket.gethostname():
        if not _alive(record.get("pid")):
            record["status"] = "interrupted"
            record["note"] = f"process {record.get('pid')} ended without recording its status"
    return record


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_a_zombie(pid)


def _not_a_zombie(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(0)
    return fields[0] != "Z"


class RunStatus:
    """Records "running" when the training starts and "finished", "interrupted" or "failed" when it ends (also when
    it fails before its first step)."""

    def __init__(self) -> None:
        self.root: Path | None = None

    @hookimpl
    def edflow_project_init(self, project, config, mode):
        if mode == "train":
            self.root = Path(project.root)
            write_status(self.root, "running")

    @hookimpl
    def edflow_exception(self, iterator, exception):
        if self.root is not None:  # also failures before the loop, which no edflow_after_training follows
            step = {"global_step": iterator.get_global_step()} if iterator is not None else {}
            write_status(self.root, "failed", error=f"{type(exception).__name__}: {exception}"[:500], **step)

    @hookimpl
    def edflow_after_training(self, iterator, status):
        if self.root is not None:
            write_status(self.root, status, global_step=iterator.get_global_step())
            self.root = None
