"""The checkpoint protocol: atomic publication, manifests, the ``latest`` pointer, discovery and retention.

A checkpoint is a folder ``train/checkpoints/<global_step, 10 digits>/``. It is written as a hidden temporary
folder, every file is flushed to disk, a ``manifest.json`` listing the files and their sizes is written last, and
the folder is renamed into place (atomic on POSIX). Then ``latest`` (a small text file holding the folder name) is
replaced atomically. A folder without a valid manifest, or whose files do not match it, does not exist for readers,
so killing the writer at any moment never leaves a checkpoint that loads wrongly.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from edcore.errors import CheckpointError

log = logging.getLogger("edflow")

FORMAT = "edflow-checkpoint/1"
MANIFEST = "manifest.json"
LATEST = "latest"
STEP_DIGITS = 10
TMP_PREFIX = ".tmp-"
UNREADABLE_PREFIX = ".unreadable-"


@dataclass(frozen=True)
class Checkpoint:
    """A published checkpoint."""

    step: int
    path: Path
    manifest: dict = field(default_factory=dict, compare=False, hash=False)


def step_dirname(step: int) -> str:
    return f"{step:0{STEP_DIGITS}d}"


class CheckpointStore:
    """The checkpoints of one run (``train/checkpoints``). Only the training process writes; anyone may read."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    # -- reading -------------------------------------------------------------------------------------------------

    def published(self) -> list[Checkpoint]:
        """All valid published checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        checkpoints = []
        for entry in self.directory.iterdir():
            if not (entry.name.isdigit() and entry.is_dir()):
                continue
            manifest = read_manifest(entry)
            if manifest is not None:
                checkpoints.append(Checkpoint(int(entry.name), entry, manifest))
        return sorted(checkpoints, key=lambda c: c.step)

    def latest(self) -> Checkpoint | None:
        checkpoints = self.published()
        return checkpoints[-1] if checkpoints else None

    def get(self, step: int) -> Checkpoint | None:
        path = self.directory / step_dirname(step)
        manifest = read_manifest(path)
        return Checkpoint(step, path, manifest) if manifest is not None else None

    # -- writing -------------------------------------------------------------------------------------------------

    def clean_stale(self) -> None:
        """Remove temporary folders left by writers that were killed (only the training process calls this)."""
        if not self.directory.is_dir():
            return
        for entry in self.directory.iterdir():
            if entry.name.startswith(TMP_PREFIX) or entry.name.startswith(".old-"):
                shutil.rmtree(entry, ignore_errors=True)

    def write(self, step: int, write_files: Callable[[Path], None], metadata: dict | None = None) -> Checkpoint:
        """Write a checkpoint through ``write_files(folder)`` and publish it atomically.

        If a checkpoint of ``step`` is already published it is kept as it is: the state of a step does not change,
        so a second save (e.g. periodic and end of training at the same step) has nothing to add.
        """
        existing = self.get(step)
        try:
            if existing is None:
                return self._write(step, write_files, metadata)
            if (metadata or {}).get("reason") == "final" and existing.manifest.get("reason") != "final":
                existing = self._mark_final(existing)  # retention keeps final checkpoints; say that this is one
            return existing
        except OSError as err:  # disk full, file too large, no permission: the storage's problem, not the code's
            raise CheckpointError(
                f"cannot write the checkpoint of global step {step} into '{self.directory}': "
                f"{err.strerror or err}{f' (writing {err.filename})' if err.filename else ''}. The checkpoints "
                f"published before are intact; free space or fix the folder, then resume with edflow -p."
            ) from err

    def _write(self, step: int, write_files: Callable[[Path], None], metadata: dict | None) -> Checkpoint:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{TMP_PREFIX}{step_dirname(step)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            write_files(tmp)
            files = {}
            for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
                _fsync_file(path)
                files[path.relative_to(tmp).as_posix()] = path.stat().st_size
            for folder in sorted({p.parent for p in tmp.rglob("*")} | {tmp}, key=lambda p: -len(p.parts)):
                _fsync_dir(folder)
            manifest = {"format": FORMAT, "step": step, "time": time.time(), "files": files, **(metadata or {})}
            _write_manifest(tmp / MANIFEST, manifest)
            _fsync_dir(tmp)
            final = self.directory / step_dirname(step)
            os.rename(tmp, final)  # publication: atomic; fails if the name exists, never replaces it
            _fsync_dir(self.directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._point_latest(final.name)
        return Checkpoint(step, final, manifest)

    def _mark_final(self, checkpoint: Checkpoint) -> Checkpoint:
        manifest = {**checkpoint.manifest, "reason": "final"}
        tmp = checkpoint.path / f".{MANIFEST}.{os.getpid()}.tmp"
        _write_manifest(tmp, manifest)
        os.replace(tmp, checkpoint.path / MANIFEST)  # readers see the old or the new manifest, both valid
        _fsync_dir(checkpoint.path)
        return Checkpoint(checkpoint.step, checkpoint.path, manifest)

    def _point_latest(self, name: str) -> None:
        pointer = self.directory / LATEST
        tmp = self.directory / f".{LATEST}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as stream:
            stream.write(name + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, pointer)
        _fsync_dir(self.directory)

    def remove(self, checkpoint: Checkpoint) -> None:
        """Delete a published checkpoint: unpublish it first (rename), then delete, so readers never see half."""
        trash = self._unpublish(checkpoint, ".old-")
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def set_aside(self, checkpoint: Checkpoint) -> Path | None:
        """Unpublish a checkpoint that cannot be restored, keeping its files as ``.unreadable-<step>-<id>`` for a
        post-mortem; otherwise a resumed run would keep the broken folder instead of writing that step again."""
        return self._unpublish(checkpoint, UNREADABLE_PREFIX)

    def _unpublish(self, checkpoint: Checkpoint, prefix: str) -> Path | None:
        hidden = self.directory / f"{prefix}{checkpoint.path.name}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(checkpoint.path, hidden)
        except FileNotFoundError:
            return None
        _fsync_dir(self.directory)
        latest = self.latest()
        if latest is not None:
            self._point_latest(latest.path.name)
        return hidden

    def prune(self, keep_last: int | None, keep: Iterable[int] = ()) -> list[int]:
        """Delete all but the newest ``keep_last`` checkpoints and the steps in ``keep``; return deleted steps."""
        if keep_last is None:
            return []
        checkpoints = self.published()
        protected = set(keep) | {c.step for c in (checkpoints[-keep_last:] if keep_last > 0 else [])}
        deleted = []
        for checkpoint in checkpoints:
            if checkpoint.step not in protected:
                self.remove(checkpoint)
                deleted.append(checkpoint.step)
        return deleted


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a checkpoint folder, or ``None`` when the folder is not a complete checkpoint."""
    try:
        with open(folder / MANIFEST, encoding="utf-8") as stream:
            manifest = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        return None
    for name, size in manifest["files"].items():
        try:
            if (folder / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return manifest


def find_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Resolve what a user passed to ``-c``: a checkpoint folder, a file inside one, a ``checkpoints`` folder or a
    run folder (the latter two mean their latest checkpoint)."""
    target = Path(path)
    if not target.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist.")
    if target.is_file():
        target = target.parent
    manifest = read_manifest(target)
    if manifest is not None:
        return Checkpoint(int(manifest["step"]), target, manifest)
    for candidate in (target, target / "checkpoints", target / "train" / "checkpoints"):
        if candidate.is_dir() and any(c.name.isdigit() for c in candidate.iterdir()):
            latest = CheckpointStore(candidate).latest()
            if latest is not None:
                return latest
    raise CheckpointError(
        f"'{path}' is not a checkpoint: it has no valid {MANIFEST} (a checkpoint that was not completely written, "
        f"or another program's file). Pass a folder like RUN/train/checkpoints/0000001000."
    )


def _write_manifest(path: Path, manifest: dict) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(manifest, stream, indent=1, sort_keys=True, default=str)
        stream.flush()
        os.fsync(stream.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------------
# Evaluators register what they still need, so that retention never deletes an unevaluated checkpoint.

EVALUATORS_DIR = ".evaluators"


def register_evaluator(directory: str | os.PathLike, evaluator_id: str, evaluated: Iterable[int], finished: bool,
                       start_step: int = 0, details: dict | None = None) -> None:
    """Record which checkpoints an evaluator has done (``finished`` once it will evaluate no more); ``details``
    (JSON-serializable, e.g. its folder or its last error) are stored alongside."""
    folder = Path(directory) / EVALUATORS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    state = {**(details or {}), "pid": os.getpid(), "evaluated": sorted(set(evaluated)), "finished": finished,
             "start_step": start_step}
    tmp = folder / f".{evaluator_id}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / f"{evaluator_id}.json")


def read_evaluator(directory: str | os.PathLike, evaluator_id: str) -> dict | None:
    """What :func:`register_evaluator` last recorded for ``evaluator_id``, or ``None``."""
    try:
        state = json.loads((Path(directory) / EVALUATORS_DIR / f"{evaluator_id}.json").read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def steps_needed_by_evaluators(directory: str | os.PathLike) -> set[int]:
    """Published steps that a registered, unfinished evaluator has not evaluated yet."""
    folder = Path(directory) / EVALUATORS_DIR
    if not folder.is_dir():
        return set()
    published = [c.step for c in CheckpointStore(directory).published()]
    needed: set[int] = set()
    for file in folder.glob("*.json"):
        try:
            state = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        if state.get("finished"):
            continue
        done = set(state.get("evaluated", []))
        needed |= {s for s in published if s not in done and s >= state.get("start_step", 0)}
    return needed
