"""Test helpers for plugin authors (and edflow's own tests): run real trainings and record every hook call.

Load it with ``pytest -p edcore.testing`` (it is also registered through the ``pytest11`` entry point, so installing
edcore makes its fixtures available). Fixtures:

``edflow_project``
    An :class:`EdflowProject` in a temporary folder: write modules and configs into it, then ``run(...)`` the real
    ``edflow`` command in a subprocess (``run``) or in this process with extra plugins (``run_in_process``).

``hook_recorder``
    A :class:`HookRecorder` plugin: pass it to ``run_in_process(plugins=[recorder])`` and inspect
    ``recorder.calls`` (every hook call with a summary of its arguments) afterwards.

``edflow_train``
    Runs a tiny real training (the toy regression below, or your own files) in a temporary folder with the given
    plugins and config, and returns a :class:`Training`: the run folder, the exit code and a :class:`HookRecorder`
    holding every hook call with its arguments::

        def test_my_plugin_logs(edflow_train):
            training = edflow_train(plugins=[MyPlugin()], config={"num_steps": 4, "my_plugin": {"every": 2}})
            assert training.returncode == 0
            assert [args["global_step"] for args in training.calls.arguments("edflow_log")] == [1, 2, 4]
            assert (training.run / "train" / "my_plugin.txt").exists()
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import yaml

from edcore.hookspecs import hookimpl
from edcore.supervisor import edflow_command

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
    """A folder holding a user project; runs the real ``edflow`` in it (this interpreter's installed edcore, which
    the folder cannot shadow, or ``command``, e.g. the console script of an installation under test)."""

    path: Path
    env: dict = field(default_factory=dict)
    command: list | None = None

    def _command(self, args) -> list[str]:
        args = [str(arg) for arg in args]
        return edflow_command(args) if self.command is None else [*self.command, *args]

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

    def run(self, *args: str, timeout: float = 300, env: dict | None = None,
            preexec_fn: Callable[[], None] | None = None) -> Outcome:
        """Run ``edflow ARGS`` in a subprocess in this folder; ``preexec_fn`` runs in the child before edflow starts
        (set a umask or resource limits there)."""
        command = self._command(args)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **(env or {})}
        result = subprocess.run(command, cwd=self.path, capture_output=True, text=True, timeout=timeout, env=full_env,
                                preexec_fn=preexec_fn)
        return Outcome(list(args), result.returncode, result.stdout, result.stderr, self.path)

    def start(self, *args: str, env: dict | None = None) -> "RunningEdflow":
        """Start ``edflow ARGS`` in a subprocess of its own process group and return at once (for signal tests)."""
        command = self._command(args)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **(env or {})}
        # Output goes to files, not pipes: a test that waits for a signal must not block on a full pipe.
        stdout = open(self.path / f".edflow-{time.monotonic_ns()}.out", "w+", encoding="utf-8")
        stderr = open(stdout.name[:-4] + ".err", "w+", encoding="utf-8")
        process = subprocess.Popen(command, cwd=self.path, stdout=stdout, stderr=stderr, env=full_env,
                                   start_new_session=True)
        return RunningEdflow(list(args), process, stdout, stderr, self.path)

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
        """The records of ``run``'s ``train/metrics.jsonl``."""
        path = run / "train" / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def train(self, *args: str, plugins: Iterable[Any] = (), config: dict | None = None,
              files: dict[str, str] | None = None, drop: Iterable[str] = (), autoload: bool = True) -> "Training":
        """Train in this process: the toy project (or ``files`` plus ``config`` as the whole config) with
        ``plugins`` registered last and a :class:`HookRecorder` recording every hook call.

        ``config`` is merged over :data:`TOY_CONFIG` unless ``files`` are given; ``args`` are further ``edflow``
        arguments (``-n NAME``, ``--key value``). ``autoload=False`` leaves out the installed entry-point plugins.
        """
        if files is None:
            config_path = self.toy(drop=drop, **(config or {}))
        else:
            self.write(files)
            config_path = self.config("train.yaml", **(config or {}))
        recorder = HookRecorder(providers=True)
        before = set(self.runs())
        environment = {} if autoload else {"EDFLOW_DISABLE_PLUGIN_AUTOLOAD": "1"}
        with _environment(environment):
            code = self.run_in_process("-t", config_path.name, *args, plugins=[*plugins, recorder])
        created = [run for run in self.runs() if run not in before]
        return Training(run=created[-1] if created else None, returncode=code, calls=recorder, project=self)


@dataclass
class Training:
    """What :meth:`EdflowProject.train` (the ``edflow_train`` fixture) returns."""

    run: Path | None  # the new run folder (None when the run failed before creating it)
    returncode: int
    calls: "HookRecorder"  # every hook call, providers included
    project: EdflowProject

    def metrics(self) -> list[dict]:
        """The records of ``train/metrics.jsonl``."""
        return self.project.metrics(self.run) if self.run is not None else []


