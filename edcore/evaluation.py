"""Evaluation processes: restore the checkpoints of a run in order, run the eval ops over the evaluation data, store
the outputs and the callbacks' metrics, and record what is done, so no checkpoint is evaluated twice or skipped.

An evaluation is named (``-n``, else the eval config's file name) and has one folder ``eval/<timestamp>_<name>/``
per run, reused when the same evaluation is started again::

    eval/<timestamp>_<name>/
        config.yaml         the effective eval config
        log.txt             this process's log
        metrics.jsonl       one line per evaluated checkpoint: the record of what is done
        <global_step>/      outputs of that checkpoint (edcore.outputs) and metrics.json

Next to a training (``edflow -t train.yaml -e eval.yaml``) each evaluation is a child process that follows the
checkpoints (see :func:`start_followers`); on a finished run (``edflow -e eval.yaml -p RUN``) it evaluates the
latest checkpoint, every one not yet done (``--all``) or exactly one (``-c``).
"""
from __future__ import annotations

import datetime
import fcntl
import json
import logging
import math
import os
import select
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

from edcore.checkpoint import (
    EVALUATORS_DIR,
    Checkpoint,
    CheckpointStore,
    read_evaluator,
    register_evaluator,
    step_dirname,
)
from edcore.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    CheckpointError,
    EdflowError,
    UsageError,
    UserCodeError,
    describe_exception,
    format_user_traceback,
)
from edcore.hookspecs import hookimpl
from edcore.iterator import Iterator
from edcore.outputs import METRICS, OutputWriter, load_outputs, write_json
from edcore.plugins import PluginInfo, call_hook
from edcore.process import Checkpointer, Runtime, SignalHandler, make_progress, provide
from edcore.runlog import log_to_file, setup_logging

log = logging.getLogger("edflow")

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"
#: How often a follower looks for new checkpoints while it waits (seconds).
POLL_SECONDS = 0.5
#: How long a starting evaluator waits for a previous process of the same evaluation to release it (seconds).
LOCK_WAIT_SECONDS = 10.0


def evaluation_name(path: str, name: str | None = None) -> str:
    """The name of an evaluation: ``-n`` (evaluations of a finished run only), else the eval config's file name.
    ``experiment_name`` is not used because -b bases usually set it for the training."""
    from edcore.project import _safe_name

    return _safe_name(name or Path(path).stem)


def check_names(paths: list[str], name: str | None = None) -> None:
    """Two ``-e`` configs of one invocation must not share a name (they would share one record)."""
    seen: dict[str, str] = {}
    for path in paths:
        evaluation = evaluation_name(path, name)
        if evaluation in seen:
            raise UsageError(f"-e {seen[evaluation]} and -e {path} are both named '{evaluation}' (evaluations are named "
                             f"after their file); rename one of the files.")
        seen[evaluation] = path


def load_eval_config_of_run(project: Any, bases: list, path: str) -> Any:
    """The config to evaluate the run ``project`` with: the ``-b`` bases, then the run's effective training config
    (so the model is built as it was trained, with the training's overrides), then the eval file; every value keeps
    its origin. A run without a saved training config is evaluated with the bases and the eval file only."""
    from edcore import config as configs

    result = configs.load_configs(bases)
    saved = project.latest_config("train")
    if saved is not None:
        result = configs.merge(result, configs.load_saved(saved))
    return configs.merge(result, configs.load_file(path))


# ---------------------------------------------------------------------------------------------------------------
# The record of what one evaluation has done


