"""Test helpers for plugin authors (and edflow's own tests): run real trainings and record every hook call.

Load it with ``pytest -p edcore.testing`` (it is also registered through the ``pytest11`` entry point, so installing
edcore makes its fixtures available). Fixtures:

``edflow_project``
    An :class:`EdflowProject` in a temporary folder: write modules and configs into it, then ``run(...)`` the real
    ``edflow`` command in a subprocess (``run``) or in this process with extra plugins (``run_in_process``).

``hook_recorder``
    A :class:`HookRecorder` plugin: pass it to ``run_in_process(plugins=[recorder])`` and inspect
    ``recorder.calls`` (every hook call with a summary of its arguments) afterwards.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from edcore.hookspecs import hookimpl

#: A tiny dataset and iterator without any framework, for tests of the core and of plugins.
TOY_PACKAGE = {
    "toy/__init__.py": "",
    "toy/data.py": '''
        import numpy as np


        class Data:
            """n examples {"x": float32[3], "y": float} of a noisy linear function."""

            def __init__(self, config):
                n = config.get("toy_examples", 40)
                self.x = np.random.RandomState(0).randn(n, 3).astype("float32")
                self.y = self.x @ np.array([1.0, -2.0, 0.5], dtype="float32")

            def __len__(self):
                return len(self.x)

            def __getitem__(self, index):
                return {"x": self.x[index], "y": self.y[index], "index": index}
    ''',
    "toy/iterator.py": '''
        import os

        import numpy as np
        from edcore import TemplateIterator


        class Iterator(TemplateIterator):
            """Linear regression by gradient descent, in numpy."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.w = np.zeros(3)

            def step_op(self, model, x, y, index):
                def train_op():
                    self.w -= 0.1 * x.T @ (x @ self.w - y) / len(y)

                def log_op():
                    return {"scalars": {"loss": float(np.mean((x @ self.w - y) ** 2))}}

                def eval_op():
                    return {"prediction": x @ self.w}

                return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}

            def save(self, path):
                np.save(os.path.join(path, "w.npy"), self.w)

            def restore(self, path):
                self.w = np.load(os.path.join(path, "w.npy"))
    ''',
}

TOY_CONFIG = {
    "dataset": "toy.data.Data",
    "iterator": "toy.iterator.Iterator",
    "batch_size": 8,
    "num_steps": 10,
    "log_freq": 5,
    "seed": 1,
    "tensorboard": False,
}


@dataclass
class Outcome:
    """The result of one ``edflow`` invocation."""

    args: list
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    def __repr__(self) -> str:
        return (f"Outcome(code={self.returncode}, args={self.args}, cwd={self.cwd})\n--- stdout ---\n{self.stdout}"
                f"\n--- stderr ---\n{self.stderr}")

    def assert_success(self) -> "Outcome":
        assert self.returncode == 0, repr(self)
        return self

    def assert_failed(self, code: int | None = None) -> "Outcome":
        assert self.returncode != 0 if code is None else self.returncode == code, repr(self)
        return self

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class EdflowProject:
    """A folder holding a user project; runs the real ``edflow`` in it."""

    path: Path
    env: dict = field(default_factory=dict)

    def write(self, files: dict[str, str]) -> "EdflowProject":
        """Write ``{relative path: text}``; texts are dedented."""
        for relative, text in files.items():
            target = self.path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text).lstrip("\n"))
        return self

    def config(self, name: str = "train.yaml", **values: Any) -> Path:
        """Write a YAML config; ``values`` are merged over :data:`TOY_CONFIG` when ``toy`` is in the files."""
        target = self.path / name
        target.write_text(yaml.safe_dump(values, sort_keys=False))
        return target

    def toy(self, name: str = "train.yaml", drop: Iterable[str] = (), **overrides: Any) -> Path:
        """Write the toy package and a config for it: :data:`TOY_CONFIG` with ``overrides``, without ``drop``."""
        self.write(TOY_PACKAGE)
        values = {key: value for key, value in {**TOY_CONFIG, **overrides}.items() if key not in drop}
        return self.config(name, **values)

    def run(self, *args: str, timeout: float = 300, env: dict | None = None) -> Outcome:
        """Run ``edflow ARGS`` in a subprocess in this folder."""
        command = [sys.executable, "-m", "edcore", *map(str, args)]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **(env or {})}
        result = subprocess.run(command, cwd=self.path, capture_output=True, text=True, timeout=timeout, env=full_env)
        return Outcome(list(args), result.returncode, result.stdout, result.stderr, self.path)

    def start(self, *args: str, env: dict | None = None, log_name: str = "edflow") -> "subprocess.Popen":
        """Start ``edflow ARGS`` in a subprocess and return at once (for tests that signal or watch it); its output
        goes to ``<log_name>.stdout``/``.stderr`` in this folder, so a full pipe can never block it. It runs in a
        process group of its own, as a job a terminal starts, so a test can signal the group as Ctrl-C does."""
        command = [sys.executable, "-m", "edcore", *map(str, args)]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **(env or {})}
        with open(self.path / f"{log_name}.stdout", "w") as out, open(self.path / f"{log_name}.stderr", "w") as err:
            return subprocess.Popen(command, cwd=self.path, stdout=out, stderr=err, env=full_env,
                                    start_new_session=True)

    def output_of(self, log_name: str = "edflow") -> str:
        """What a process started with :meth:`start` has written so far (stdout, then stderr)."""
        return "".join((self.path / f"{log_name}.{kind}").read_text() for kind in ("stdout", "stderr")
                       if (self.path / f"{log_name}.{kind}").exists())

    def run_in_process(self, *args: str, plugins: Iterable[Any] = ()) -> int:
        """Run ``edflow ARGS`` in this process, with ``plugins`` registered after all others."""
        from edcore import cli, plugins as plugin_module

        with _chdir(self.path), plugin_module.extra_plugins([(f"test-{i}", p) for i, p in enumerate(plugins)]):
            return cli.main([str(a) for a in args])

    def runs(self, logdir: str = "logs") -> list[Path]:
        """The run folders under ``logdir``, oldest first."""
        folder = self.path / logdir
        return sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "debug") if folder.is_dir() else []

    def metrics(self, run: Path) -> list[dict]:
        path = run / "train" / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def processes_with_env(name: str, value: str) -> set[int]:
    """PIDs of running processes whose environment has ``name=value`` (Linux ``/proc``): a test sets a unique
    value for the ``edflow`` it starts and so finds every descendant, DataLoader workers included. Zombies have no
    environment any more; check the PIDs found while running with :func:`process_exists` afterwards."""
    wanted = f"{name}={value}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.add(int(entry.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is still in the process table, as a running process or as a zombie nobody waited for."""
    return Path(f"/proc/{pid}").exists()


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _summary(value: Any) -> Any:
    """A small, comparable summary of a hook argument."""
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return sorted(map(str, value))
    return type(value).__name__


class HookRecorder:
    """Records every hook call: ``calls`` is a list of ``(hook name, {argument: summary})``.

    Per-step arguments are summarized (``feeds`` and ``batch`` by their keys); ``steps`` lists
    ``(hook, global_step)`` for the per-step hooks only.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def steps(self) -> list[tuple[str, int]]:
        return [(name, args["global_step"]) for name, args in self.calls
                if name in ("edflow_before_step", "edflow_after_step")]

    def _record(self, name: str, **kwargs: Any) -> None:
        self.calls.append((name, {key: _summary(value) for key, value in kwargs.items()}))


def _recording(hook_name: str, argnames: list[str]) -> Any:
    arguments = ", ".join(argnames)
    namespace: dict = {}
    exec(  # builds a method with the hook's exact signature; pluggy matches implementations by argument names
        f"def {hook_name}(self, {arguments}):\n    self._record({hook_name!r}, "
        + ", ".join(f"{a}={a}" for a in argnames) + ")\n",
        namespace,
    )
    return hookimpl(namespace[hook_name])


def _install_recorders() -> None:
    from edcore import hookspecs

    for name in dir(hookspecs):
        if name.startswith("edflow_") and name not in ("edflow_dataset", "edflow_model", "edflow_iterator",
                                                        "edflow_batches", "edflow_distributed",
                                                        "edflow_config_schema"):
            spec = getattr(hookspecs, name)
            import inspect

            setattr(HookRecorder, name, _recording(name, list(inspect.signature(spec).parameters)))


_install_recorders()


# ---------------------------------------------------------------------------------------------------------------
# pytest fixtures

try:
    import pytest
except ImportError:  # edcore.testing is importable without pytest; the fixtures need it
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def edflow_project(tmp_path: Path) -> EdflowProject:
        """A user project in a temporary folder, with entry-point plugins as installed."""
        return EdflowProject(tmp_path)

    @pytest.fixture
    def hook_recorder() -> HookRecorder:
        return HookRecorder()
