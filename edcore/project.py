"""The ProjectManager: run folders, the code snapshot and what was run where."""
from __future__ import annotations

import contextlib
import datetime
import fnmatch
import importlib.util
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

from edcore.errors import EdflowError, RunFolderError, UsageError

log = logging.getLogger("edflow")

TIMESTAMP_FORMAT = "%Y-%m-%dT%H-%M-%S"
#: Never copied into a snapshot, whatever git says: environment files, keys and credentials.
SECRET_PATTERNS = (
    ".env", ".env.*", "*.env", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.p12",
    "*.pfx", ".netrc", ".pypirc", "credentials*", "*.kdbx", ".git-credentials",
)
#: Outside git, only these files are snapshotted.
CODE_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".txt", ".md", ".sh")
SKIPPED_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache",
                ".tox", "build", "dist", "logs", "site-packages", ".ipynb_checkpoints"}
DEFAULT_MAX_FILE_SIZE = 1_000_000


class ProjectManager:
    """One run folder and its places, exposed as attributes for user code and plugins.

    Layout::

        logs/<YYYY-MM-DDTHH-MM-SS>_<name>/
            configs/      effective configs of every invocation, with the origin of every value
            code/         snapshot of the user's code
            train/        log.txt, metrics.jsonl, checkpoints/
            eval/         one folder per evaluation: <timestamp>_<name>/<global_step>/
            run.json      command lines, versions, host, git state, plugins
            git.diff      uncommitted changes at the start of the run (inside git only)
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.configs = self.root / "configs"
        self.code = self.root / "code"
        self.train = self.root / "train"
        self.checkpoints = self.train / "checkpoints"
        self.eval = self.root / "eval"
        self.name = self.root.name.split("_", 1)[1] if "_" in self.root.name else self.root.name

    def __repr__(self) -> str:
        return f"ProjectManager({str(self.root)!r})"

    # -- creating and opening -------------------------------------------------------------------------------------

    @classmethod
    def create(cls, logdir: str | os.PathLike, name: str, now: datetime.datetime | None = None) -> "ProjectManager":
        """Create a new run folder; two runs started in the same second get distinct folders."""
        project = cls(new_folder(logdir, name, now))
        root = project.root
        try:
            for folder in (project.configs, project.code, project.train, project.checkpoints, project.eval):
                folder.mkdir(exist_ok=True)
        except OSError as err:
            raise EdflowError(f"cannot create the run folder '{root}': {err.strerror or err}.") from err
        return project

    @classmethod
    def open(cls, root: str | os.PathLike) -> "ProjectManager":
        """Reopen an existing run folder (``-p``); nothing in it is truncated or overwritten."""
        path = Path(root)
        if not path.exists():
            raise UsageError(f"run folder '{root}' does not exist.")
        if not path.is_dir():
            raise UsageError(f"'{root}' is not a run folder (it is a file).")
        project = cls(path)
        if not project.configs.is_dir() or not project.train.is_dir():
            raise UsageError(
                f"'{root}' is not an edflow run folder: it has no configs/ and train/ folders. Pass the folder that "
                f"'edflow -t' created, like logs/2026-01-01T12-00-00_name."
            )
        for folder in (project.checkpoints, project.eval):
            folder.mkdir(exist_ok=True)
        return project

    def new_eval_dir(self, name: str, now: datetime.datetime | None = None) -> Path:
        """A fresh ``eval/<timestamp>_<name>/`` folder."""
        now = now or datetime.datetime.now()
        base = f"{now.strftime(TIMESTAMP_FORMAT)}_{_safe_name(name)}"
        for attempt in range(1000):
            folder = self.eval / (base if attempt == 0 else f"{base}_{attempt + 1}")
            try:
                folder.mkdir(parents=True)
                return folder
            except FileExistsError:
                continue
        raise EdflowError(f"cannot find a free evaluation folder name for '{base}' in '{self.eval}'.")

    # -- configs ----------------------------------------------------------------------------------------------------

    def write_config(self, mode: str, config: Any, now: datetime.datetime | None = None) -> Path:
        """Write the effective config and the origin of every value as ``configs/<mode>_<timestamp>.yaml``."""
        from edcore.config import dump

        now = now or datetime.datetime.now()
        stem = f"{mode}_{now.strftime(TIMESTAMP_FORMAT)}"
        path = self.configs / f"{stem}.yaml"
        counter = 1
        while path.exists():
            counter += 1
            path = self.configs / f"{stem}_{counter}.yaml"
        write_text_atomic(path, dump(config.data))
        origins = "# where each value of " + path.name + " came from\n" + dump(config.origins_table())
        write_text_atomic(path.with_suffix(".origins.yaml"), origins)
        return path

    def latest_config(self, mode: str = "train") -> Path | None:
        """The newest effective config of ``mode`` written into this run."""
        candidates = sorted(p for p in self.configs.glob(f"{mode}_*.yaml") if not p.name.endswith(".origins.yaml"))
        return candidates[-1] if candidates else None

    # -- run information --------------------------------------------------------------------------------------------

    def record_invocation(self, argv: list[str], mode: str, plugins: list[dict], extra: dict | None = None) -> None:
        """Append this invocation (command, versions, host, plugins) to ``run.json``."""
        path = self.root / "run.json"
        try:
            record = json.loads(path.read_text()) if path.exists() else {"invocations": []}
            if not isinstance(record, dict) or not isinstance(record.get("invocations"), list):
                raise ValueError("not a run record")
        except ValueError:
            aside = path.with_name(f"run.unreadable-{datetime.datetime.now().strftime(TIMESTAMP_FORMAT)}.json")
            os.replace(path, aside)  # never overwrite what a user may still need
            log.warning("run.json could not be read; it was kept as %s and a new one started", aside.name)
            record = {"invocations": []}
        entry = {
            "mode": mode,
            "time": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": [sys.argv[0]] + list(argv),
            "cwd": os.getcwd(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": package_versions(),
            "devices": visible_devices(),
            "plugins": plugins,
        }
        entry.update(extra or {})
        record["invocations"].append(entry)
        write_text_atomic(path, json.dumps(record, indent=2, default=str))

    # -- the code snapshot ------------------------------------------------------------------------------------------

    def snapshot_code(self, code_root: str | os.PathLike, max_file_size: int = DEFAULT_MAX_FILE_SIZE,
                      exclude: Iterable[str] = (), logdir: str | os.PathLike | None = None) -> dict:
        """Copy the user's code into ``code/`` and return what was recorded about it (git state, file count).

        Inside git: every file git would track (tracked plus untracked-not-ignored) under ``code_root``, plus the
        commit, branch, dirty flag and ``git diff HEAD`` (``git.diff``). Outside git: the code and config files
        under ``code_root``. Never: the run folders, files over ``max_file_size`` bytes, secrets.
        """
        code_root = Path(code_root).resolve()
        if not code_root.exists():
            raise UsageError(f"code_root '{code_root}' does not exist; set code_root to your code folder or null.")
        skip_roots = [Path(logdir).resolve()] if logdir else []
        skip_roots.append(self.root.resolve())
        git = _git_info(code_root if code_root.is_dir() else code_root.parent)
        if git is not None:
            files = _git_files(code_root, git["toplevel"])
        elif code_root.is_file():
            files = [code_root]
        else:
            files = _walk_code(code_root)
        base = code_root if code_root.is_dir() else code_root.parent
        copied, skipped = 0, []
        patterns = SECRET_PATTERNS + ("__pycache__", "*.pyc") + tuple(exclude)
        for path in files:
            relative = path.relative_to(base)
            if any(_inside(path, root) for root in skip_roots) or _matches(relative, patterns):
                continue
            try:
                file_stat = path.stat()
            except OSError:
                continue
            size = file_stat.st_size
            if size > max_file_size:
                skipped.append(f"{relative} ({size} bytes)")
                continue
            target = self.code / base.name / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            # copyfile, not copy2: the copy gets the user's umask, never the source's (maybe world-writable) mode
            shutil.copyfile(path, target)
            os.utime(target, ns=(file_stat.st_atime_ns, file_stat.st_mtime_ns))
            copied += 1
        summary: dict = {"code_root": str(code_root), "files": copied, "skipped_large": skipped}
        if git is not None:
            diff = git.pop("diff")
            if diff:
                write_text_atomic(self.root / "git.diff", diff)
            summary["git"] = {k: v for k, v in git.items() if k != "toplevel"}
        if skipped:
            log.info("code snapshot left out %d large file(s): %s", len(skipped), ", ".join(skipped[:5]))
        return summary


@contextlib.contextmanager
def writing_run_folder(root: Path) -> Any:
    """Report an OSError while writing the run folder (disk full, file too large, no permission) as one paragraph;
    what was written before stays as it is."""
    try:
        yield
    except OSError as err:
        target = f" while writing '{err.filename}'" if err.filename else ""
        raise RunFolderError(
            f"cannot write the run folder '{root}'{target}: {err.strerror or err}. Free space or choose another "
            f"logdir; nothing already written was removed."
        ) from err


def new_folder(logdir: str | os.PathLike, name: str, now: datetime.datetime | None = None) -> Path:
    """Create ``logdir/<timestamp>_<name>``; two folders made in the same second get distinct names."""
    now = now or datetime.datetime.now()
    base = f"{now.strftime(TIMESTAMP_FORMAT)}_{_safe_name(name)}"
    try:
        Path(logdir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EdflowError(f"cannot create the log folder '{logdir}': {err.strerror or err}.") from err
    for attempt in range(1000):
        root = Path(logdir) / (base if attempt == 0 else f"{base}_{attempt + 1}")
        try:
            root.mkdir()  # atomic: fails if another run took this name first
            return root
        except FileExistsError:
            continue
        except OSError as err:
            raise EdflowError(f"cannot create the run folder '{root}': {err.strerror or err}.") from err
    raise EdflowError(f"cannot find a free run folder name for '{base}' in '{logdir}'.")


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file so that readers see the old or the new content, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)


def package_versions() -> dict[str, str]:
    """Versions of edcore, the backends and the frameworks, read from metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("edcore", "edflow-torch", "edflow-tf", "torch", "tensorflow", "tensorflow-cpu", "numpy", "pluggy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def visible_devices() -> dict[str, str]:
    """The accelerators this process was allowed to use (nothing is imported; the frameworks read the same)."""
    return {name: os.environ[name] for name in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "TPU_VISIBLE_CHIPS")
            if name in os.environ}