@contextlib.contextmanager
def _environment(values: dict) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class RunningEdflow:
    """An ``edflow`` started by :meth:`EdflowProject.start`: wait for files it writes, signal it, collect it."""

    args: list
    process: subprocess.Popen
    stdout_file: Any
    stderr_file: Any
    cwd: Path
    outcome: Outcome | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for_file(self, path: str | os.PathLike, timeout: float = 120) -> Path:
        """Wait until ``path`` exists; fail with the output so far if the process ends or time runs out."""
        target = Path(path)
        deadline = time.monotonic() + timeout
        while not target.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                outcome = self.wait(timeout=30)
                raise AssertionError(f"'{target}' never appeared\n{outcome!r}")
            time.sleep(0.02)
        return target

    def send(self, signum: int, group: bool = False) -> None:
        """Send ``signum`` to the main process only (as a scheduler does) or to its process group (a terminal)."""
        if group:
            os.killpg(self.process.pid, signum)
        else:
            os.kill(self.process.pid, signum)

    def poll(self) -> int | None:
        """The exit code, or ``None`` while it runs."""
        return self.process.poll()

    def kill(self) -> None:
        """SIGKILL to the main process only (its children are left to die with it)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def output(self) -> str:
        """What it has written so far (stdout, then stderr); after :meth:`wait`, all of it."""
        if self.outcome is not None:
            return self.outcome.output
        return "".join(Path(f.name).read_text(encoding="utf-8") for f in (self.stdout_file, self.stderr_file))

    def wait(self, timeout: float = 120) -> Outcome:
        """Wait for the exit (killing the process group after ``timeout``) and return the outcome."""
        if self.outcome is not None:
            return self.outcome
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise
        finally:
            self.stdout_file.seek(0)
            self.stderr_file.seek(0)
        outcome = self.outcome = Outcome(self.args, returncode, self.stdout_file.read(), self.stderr_file.read(),
                                         self.cwd)
        self.stdout_file.close()
        self.stderr_file.close()
        return outcome


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
    """Records every hook call: ``calls`` is a list of ``(hook name, {argument: summary})``, ``arguments(hook)``
    gives the arguments themselves.

    Summaries are small and comparable (``feeds`` and ``batch`` by their keys); the recorded arguments keep the
    values, with their dicts and lists copied at the time of the call (leaves such as arrays are not copied), so a
    later change by another plugin does not show. ``steps`` lists ``(hook, global_step)`` for the per-step hooks.

    With ``providers=True`` the provider hooks (dataset, batches, model, iterator, distributed, config schema) are
    recorded too; the recorder answers ``None`` there, so the real providers still provide.
    """

    def __init__(self, providers: bool = False) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.values: list[tuple[str, dict]] = []
        if providers:
            import types

            for name in PROVIDER_HOOKS:
                setattr(self, name, types.MethodType(_recording(name, _argnames(name)), self))

    def arguments(self, hook_name: str) -> list[dict]:
        """The arguments of every call of ``hook_name``, in call order."""
        return [args for name, args in self.values if name == hook_name]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def steps(self) -> list[tuple[str, int]]:
        return [(name, args["global_step"]) for name, args in self.calls
                if name in ("edflow_before_step", "edflow_after_step")]

    def _record(self, name: str, **kwargs: Any) -> None:
        from edcore.iterator import copy_structure

        self.calls.append((name, {key: _summary(value) for key, value in kwargs.items()}))
        self.values.append((name, {key: copy_structure(value) for key, value in kwargs.items()}))


def _recording(hook_name: str, argnames: list[str]) -> Any:
    arguments = ", ".join(argnames)
    namespace: dict = {}
    exec(  # builds a method with the hook's exact signature; pluggy matches implementations by argument names
        f"def {hook_name}(self, {arguments}):\n    self._record({hook_name!r}, "
        + ", ".join(f"{a}={a}" for a in argnames) + ")\n",
        namespace,
    )
    return hookimpl(namespace[hook_name])


#: Hooks that answer with a value; recorded only by ``HookRecorder(providers=True)``.
PROVIDER_HOOKS = ("edflow_config_schema", "edflow_distributed", "edflow_dataset", "edflow_batches", "edflow_model",
                  "edflow_iterator")


def _argnames(hook_name: str) -> list[str]:
    import inspect

    from edcore import hookspecs

    return list(inspect.signature(getattr(hookspecs, hook_name)).parameters)


def _install_recorders() -> None:
    from edcore import hookspecs

    for name in dir(hookspecs):
        if name.startswith("edflow_") and name not in PROVIDER_HOOKS:
            setattr(HookRecorder, name, _recording(name, _argnames(name)))


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
        """A plugin that records every hook call (pass it in ``plugins=``)."""
        return HookRecorder()

    @pytest.fixture
    def edflow_train(edflow_project: EdflowProject) -> Any:
        """``edflow_train(plugins=[...], config={...})``: a tiny real training in a temporary folder; returns a
        :class:`Training` (run folder, exit code, every hook call with its arguments)."""
        return edflow_project.train