class EvaluationRecord:
    """What one named evaluation of a run has done.

    The evaluation folder's ``metrics.jsonl`` is the record: its line for a checkpoint is appended (and fsynced)
    only once the outputs and metrics of that checkpoint are complete, so a killed evaluator redoes at most the
    checkpoint it was in and never one it finished. The registration ``train/checkpoints/.evaluators/<name>.json``
    mirrors it for checkpoint retention (``ckpt_keep`` keeps what an unfinished evaluator still needs) and points
    to the evaluation folder; a lock file next to it keeps two processes from running the same evaluation.
    """

    def __init__(self, project: Any, name: str) -> None:
        self.project = project
        self.name = name
        self.directory = project.checkpoints
        self.eval_dir: Path | None = None
        self.done: set[int] = set()
        self._lock_file: Any = None

    def folder(self) -> Path | None:
        """The evaluation folder recorded for this evaluation, if it still exists."""
        state = read_evaluator(self.directory, self.name) or {}
        recorded = state.get("eval_dir")
        folder = self.project.root / recorded if recorded else None
        return folder if folder is not None and folder.is_dir() else None

    def open(self, now: datetime.datetime) -> Path:
        """Reuse the evaluation folder of an earlier process of this evaluation, or create one."""
        self.eval_dir = self.folder() or self.project.new_eval_dir(self.name, now)
        self.done = set(read_metrics(self.eval_dir / METRICS_FILE))
        return self.eval_dir

    def lock(self) -> None:
        """Hold this evaluation's lock for the life of this process (released by the kernel when it ends)."""
        folder = self.directory / EVALUATORS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        stream = open(folder / f"{self.name}.lock", "a")
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    stream.close()
                    pid = (read_evaluator(self.directory, self.name) or {}).get("pid", "?")
                    raise UsageError(f"evaluation '{self.name}' of run '{self.project.root}' is already running "
                                     f"(process {pid}); wait for it to end or stop it first.") from None
                time.sleep(0.2)
        self._lock_file = stream

    def register(self, finished: bool, start_step: int = 0, **details: Any) -> None:
        folder = {}
        if self.eval_dir is not None:
            relative = self.eval_dir.relative_to(self.project.root)
            folder = {"eval_dir": str(relative), "log": str(relative / "log.txt")}
        register_evaluator(self.directory, self.name, self.done, finished, start_step, {**folder, **details})

    def commit(self, checkpoint: Checkpoint, metrics: Mapping, num_examples: int) -> None:
        """Mark ``checkpoint`` as done: append its line to ``metrics.jsonl`` (durably), then update the registration."""
        assert self.eval_dir is not None
        record = {"global_step": checkpoint.step, "time": round(time.time(), 3), "num_examples": num_examples}
        record.update({k: v if math.isfinite(v) else str(v) for k, v in metrics.items()})
        with open(self.eval_dir / METRICS_FILE, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        self.done.add(checkpoint.step)
        self.register(finished=False)


def read_metrics(path: Path) -> dict[int, dict]:
    """The lines of an evaluation's ``metrics.jsonl`` by global step (the last line of a step wins); a torn last
    line (a process killed while writing it) is ignored."""
    records: dict[int, dict] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
            records[int(record["global_step"])] = record
        except (ValueError, KeyError, TypeError):
            continue
    return records


# ---------------------------------------------------------------------------------------------------------------
# One evaluation process


class OutputCollector:
    """Feeds what the eval op returns at each step to the current :class:`edcore.outputs.OutputWriter`."""

    def __init__(self) -> None:
        self.writer: OutputWriter | None = None

    @hookimpl
    def edflow_after_step(self, results):
        if self.writer is not None and isinstance(results, Mapping):
            self.writer.add(results.get("eval_op"))


def run_evaluations(project: Any, eval_configs: list, manager: Any, explicit: Checkpoint | None, args: Any,
                    argv: list[str], now: datetime.datetime) -> int:
    """Run each evaluation config in this process, one after the other; return the exit code."""
    collector = OutputCollector()
    manager.register_plugin(collector, PluginInfo("core.eval_outputs", "built-in"))
    code = EXIT_OK
    for path, config in eval_configs:
        evaluation = Evaluation(project, config, evaluation_name(path, args.name), manager, collector,
                                debug=args.debug, position=args.progress_position)
        evaluation.source = " ".join([f"-b {base}" for base in args.base] + [f"-e {path}"])
        code = max(code, evaluation.run(explicit, args.follow_fd, argv, now))
        if code >= EXIT_SIGNAL_BASE:
            break
    return code


class Evaluation:
    """One evaluation config applied to the checkpoints of one run."""

    def __init__(self, project: Any, config: Any, name: str, manager: Any, collector: OutputCollector,
                 debug: bool = False, position: int = 0) -> None:
        self.project = project
        self.config = config
        self.data = config.data
        self.name = name
        self.manager = manager
        self.collector = collector
        self.debug = debug
        self.position = position
        self.record = EvaluationRecord(project, name)
        self.store = CheckpointStore(project.checkpoints)
        self.progress: Any = None
        self.tensorboard: Any = None
        self.evaluated_here = 0
        self.source = "-e <eval config>"  # the -b and -e files, named when an interrupted evaluation says how to continue

    def run(self, explicit: Checkpoint | None, follow_fd: int | None, argv: list[str], now: datetime.datetime) -> int:
        """Evaluate: follow the training (``follow_fd``), ``explicit``, every new checkpoint or the latest."""
        record = self.record
        record.lock()
        eval_dir = record.open(now)
        setup_logging(eval_dir / "log.txt", self.debug, f"eval {self.name}")
        for warning in getattr(self.config, "warnings", []):
            log.warning(warning)
        from edcore.config import dump
        from edcore.plugins import plugin_table
        from edcore.project import write_text_atomic

        self.project.write_config("eval", self.config, now)
        write_text_atomic(eval_dir / CONFIG_FILE, dump(self.data))
        self.project.record_invocation(argv, "eval", plugin_table(self.manager),
                                       {"evaluation": str(eval_dir.relative_to(self.project.root))})
        record.register(finished=False, start_step=explicit.step if explicit else 0)
        self.runtime = Runtime(self.manager, "eval", self.data)
        self.runtime.evaluation = self.name  # plugins find it as iterator.runtime.evaluation
        signals = SignalHandler(self.runtime, on_stop="stopping after the current batch; this checkpoint is "
                                                      "evaluated again when the evaluation continues",
                                announce=follow_fd is None)  # a follower's signals come from the training
        signals.install()
        batches = None
        try:
            batches = self._setup(eval_dir)
            if follow_fd is not None:
                log.info("evaluation '%s' follows the checkpoints of %s; outputs in %s", self.name, self.project.root,
                         eval_dir)
                complete = self._follow(follow_fd)
            else:
                for checkpoint in self._select(explicit):
                    if not self._evaluate(checkpoint):
                        break
                complete = not self.runtime.stop_signal
        except BaseException as err:
            reported = err if isinstance(err, (EdflowError, KeyboardInterrupt, SystemExit)) else UserCodeError(
                f"evaluation '{self.name}' failed: {describe_exception(err)}\n{format_user_traceback(err)}")
            record.register(finished=False, error=str(reported).split("\n")[0] or type(err).__name__)
            # into log.txt only: the console gets it from the command's error report
            log_to_file(logging.ERROR, f"evaluation '{self.name}' failed: {reported}")
            if reported is err:
                raise
            raise reported from err
        finally:
            signals.restore()
            self.collector.writer = None
            if self.progress is not None:
                self.progress.close()
            if self.tensorboard is not None:
                from edcore import tensorboard

                tensorboard.release(self.tensorboard)
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        if self.runtime.stop_signal:
            record.register(finished=False)
            log.warning("evaluation '%s' interrupted; continue it with: edflow %s -p %s --all",
                        self.name, self.source, self.project.root)
            return EXIT_SIGNAL_BASE + self.runtime.stop_signal
        record.register(finished=complete)
        log.info("evaluation '%s' done: %d checkpoint(s) evaluated now, %d in all, in %s", self.name,
                 self.evaluated_here, len(record.done), eval_dir)
        return EXIT_OK

    def _setup(self, eval_dir: Path) -> Any:
        """The seed's order for an evaluation process: dataset, batches, model, iterator; then callbacks."""
        from edcore.builtin import tensorboard as builtin_tensorboard
        from edcore.callbacks import resolve_callbacks

        data, manager = self.data, self.manager
        call_hook(manager, "edflow_project_init", project=self.project, config=data, mode="eval")
        call_hook(manager, "edflow_seed", seed=int(data["seed"]), config=data)
        dataset = provide(manager, "edflow_dataset", "dataset", config=data, mode="eval")
        if self.debug:
            from edcore.batching import LimitedDataset

            dataset = LimitedDataset(dataset, data.get("debug", {}).get("max_examples", 5 * data["batch_size"]))
        self.dataset = dataset
        batches = provide(manager, "edflow_batches", "batches", dataset=dataset, config=data, mode="eval")
        self.batches = batches
        model = provide(manager, "edflow_model", "model", config=data)
        iterator = provide(manager, "edflow_iterator", "iterator", config=data, root=str(eval_dir), model=model,
                           project=self.project)
        if not isinstance(iterator, Iterator):
            raise UserCodeError(f"the iterator provided is a {type(iterator).__name__}, not an edcore.Iterator.")
        iterator.runtime = self.runtime
        self.iterator = iterator
        self.checkpointer = Checkpointer(self.store, manager, iterator, self.project, self.config, enabled=False)
        self.callbacks = resolve_callbacks(data.get("eval_callbacks") or {},
                                           lambda name: self.config.where(("eval_callbacks", name)))
        self.tensorboard_dir = None
        if builtin_tensorboard.enabled(data):
            from edcore import tensorboard

            if not tensorboard.available():
                builtin_tensorboard.raise_missing()
            self.tensorboard_dir = builtin_tensorboard.eval_logdir(self.project, self.name)
        return batches

    def _select(self, explicit: Checkpoint | None) -> list[Checkpoint]:
        """``-c``: exactly that checkpoint; ``eval_all``: every one not yet evaluated; else the latest."""
        if explicit is not None:
            if explicit.step in self.record.done:
                log.info("checkpoint %d was evaluated before; -c evaluates it again", explicit.step)
            return [explicit]
        published = self.store.published()
        if not published:
            raise UsageError(f"run '{self.project.root}' has no checkpoint to evaluate yet "
                             f"({self.store.directory} holds no complete checkpoint).")
        if self.data.get("eval_all"):
            todo = [c for c in published if c.step not in self.record.done]
            if not todo:
                log.info("every checkpoint of %s is evaluated already (%s)", self.project.root, self.record.eval_dir)
            return todo
        latest = published[-1]
        if latest.step in self.record.done:
            log.info("the latest checkpoint (global step %d) is evaluated already, see %s; --all evaluates the "
                     "others, -c CKPT one of them again", latest.step, self.record.eval_dir)
            return []
        return [latest]

    def _follow(self, fd: int) -> bool:
        """Evaluate every published checkpoint in order, waiting for new ones, until the training has ended (the
        pipe ``fd`` reached end-of-file) and none is left; ``False`` when a signal stopped it first."""
        ended = False
        vanished: set[int] = set()
        while not self.runtime.stop_signal:
            ended = ended or _end_of_file(fd, 0)  # read before listing: a checkpoint published before the end is seen
            todo = [c for c in self.store.published() if c.step not in self.record.done and c.step not in vanished]
            if todo:
                checkpoint = todo[0]
                try:
                    self._evaluate(checkpoint)
                except CheckpointError:
                    if self.store.get(checkpoint.step) is not None:
                        raise
                    vanished.add(checkpoint.step)
                    log.warning("checkpoint %d was deleted before it could be evaluated (outside edflow?)",
                                checkpoint.step)
                continue
            if ended:
                return True
            ended = _end_of_file(fd, POLL_SECONDS)
        return False

    def _evaluate(self, checkpoint: Checkpoint) -> bool:
        """One pass over the evaluation data with ``checkpoint``; ``False`` when a signal interrupted it."""
        step = checkpoint.step
        step_dir = self.record.eval_dir / step_dirname(step)
        if step_dir.exists():  # left by a pass that did not complete, or -c evaluating a step again
            shutil.rmtree(step_dir)
        self.checkpointer.load(checkpoint)
        step_dir.mkdir(parents=True)
        iterator, runtime = self.iterator, self.runtime
        call_hook(self.manager, "edflow_before_evaluation", iterator=iterator, global_step=step, eval_dir=str(step_dir))
        self._show_progress(step)
        self.collector.writer = writer = OutputWriter(step_dir)
        try:
            iterator.iterate(self.batches)
        finally:
            self.collector.writer = None
        if runtime.stop_signal:
            return False
        writer.close({"global_step": step, "checkpoint": str(checkpoint.path.relative_to(self.project.root)),
                      "evaluation": self.name})
        from edcore.callbacks import run_callbacks

        metrics = run_callbacks(self.callbacks, str(step_dir), self.dataset, load_outputs(step_dir), self.data)
        write_json(step_dir / METRICS, metrics)
        if metrics and runtime.log is not None:
            runtime.log(step, {"scalars": metrics})
        call_hook(self.manager, "edflow_after_evaluation", iterator=iterator, global_step=step,
                  eval_dir=str(step_dir), metrics=metrics)
        self.record.commit(checkpoint, metrics, writer.num_examples)
        if self.tensorboard_dir is not None and metrics:
            if self.tensorboard is None:  # made at the first metrics, so a process that evaluates nothing writes none
                from edcore import tensorboard

                self.tensorboard = tensorboard.acquire(self.tensorboard_dir)  # shared with core.media's images
            self.tensorboard.add_scalars(metrics, step)
            self.tensorboard.flush()
        self.evaluated_here += 1
        log.info("evaluated checkpoint %d: %d examples into %s", step, writer.num_examples, step_dir)
        return True

    def _show_progress(self, step: int) -> None:
        if not self.data.get("progress", True):
            return
        if self.progress is None:
            self.progress = make_progress(len(self.batches), 0, "", self.position, True)
        else:
            self.progress.reset(total=len(self.batches))
        self.progress.set_description(f"eval {self.name} @{step}", refresh=False)
        self.runtime.progress = self.progress


def _end_of_file(fd: int, timeout: float) -> bool:
    """Whether the pipe ``fd`` has reached end-of-file, waiting up to ``timeout`` seconds."""
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable) and os.read(fd, 4096) == b""