def git_state(folder: Path) -> dict | None:
    """Commit, branch and dirty flag of the git checkout holding ``folder`` (None outside git)."""
    info = _git_info(folder)
    return None if info is None else {key: info[key] for key in ("commit", "branch", "dirty")}


def default_code_root(config: dict) -> str | None:
    """``code_root`` from the config, else the folder of the iterator's top-level package (or its module file)."""
    if "code_root" in config:
        return config["code_root"]
    iterator = config.get("iterator")
    if not isinstance(iterator, str):
        return None
    top = iterator.split(":")[0].split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:  # a package; a namespace package (no __init__.py) has no origin
        return list(spec.submodule_search_locations)[0]
    if spec.origin in (None, "built-in", "frozen"):
        return None
    return spec.origin


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".")
    return cleaned or "run"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def _matches(relative: Path, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in patterns) or any(
        fnmatch.fnmatch(str(relative), pattern) for pattern in patterns
    )


def _walk_code(root: Path) -> list[Path]:
    files = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        for filename in sorted(filenames):
            if filename.endswith(CODE_SUFFIXES):
                files.append(Path(folder) / filename)
    return files


def _run_git(args: list[str], cwd: Path) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _git_info(folder: Path) -> dict | None:
    toplevel = _run_git(["rev-parse", "--show-toplevel"], folder)
    if toplevel is None:
        return None
    info: dict[str, Any] = {"toplevel": toplevel.strip()}
    commit = _run_git(["rev-parse", "HEAD"], folder)
    info["commit"] = commit.strip() if commit else None
    branch = _run_git(["rev-parse", "--abbrev-ref", "HEAD"], folder)
    info["branch"] = branch.strip() if branch else None
    status = _run_git(["status", "--porcelain"], folder)
    info["dirty"] = bool(status.strip()) if status is not None else None
    info["diff"] = _run_git(["diff", "HEAD"], folder) if commit else None
    return info


def _git_files(code_root: Path, toplevel: str) -> list[Path]:
    folder = code_root if code_root.is_dir() else code_root.parent
    listing = _run_git(["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", str(code_root)], folder)
    if listing is None:
        return _walk_code(code_root) if code_root.is_dir() else [code_root]
    files = []
    for relative in sorted(set(filter(None, listing.split("\0")))):
        path = folder / relative
        if path.is_file():  # deleted-but-tracked files are listed too
            files.append(path)
    return files
