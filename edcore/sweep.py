"""Sweeps: one training config trained many times with different values of some of its keys.

A sweep file names the training config, the parameters (config keypaths with a list of values, or a
distribution) and how to pick the trials (``method: grid|random|optuna``). ``edflow sweep SWEEP.yaml`` validates
every trial before it starts anything, creates ``<logdir>/sweeps/<time>_<name>/`` and trains each trial as an
ordinary run folder in its ``runs/``: ``edflow -t train.yaml --key=value ...``, the values recorded in the run's
configs with the sweep file's line as their origin. ``sweep.json`` (replaced atomically after every change) holds
each trial's parameters, run folder, status and metric, so ``edflow sweep -p SWEEP_DIR`` keeps the finished trials,
resumes the interrupted ones from their checkpoints (``edflow -p RUN``) and starts the missing ones.
"""
from __future__ import annotations

import datetime
import itertools
import json
import logging
import math
import os
import queue
import random
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from edcore.config import Config, Origin, Override, load_configs, load_file, parse_overrides
from edcore.errors import EXIT_FAILURE, EXIT_SIGNAL_BASE, ConfigError, EdflowError, UsageError

log = logging.getLogger("edflow")

#: The state of a sweep inside its folder, and the copy of the sweep file it was started with.
STATE_FILE = "sweep.json"
SWEEP_COPY = "sweep.yaml"
#: What a sweep file may leave out.
DEFAULTS = {"method": "grid", "mode": "min", "launcher": "local", "max_parallel": 1, "seed": 0}
#: A trial's status in sweep.json.
PENDING, RUNNING, FINISHED, INTERRUPTED, FAILED = "pending", "running", "finished", "interrupted", "failed"
#: The optional packages behind the launchers and methods, with the extra that installs them.
EXTRAS = {"ray": ("ray", "edcore[ray]"), "slurm": ("submitit", "edcore[slurm]"), "optuna": ("optuna", "edcore[optuna]")}


@dataclass
class Parameter:
    """One entry of ``parameters:``: the key as written (``+key`` adds a new key), its values or distribution."""

    key: str
    values: list | None
    distribution: dict | None
    where: str  # "sweep.yaml:5, key 'parameters/lr'"
    place: str  # "sweep.yaml:5"

    def token(self, value: Any) -> str:
        """The ``--key=value`` override of one value, typed back exactly as YAML reads it."""
        return f"--{self.key}={yaml_text(value)}"

    def override(self, value: Any) -> Override:
        return parse_overrides([self.token(value)])[0]


@dataclass
class SweepSpec:
    """A validated sweep file."""

    path: Path
    config: Config
    train: Path
    bases: list[Path]
    name: str
    parameters: list[Parameter]
    method: str
    trials: int | None
    seed: int
    metric: str | None
    mode: str
    launcher: str
    max_parallel: int

    def where(self, key: str) -> str:
        return self.config.where((key,))