# ---------------------------------------------------------------------------------------------------------------
# Evaluation processes next to a training


class Followers:
    """The evaluation processes of ``edflow -t ... -e ...``, one per ``-e`` config, and how they end."""

    def __init__(self, project: Any, names: dict[str, str]) -> None:
        from edcore.supervisor import Supervisor

        self.project = project
        self.names = names  # label (the -e path) -> evaluation name
        self.supervisor = Supervisor(self.describe_failure)
        self.runtime: Any = None

    def describe_failure(self, child: Any) -> str:
        """Which config, the error and where its log is."""
        state = read_evaluator(self.project.checkpoints, self.names[child.label]) or {}
        error = state.get("error") or "see the messages above"
        where = f"; its log: {self.project.root / state['log']}" if state.get("log") else ""
        going_on = "" if self.supervisor.ended else "; training continues"
        return (f"evaluation process for -e {child.label} (pid {child.pid}) failed with exit code {child.returncode}: "
                f"{error}{where}{going_on}")

    def attach(self, runtime: Runtime, signals: SignalHandler) -> None:
        """Called by the training process: signals it receives are forwarded to the evaluators."""
        self.runtime = runtime
        signals.forward_to.extend(self.supervisor.pids)

    def finish(self, training_code: int | None) -> int:
        """The training has ended (``None``: it raised): let the evaluators finish the checkpoints that exist, wait
        for them, report failures; return the exit code of the whole invocation."""
        if self.runtime is not None and self.runtime.stop_signal:
            self.supervisor.stop_signal = self.runtime.stop_signal  # already forwarded by the training's handler
        elif training_code is None:
            log.info("waiting for the evaluation processes to finish the checkpoints that exist")
        failed = self.supervisor.wait()
        for child in failed:
            if not child.reported:
                log.error("%s", self.describe_failure(child))
        if training_code not in (None, EXIT_OK):
            return training_code
        if self.supervisor.stop_signal:  # a signal came while the evaluators finished after the training
            return EXIT_SIGNAL_BASE + self.supervisor.stop_signal
        return EXIT_FAILURE if failed else EXIT_OK


def start_followers(project: Any, eval_paths: list, bases: list, extras: list, args: Any) -> Followers:
    """Start one evaluation process per ``-e`` config; each is registered first, so checkpoint retention keeps
    everything it has not evaluated yet even before it has started."""
    names = {path: evaluation_name(path) for path in eval_paths}
    followers = Followers(project, names)
    for position, path in enumerate(eval_paths, start=1):
        record = EvaluationRecord(project, names[path])
        record.eval_dir = record.folder()
        if record.eval_dir is not None:
            record.done = set(read_metrics(record.eval_dir / METRICS_FILE))
        record.register(finished=False)
        argv = [arg for base in bases for arg in ("-b", base)]
        argv += ["-e", path, "-p", str(project.root), "--progress-position", str(position), *extras]
        if args.debug:
            argv.append("-d")
        child = followers.supervisor.start(path, argv)
        log.info("started evaluation process %d for -e %s", child.pid, path)
    return followers