def yaml_text(value: Any) -> str:
    """``value`` as the one-line YAML text that :func:`edcore.config.parse_scalar` reads back to the same value."""
    from edcore.config import parse_scalar

    text = yaml.safe_dump(value, default_flow_style=True, width=2**20).strip()
    text = text[:-len("\n...")].strip() if text.endswith("\n...") else text  # a scalar ends its document
    if isinstance(value, str) and parse_scalar(text) != value:
        return json.dumps(value)  # PyYAML leaves '1e-4' unquoted, which edflow reads as a float
    return text


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Load and validate a sweep file; every error names its file, line and key."""
    from edcore.schema import packaged_schema, report, schema_problems

    path = Path(path)
    config = load_file(path)
    report(schema_problems(config, packaged_schema("sweep.schema.json")), "sweep file")
    data = {**DEFAULTS, **config.data}
    parameters = []
    for key, spec in config.data["parameters"].items():
        where = config.where(("parameters", key))
        origin = config.origin(("parameters", key))
        place = str(origin) if origin else str(path)
        try:
            parse_overrides([f"--{key}", "0"])
        except UsageError as err:
            raise ConfigError(f"{where}: '{key}' is not a config keypath: {err}") from err
        if isinstance(spec, list):
            parameters.append(Parameter(key, spec, None, where, place))
        else:
            _check_distribution(spec, where)
            parameters.append(Parameter(key, None, spec, where, place))
    method = data["method"]
    if method == "grid":
        for parameter in parameters:
            if parameter.values is None:
                raise ConfigError(f"{parameter.where}: method 'grid' needs a list of values, found a distribution "
                                  f"('{parameter.distribution['distribution']}'); give the values as a list or use "
                                  f"method: random (or optuna) with trials: N.")
        if "trials" in config.data:
            raise ConfigError(f"{config.where(('trials',))}: method 'grid' trains every combination of the values; "
                              f"'trials' is for method random or optuna. Remove it or change the method.")
    elif "trials" not in config.data:
        raise ConfigError(f"{config.where(('method',))}: method '{method}' needs 'trials: N' (how many trials to "
                          f"draw) in {path}.")
    if method == "optuna" and not data.get("metric"):
        raise ConfigError(f"{config.where(('method',))}: method 'optuna' learns from the trials' metric; give "
                          f"'metric' (a logged scalar) and 'mode: min' or 'max'.")
    bases = data.get("base") or []
    bases = [bases] if isinstance(bases, str) else bases
    return SweepSpec(
        path=path, config=config, train=path.parent / data["train"], bases=[path.parent / base for base in bases],
        name=str(data.get("name") or path.stem), parameters=parameters, method=method, trials=data.get("trials"),
        seed=int(data["seed"]), metric=data.get("metric"), mode=data["mode"], launcher=data["launcher"],
        max_parallel=int(data["max_parallel"]),
    )


def _check_distribution(spec: dict, where: str) -> None:
    kind = spec["distribution"]
    if kind == "choice":
        if "values" not in spec:
            raise ConfigError(f"{where}: distribution 'choice' needs 'values: [...]'.")
        return
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: distribution '{kind}' needs 'low' and 'high'.")
    low, high = spec["low"], spec["high"]
    if not low < high:
        raise ConfigError(f"{where}: distribution '{kind}' needs low < high, found low {low} and high {high}.")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: distribution 'loguniform' needs low > 0, found {low}.")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"{where}: distribution 'int' needs integer bounds, found low {low} and high {high}.")


# ---------------------------------------------------------------------------------------------------------------
# The trials


def grid_trials(spec: SweepSpec) -> list[dict]:
    """Every combination of the values, the first parameter varying slowest (as nested loops in file order)."""
    keys = [parameter.key for parameter in spec.parameters]
    combinations = itertools.product(*(parameter.values for parameter in spec.parameters))
    return [dict(zip(keys, values)) for values in combinations]


def random_trials(spec: SweepSpec) -> list[dict]:
    """``trials`` draws from the sweep's own generator seeded by ``seed``: the same file gives the same trials."""
    generator = random.Random(spec.seed)
    return [{parameter.key: draw(generator, parameter) for parameter in spec.parameters}
            for _ in range(spec.trials or 0)]


def draw(generator: random.Random, parameter: Parameter) -> Any:
    """One value of a parameter: a list is drawn from uniformly, a distribution as it says."""
    if parameter.values is not None:
        return parameter.values[generator.randrange(len(parameter.values))]
    spec = parameter.distribution
    kind = spec["distribution"]
    if kind == "choice":
        return spec["values"][generator.randrange(len(spec["values"]))]
    if kind == "int":
        return generator.randint(int(spec["low"]), int(spec["high"]))
    if kind == "loguniform":
        return math.exp(generator.uniform(math.log(spec["low"]), math.log(spec["high"])))
    return generator.uniform(spec["low"], spec["high"])


def new_trial(index: int, spec: SweepSpec, parameters: dict) -> dict:
    """The sweep.json record of a trial that has not started."""
    by_key = {parameter.key: parameter for parameter in spec.parameters}
    return {"id": index, "parameters": parameters,
            "overrides": [by_key[key].token(value) for key, value in parameters.items()],
            "run": None, "status": PENDING, "metric": None, "returncode": None}


def sweep_origins(spec: SweepSpec) -> str:
    """The ``--sweep-origins`` argument of a trial: where in the sweep file each parameter was given."""
    return json.dumps({parameter.key.lstrip("+"): parameter.place for parameter in spec.parameters})


def record_sweep_origins(config: Config, text: str) -> None:
    """Relabel the overrides of a trial's parameters as ``sweep parameter at sweep.yaml:5`` (called by the CLI)."""
    from edcore.config import split_keypath

    for key, place in json.loads(text).items():
        keypath = split_keypath(key)
        if keypath not in config.origins:
            continue
        file, _, line = place.rpartition(":")
        config.origins[keypath] = (Origin(f"sweep parameter at {file}", int(line)) if line.isdigit()
                                   else Origin(file=f"sweep parameter at {place}"))


def base_config(spec: SweepSpec) -> Config:
    return load_configs([*spec.bases, spec.train])


def check_trials(spec: SweepSpec, trials: list[dict]) -> Config:
    """Validate every trial's config as ``edflow -t`` would, before anything starts; return the base config.

    An unknown keypath is refused by the override check of ``edflow -t`` (a key no config sets and no schema
    declares), reported at the parameter's line of the sweep file."""
    from edcore.config import apply_overrides
    from edcore.plugins import make_plugin_manager
    from edcore.schema import build_schema, check_override_keys, validate

    base = base_config(spec)
    manager = make_plugin_manager(disabled=list(base.get("disable_plugins") or []))
    for name in base.get("plugins") or []:
        from edcore.plugins import PluginInfo, instantiate
        from edcore.references import resolve

        manager.register_plugin(instantiate(resolve(name, where=base.where(("plugins",)), allow_module=True), name),
                                PluginInfo(name, "config"))
    schema = build_schema(manager.hook.edflow_config_schema())
    origins = sweep_origins(spec)
    for parameter in spec.parameters:
        sample = (parameter.values or parameter.distribution.get("values") or [parameter.distribution.get("low")])[0]
        try:
            check_override_keys([apply_overrides(base, [parameter.override(sample)])], schema)
        except ConfigError as err:
            sentence = str(err).split(" To add a new key on purpose", 1)[0]
            raise ConfigError(f"{parameter.where}: {sentence} To add a new key on purpose, write the parameter "
                              f"as '+{parameter.key}'.") from err
    for trial in trials:
        config = apply_overrides(base, parse_overrides(trial["overrides"]))
        record_sweep_origins(config, origins)
        try:
            validate(config, schema, "train")
        except ConfigError as err:
            raise ConfigError(f"trial {trial['id']} of {spec.path} ({describe_parameters(trial['parameters'])}): "
                              f"{err}") from err
    return base


def describe_parameters(parameters: dict) -> str:
    """``lr=0.1, model/width=32`` (a ``+key`` shown as the key it sets)."""
    return ", ".join(f"{key.lstrip('+')}={yaml_text(value)}" for key, value in parameters.items())


def check_extra(spec: SweepSpec) -> None:
    """The optional package a launcher or method needs, or a usage error naming the extra that installs it."""
    import importlib

    for what, key in ((spec.launcher, "launcher"), (spec.method, "method")):
        if what in EXTRAS:
            module, extra = EXTRAS[what]
            try:
                importlib.import_module(module)  # imported now anyway: a broken installation fails here too
            except ImportError as err:
                raise UsageError(f"{spec.where(key)}: {key} '{what}' needs the package '{module}', which is not "
                                 f"installed ({err}). Install the optional extra with pip install '{extra}', or "
                                 f"use {'launcher: local' if key == 'launcher' else 'method: random'}.") from err


# ---------------------------------------------------------------------------------------------------------------
# The sweep folder


def read_state(folder: Path) -> dict:
    path = folder / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"'{folder}' is not a sweep folder: it has no {STATE_FILE}. Give a folder that "
                         f"'edflow sweep SWEEP.yaml' created, like logs/sweeps/2026-01-01T12-00-00_name.") from None
    except ValueError as err:
        raise EdflowError(f"{path} cannot be read: {err}.") from err


def is_sweep_folder(path: Path) -> bool:
    return (path / STATE_FILE).is_file()


def write_state(folder: Path, state: dict) -> None:
    """Replace sweep.json atomically: a reader (``edflow runs``) sees the old or the new state, never a torn one."""
    from edcore.project import write_text_atomic

    write_text_atomic(folder / STATE_FILE, json.dumps(state, indent=2) + "\n")


def find_trial_run(folder: Path, trial: dict) -> Path | None:
    """The run folder that ``edflow -t ... -n trialNNN`` created in the sweep's ``runs/``."""
    found = sorted((folder / "runs").glob(f"*_{trial_name(trial)}"))
    return found[-1] if found else None


def trial_run(folder: Path, trial: dict) -> Path | None:
    """A trial's run folder: sweep.json records it relative to the sweep folder, so the folder can move."""
    return folder / trial["run"] if trial.get("run") else None


def trial_name(trial: dict) -> str:
    return f"trial{trial['id']:03d}"


def read_metric(run: Path, metric: str) -> float | None:
    """The last logged value of ``metric`` (``loss``, or ``eval/<name>/accuracy`` for one evaluation): training
    metrics first, then the evaluations'."""
    from edcore.commands.runinfo import metric_series

    for series in metric_series(run):
        if (series.metric == metric or f"{series.source}/{series.metric}" == metric) and series.values:
            return series.values[-1]
    return None


def logged_metrics(run: Path) -> list[str]:
    from edcore.commands.runinfo import metric_series

    return sorted({series.metric for series in metric_series(run)})


def sort_trials(trials: list[dict], mode: str) -> list[dict]:
    """Best first by the metric (``mode`` min or max); trials without a metric last, in id order."""
    sign = -1 if mode == "max" else 1
    return sorted(trials, key=lambda t: (t.get("metric") is None, sign * (t.get("metric") or 0), t["id"]))


# ---------------------------------------------------------------------------------------------------------------
# Launchers: how a trial's ``edflow`` process is started


class LocalLauncher:
    """Trials as child processes of this one (through :class:`edcore.supervisor.Supervisor`: each dies with the
    sweep, has its own session, and the sweep forwards its signals once)."""

    def __init__(self, on_exit: Callable[[str, int], None]) -> None:
        from edcore.supervisor import Supervisor

        self.supervisor = Supervisor(None, on_exit=lambda child: on_exit(child.label, child.returncode))

    def start(self, label: str, argv: list[str], output: Path, run_pattern: str = "") -> None:
        with open(output, "a", encoding="utf-8") as stream:  # the child holds its own copy of the descriptor
            self.supervisor.start(label, argv, follow=False, stdout=stream, stderr=stream,
                                  env={"PYTHONUNBUFFERED": "1"})

    def forward(self, signum: int) -> None:
        self.supervisor.forward(signum)

    def kill(self) -> None:
        self.supervisor.kill()

    def close(self) -> None:
        pass


def make_launcher(spec: SweepSpec, folder: Path, on_exit: Callable[[str, int], None]) -> Any:
    """The launcher the sweep file names: ``start(label, argv, output, run_pattern)`` (the glob of the trial's run
    folder, for a task that starts again), ``forward(signum)``, ``kill()``, ``close()``; each trial's exit code goes
    to ``on_exit(label, code)`` (from any thread)."""
    if spec.launcher == "local":
        return LocalLauncher(on_exit)
    from edcore import sweep_launchers

    return sweep_launchers.make(spec, folder, on_exit)


class OptunaAsker:
    """``method: optuna``: each new trial is asked from an Optuna study kept in ``SWEEP_DIR/optuna.db`` (SQLite), so
    ``-p`` continues the same study; finished trials are told their metric, failed ones their failure. The sampler
    is Optuna's default (TPE), seeded by the sweep's ``seed``."""

    def __init__(self, spec: SweepSpec, folder: Path, trials: list[dict]) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.spec = spec
        self.trials = trials
        self.study = optuna.create_study(
            study_name=spec.name, storage=f"sqlite:///{(folder / 'optuna.db').resolve()}", load_if_exists=True,
            direction="maximize" if spec.mode == "max" else "minimize",
            sampler=optuna.samplers.TPESampler(seed=spec.seed),
        )
        self.distributions = {parameter.key: optuna_distribution(parameter) for parameter in spec.parameters}

    def remaining(self) -> int:
        return (self.spec.trials or 0) - len(self.trials)

    def ask(self, index: int) -> dict:
        asked = self.study.ask(self.distributions)
        trial = new_trial(index, self.spec, {key: asked.params[key] for key in self.distributions})
        trial["optuna_number"] = asked.number
        return trial

    def tell(self, trial: dict) -> None:
        state = self.optuna.trial.TrialState
        if trial["status"] == FINISHED and trial.get("metric") is not None:
            self.study.tell(trial["optuna_number"], trial["metric"])
        elif trial["status"] == FAILED:
            self.study.tell(trial["optuna_number"], state=state.FAIL)
        # an interrupted trial stays running in the study: -p resumes it and tells its metric then


def optuna_distribution(parameter: Parameter) -> Any:
    """The Optuna distribution of a parameter: a list is categorical, a distribution maps to its own kind."""
    from optuna import distributions

    spec = parameter.distribution or {"distribution": "choice", "values": parameter.values}
    kind = spec["distribution"]
    if kind == "choice":
        for value in spec["values"]:
            if not (value is None or isinstance(value, (bool, int, float, str))):
                raise ConfigError(f"{parameter.where}: method 'optuna' takes values that are numbers, strings, "
                                  f"booleans or null, found {value!r}; use method grid or random for lists and "
                                  f"mappings.")
        return distributions.CategoricalDistribution(spec["values"])
    if kind == "int":
        return distributions.IntDistribution(int(spec["low"]), int(spec["high"]))
    return distributions.FloatDistribution(spec["low"], spec["high"], log=kind == "loguniform")


# ---------------------------------------------------------------------------------------------------------------
# Running


@dataclass
class Sweep:
    """A sweep folder and its state, run with a bounded number of trials at a time."""

    spec: SweepSpec
    folder: Path
    state: dict
    stop_signal: int = 0
    error: EdflowError | None = None
    events: queue.Queue = field(default_factory=queue.Queue)
    asker: Any = None  # method optuna: hands out new trials and learns from finished ones

    @property
    def trials(self) -> list[dict]:
        return self.state["trials"]

    def save(self) -> None:
        write_state(self.folder, self.state)

    def command(self, trial: dict) -> list[str]:
        """``edflow -p RUN`` for a trial with a run folder, else ``edflow -t train.yaml --key=value ...``."""
        run = trial_run(self.folder, trial)
        if run is not None and run.is_dir():
            return ["-p", str(run)]
        bases = [arg for base in self.spec.bases for arg in ("-b", str(base))]
        return [*bases, "-t", str(self.spec.train), "-n", trial_name(trial), *trial["overrides"],
                f"--logdir={self.folder / 'runs'}", "--sweep-origins", sweep_origins(self.spec)]

    def run(self) -> int:
        """Train the trials that are not finished; return the exit code (128+N when stopped by signal N)."""
        launcher = make_launcher(self.spec, self.folder, lambda label, code: self.events.put((label, code)))
        previous = {signum: signal.signal(signum, self._on_signal(launcher)) for signum in (signal.SIGINT,
                                                                                            signal.SIGTERM)}
        todo = [trial for trial in self.trials if trial["status"] != FINISHED]
        running: dict[str, dict] = {}
        try:
            while (todo or running or self._more_to_ask()) and not (self.stop_signal and not running):
                while not self.stop_signal and len(running) < self.spec.max_parallel:
                    trial = todo.pop(0) if todo else self._ask()
                    if trial is None:
                        break
                    self._start(launcher, trial)
                    running[str(trial["id"])] = trial
                if not running:
                    break
                try:
                    label, code = self.events.get(timeout=0.5)  # wakes up for signals; not a synchronisation
                except queue.Empty:
                    continue
                self._ended(running.pop(label), code, launcher)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            launcher.close()
        if self.error is not None:
            raise self.error
        if self.stop_signal:
            log.warning("sweep stopped by %s; continue it with: edflow sweep -p %s",
                        signal.Signals(self.stop_signal).name, self.folder)
            return EXIT_SIGNAL_BASE + self.stop_signal
        failed = [trial for trial in self.trials if trial["status"] == FAILED]
        interrupted = [trial for trial in self.trials if trial["status"] == INTERRUPTED]
        self._summary()
        if interrupted and not failed:
            log.warning("%d trials were interrupted; continue the sweep with: edflow sweep -p %s", len(interrupted),
                        self.folder)
        return EXIT_FAILURE if failed or interrupted else 0

    def _on_signal(self, launcher: Any) -> Callable[[int, Any], None]:
        def handle(signum: int, frame: Any) -> None:
            if self.stop_signal:
                log.warning("second signal (%s): killing the trials", signal.Signals(signum).name)
                launcher.kill()
                return
            self.stop_signal = signum
            log.warning("received %s: stopping the running trials (they write their interrupt checkpoints)",
                        signal.Signals(signum).name)
            launcher.forward(signum)

        return handle

    def _more_to_ask(self) -> bool:
        return self.asker is not None and self.asker.remaining() > 0

    def _ask(self) -> dict | None:
        if self.asker is None or self.asker.remaining() <= 0:
            return None
        trial = self.asker.ask(len(self.trials))
        self.trials.append(trial)
        self.save()
        return trial

    def _start(self, launcher: Any, trial: dict) -> None:
        argv = self.command(trial)
        resumed = argv[0] == "-p"
        trial["status"] = RUNNING
        self.save()
        (self.folder / "output").mkdir(exist_ok=True)
        launcher.start(str(trial["id"]), argv, self.folder / "output" / f"{trial_name(trial)}.txt",
                       str((self.folder / "runs").resolve() / f"*_{trial_name(trial)}"))
        verb = "resuming" if resumed else "starting"
        log.info("%s trial %d: %s", verb, trial["id"], describe_parameters(trial["parameters"]))

    def _ended(self, trial: dict, code: int, launcher: Any) -> None:
        run = find_trial_run(self.folder, trial)
        trial["run"] = str(run.relative_to(self.folder)) if run else trial.get("run")
        trial["returncode"] = code
        output = self.folder / "output" / f"{trial_name(trial)}.txt"
        if code == 0:
            trial["status"] = FINISHED
            trial["metric"] = read_metric(run, self.spec.metric) if run and self.spec.metric else None
            if self.spec.metric and trial["metric"] is None and self.error is None:
                logged = ", ".join(logged_metrics(run)) if run else ""
                self.error = ConfigError(
                    f"{self.spec.where('metric')}: trial {trial['id']} finished but never logged the metric "
                    f"'{self.spec.metric}' (its run {run} logged: {logged or 'no metrics'}); name a scalar that "
                    f"log_op returns, or eval/<evaluation>/<metric>. The other trials were stopped; fix the sweep "
                    f"file and start it again."
                )
                log.error("%s", self.error)
                if not self.stop_signal:
                    self.stop_signal = signal.SIGTERM
                    launcher.forward(signal.SIGTERM)
            value = "-" if trial["metric"] is None else f"{self.spec.metric} {trial['metric']:.6g}"
            log.info("trial %d finished: %s (run %s)", trial["id"], value, run)
        elif self.stop_signal and (code == EXIT_SIGNAL_BASE + self.stop_signal or _run_status(run) == INTERRUPTED):
            # the run's own status counts too: an engine's task may die with the signal before it can report
            trial["status"] = INTERRUPTED
            log.info("trial %d interrupted (run %s)", trial["id"], run)
        elif code > EXIT_SIGNAL_BASE and _run_status(run) == INTERRUPTED:
            # stopped from outside after its interrupt checkpoint (a scheduler's SIGTERM), not failed
            trial["status"] = INTERRUPTED
            log.warning("trial %d was stopped by %s from outside the sweep after writing its interrupt checkpoint "
                        "(run %s); edflow sweep -p %s continues it", trial["id"],
                        _signal_name(code - EXIT_SIGNAL_BASE), run, self.folder)
        else:
            trial["status"] = FAILED
            log.error("trial %d failed with exit code %d (%s); its output is in %s", trial["id"], code,
                      last_line(output), output)
        if self.asker is not None:
            self.asker.tell(trial)
        self.save()

    def _summary(self) -> None:
        best = [trial for trial in sort_trials(self.trials, self.spec.mode) if trial.get("metric") is not None]
        if best:
            log.info("best trial %d: %s %.6g (%s), run %s", best[0]["id"], self.spec.metric, best[0]["metric"],
                     describe_parameters(best[0]["parameters"]), trial_run(self.folder, best[0]))
        log.info("sweep done: %d trials in %s (edflow runs %s)", len(self.trials), self.folder, self.folder)


def last_line(path: Path) -> str:
    """The last line a trial printed (its error, when it failed)."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "no output"
    lines = [line for line in lines if line]
    return lines[-1] if lines else "no output"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _run_status(run: Path | None) -> str | None:
    from edcore.builtin.status import read_status

    return read_status(run).get("status") if run is not None else None


def create_folder(spec: SweepSpec, base: Config, now: datetime.datetime) -> Path:
    """``<logdir>/sweeps/<time>_<name>/`` with a copy of the sweep file; two sweeps never share a folder."""
    from edcore.project import new_folder

    from edcore.runlock import lock_sweep

    folder = new_folder(Path(base.get("logdir") or "logs") / "sweeps", spec.name, now)
    lock_sweep(folder)
    (folder / SWEEP_COPY).write_text(spec.path.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "runs").mkdir()
    return folder


def start(path: str | os.PathLike, debug: bool = False) -> int:
    """``edflow sweep SWEEP.yaml``: validate every trial, then create the sweep folder and train."""
    spec = load_spec(path)
    check_extra(spec)
    if spec.method == "grid":
        parameters = grid_trials(spec)
    elif spec.method == "random":
        parameters = random_trials(spec)
    else:
        parameters = []  # optuna asks for each trial when a slot is free
    trials = [new_trial(index, spec, values) for index, values in enumerate(parameters)]
    base = check_trials(spec, trials)
    if spec.method == "optuna":
        for parameter in spec.parameters:
            optuna_distribution(parameter)
    now = datetime.datetime.now()
    folder = create_folder(spec, base, now)
    state = {"version": 1, "sweep_file": str(spec.path.resolve()), "sweep": spec.config.data,
             "created": now.isoformat(timespec="seconds"), "trials": trials}
    return _run(spec, folder, state, debug)


def resume(folder: str | os.PathLike, debug: bool = False) -> int:
    """``edflow sweep -p SWEEP_DIR``: keep the finished trials, resume the interrupted ones, start the missing."""
    from edcore.runlock import lock_sweep

    folder = Path(folder)
    state = read_state(folder)
    lock_sweep(folder)  # before anything in the folder is written
    source = Path(state["sweep_file"])
    if not source.is_file():
        raise UsageError(f"the sweep file of '{folder}' ({source}) no longer exists; a sweep continues with the file "
                         f"it was started from (a copy is in {folder / SWEEP_COPY}).")
    spec = load_spec(source)
    if spec.config.data != state["sweep"]:
        changed = sorted(key for key in {*spec.config.data, *state["sweep"]}
                         if spec.config.data.get(key) != state["sweep"].get(key))
        raise UsageError(f"{source} has changed since the sweep in '{folder}' started (keys: {', '.join(changed)}); "
                         f"continuing it would mix two sweeps. Restore the file (the original is "
                         f"{folder / SWEEP_COPY}) or start a new sweep with 'edflow sweep {source}'.")
    check_extra(spec)
    base_config(spec)
    for trial in state["trials"]:
        if trial["status"] != FINISHED and not trial.get("run"):
            run = find_trial_run(folder, trial)  # a sweep killed before it could record the run folder
            trial["run"] = str(run.relative_to(folder)) if run else None
    return _run(spec, folder, state, debug)


def _run(spec: SweepSpec, folder: Path, state: dict, debug: bool) -> int:
    from edcore.runlog import setup_logging

    setup_logging(folder / "log.txt", debug, "sweep")
    sweep = Sweep(spec, folder, state)
    if spec.method == "optuna":
        sweep.asker = OptunaAsker(spec, folder, state["trials"])
    sweep.save()
    log.info("sweep %s: %d trials (%s), %d at a time with launcher %s", folder, spec.trials or len(state["trials"]),
             spec.method, spec.max_parallel, spec.launcher)
    return sweep.run()
