"""The training process, as the seed describes it: logger, dataset, batches, model, iterator, restore, iterate."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import sys
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

from edcore.checkpoint import Checkpoint, CheckpointStore
from edcore.config import Config, dump
from edcore.errors import (
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    CheckpointError,
    EdflowError,
    PluginError,
    UserCodeError,
    describe_exception,
    format_user_traceback,
)
from edcore.iterator import Iterator
from edcore.plugins import PluginManager, bind_step_hook, call_hook
from edcore.runlog import log_to_file

log = logging.getLogger("edflow")

CORE_STATE_FILE = "edcore.json"
HANDLED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


# ---------------------------------------------------------------------------------------------------------------
# Signals


_received_signal = 0


def stop_requested() -> int:
    """The stop signal this process has received (0: none); backends use it to tell an interrupt from a crash."""
    return _received_signal


class SignalHandler:
    """SIGINT/SIGTERM/SIGUSR1 become a flag the loop checks between steps; a second signal aborts at once.

    The last published checkpoint stays intact on abort because checkpoints are published atomically. With
    ``announce=False`` (an evaluation process started next to a training, which forwards its signals) the first
    signal is noted in the process's log file only: the training has told the console already, once per signal.
    """

    def __init__(self, runtime: "Runtime",
                 on_stop: str = "finishing the current step, then writing a checkpoint", announce: bool = True) -> None:
        self.runtime = runtime
        self.on_stop = on_stop  # what the process does on the first signal, for the warning
        self.announce = announce
        self.received = 0  # the first signal this process got itself (the stop flag may come from another rank)
        self.previous: dict = {}
        self.forward_to: list[int] = []  # child PIDs (evaluators) that get the signal too
        self.parent = os.getppid()

    def install(self) -> None:
        try:
            for signum in HANDLED_SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread (e.g. a notebook): run without signal handling
            self.previous.clear()

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        global _received_signal
        _received_signal = _received_signal or signum
        for pid in self.forward_to:
            try:
                os.kill(pid, signum)
            except OSError:
                pass
        # Counted per process, not by the stop flag: under torchrun the ranks agree to stop as soon as one got the
        # signal, and the others' own copy of it, arriving a moment later, is their first, not a second one.
        if self.received and os.getppid() != self.parent:
            # Not a person's second signal but the parent's death (PR_SET_PDEATHSIG) while we stop: a terminal's
            # or scheduler's signal to the whole group ends the launching task (a Ray worker, a supervisor) at
            # once, and the interrupt checkpoint must still be written.
            log_to_file(logging.WARNING, f"{signal.Signals(signum).name} after the parent process ended: "
                                         f"still {self.on_stop}")
            return
        if self.received:
            sys.stderr.write(f"\nedflow: second signal ({signal.Signals(signum).name}): aborting now; "
                             f"the last published checkpoint is intact.\n")
            sys.stderr.flush()
            os._exit(EXIT_SIGNAL_BASE + signum)
        self.received = signum
        self.runtime.stop_signal = self.runtime.stop_signal or signum
        message = f"received {signal.Signals(signum).name}: {self.on_stop} (send it again to abort at once)"
        if self.announce:
            log.warning("%s", message)
        else:
            log_to_file(logging.WARNING, message)


# ---------------------------------------------------------------------------------------------------------------
# Distribution (a single process unless a backend says otherwise)


class SingleProcess:
    """The process group of a run that is not distributed."""

    rank = 0
    world_size = 1

    def broadcast(self, obj: Any) -> Any:
        return obj

    def barrier(self) -> None:
        pass

    def all_reduce_mean(self, scalars: dict) -> dict:
        return scalars


# ---------------------------------------------------------------------------------------------------------------
# Runtime: what the iterator's loop needs from the process


class Runtime:
    """The per-run settings and callbacks the loop reads; bound once before the first step."""

    def __init__(self, manager: PluginManager, mode: str, config: dict, dist: Any = None) -> None:
        self.mode = mode
        self.manager = manager
        self.dist = dist or SingleProcess()
        from edcore import profiling

        # Installed before the step hooks are bound, so the bound callers are the timed ones; None when off.
        self.profiler = profiling.install(manager, config)
        self.before_step = bind_step_hook(manager, "edflow_before_step")
        self.after_step = bind_step_hook(manager, "edflow_after_step")
        epoch_hooks = manager.hook
        self.before_epoch = epoch_hooks.edflow_before_epoch if epoch_hooks.edflow_before_epoch.get_hookimpls() else None
        self.after_epoch = epoch_hooks.edflow_after_epoch if epoch_hooks.edflow_after_epoch.get_hookimpls() else None
        self.log_freq = config.get("log_freq") or 0
        self.ckpt_freq = config.get("ckpt_freq") or 0
        self.num_steps: float = math.inf
        self.num_epochs: float = math.inf
        self.stop_signal = 0
        self.loop_entered = False  # set-up failures (dataset, model, restore) are reported differently
        self.progress: Any = None
        self._log_hook = bind_step_hook(manager, "edflow_log")  # every log_freq steps: bound like the step hooks
        self.log = self._log if self._log_hook is not None else None
        self.checkpointer: Checkpointer | None = None
        self.warned: set = set()  # what warn_once has reported
        self.evaluation: str | None = None  # the name of the evaluation an evaluation process runs

    def checkpoint(self, reason: str) -> None:
        if self.checkpointer is not None:
            self.checkpointer.save(reason)

    def _log(self, global_step: int, logs: Any) -> None:
        if not isinstance(logs, Mapping):
            if logs is not None:
                self.warn_once(("log op", type(logs).__name__),
                          f"the log op returned a {type(logs).__name__}, not a dict like {{'scalars': {{...}}, "
                          f"'images': {{...}}}}; nothing of it is logged")
            return
        prepared = dict(logs)
        prepared["scalars"] = flatten_scalars(logs.get("scalars") or {}, warn_once=self.warn_once)
        if self.dist.world_size > 1:
            # Every rank logs at the same steps, so all take part in the average; only rank 0 writes it.
            prepared["scalars"] = self.dist.all_reduce_mean(prepared["scalars"])
            if self.dist.rank != 0:
                return
        for key in logs:
            if key not in LOG_KEYS:
                self.warn_once(("log key", key),
                          f"the log op returned '{key}', which edflow does not write (it writes "
                          f"{', '.join(LOG_KEYS)}); plugins implementing edflow_log still receive it")
        for kind in ("images", "histograms"):
            if logs.get(kind) is not None:
                prepared[kind] = self._arrays(kind, logs[kind])
        self._log_hook(global_step, prepared, self.mode)
        if self.progress is not None and prepared["scalars"]:
            shown = list(prepared["scalars"].items())[:4]
            self.progress.set_postfix({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in shown}, refresh=False)


    def _arrays(self, kind: str, entries: Any) -> dict:
        """``logs[kind]`` flattened, each value a numpy array (hook ``edflow_to_numpy``); what cannot be converted
        is reported once by key and left out."""
        from edcore.media import flatten

        to_numpy = self.manager.hook.edflow_to_numpy
        arrays = {}
        for key, value in flatten(entries).items():
            try:
                arrays[key] = to_numpy(value=value)
            except Exception as err:  # noqa: BLE001 - a bad log entry must not end the training
                self.warn_once((kind, key), f"logged {kind[:-1]} '{key}' ({type(value).__name__}) cannot be turned into an "
                                       f"array ({describe_exception(err)}); it is not logged")
        return arrays


    def warn_once(self, what: Any, message: str) -> None:
        """Log ``message`` as a warning the first time ``what`` is seen in this run."""
        if what not in self.warned:
            self.warned.add(what)
            log.warning("%s", message)


#: The entries of the log op's result the built-in loggers write.
LOG_KEYS = ("scalars", "images", "histograms")


def flatten_scalars(scalars: Mapping, prefix: str = "", warn_once: Callable = lambda what, message: None) -> dict:
    """``{"loss": {"a": t}}`` -> ``{"loss/a": float}``; tensors and numpy scalars become Python floats here, on
    logged steps only."""
    flat = {}
    for key, value in scalars.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_scalars(value, name + "/", warn_once))
            continue
        try:
            item = getattr(value, "item", None)  # torch tensors and numpy scalars; no autograd warning
            flat[name] = float(item() if item is not None else value)
        except (TypeError, ValueError, RuntimeError):
            warn_once(("scalar", name), f"logged scalar '{name}' is {type(value).__name__}, not a number; it is not logged")
    return flat


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints of one process


class Checkpointer:
    """Saves and restores the whole state of a run through the checkpoint protocol and the checkpoint hooks."""

    def __init__(self, store: CheckpointStore, manager: PluginManager, iterator: Iterator, project: Any,
                 config: Config, enabled: bool = True, rank: int = 0) -> None:
        self.store = store
        self.manager = manager
        self.iterator = iterator
        self.project = project
        self.enabled = enabled and rank == 0
        self.config_hash = hashlib.sha256(dump(config.data).encode()).hexdigest()
        self.last_saved_step: int | None = None
        self.versions: dict | None = None

    def save(self, reason: str) -> Checkpoint | None:
        """Write and publish a checkpoint of the current global step (rank 0 only)."""
        if not self.enabled:
            return None
        iterator = self.iterator
        step = iterator.get_global_step()

        def write(folder: Path) -> None:
            with open(folder / CORE_STATE_FILE, "w", encoding="utf-8") as stream:
                json.dump({"state": iterator.state(), "reason": reason}, stream)
            try:
                iterator.save(str(folder))
            except EdflowError:
                raise
            except Exception as err:
                raise UserCodeError(f"{type(iterator).__name__}.save raised {describe_exception(err)}\n"
                                    f"{format_user_traceback(err)}") from err
            call_hook(self.manager, "edflow_save_checkpoint", iterator=iterator, path=str(folder), global_step=step)

        if self.versions is None:  # read once: a metadata scan costs milliseconds per checkpoint
            from edcore.project import package_versions

            self.versions = package_versions()
        checkpoint = self.store.write(step, write, {"reason": reason, "config_sha256": self.config_hash,
                                                    "versions": self.versions})
        self.last_saved_step = step
        log.debug("checkpoint %s written (%s)", checkpoint.path, reason)
        call_hook(self.manager, "edflow_checkpoint_published", checkpoint=checkpoint, project=self.project)
        return checkpoint

    def load(self, checkpoint: Checkpoint) -> None:
        """Restore everything from ``checkpoint``; raises :class:`CheckpointError` naming what failed."""
        iterator = self.iterator
        try:
            with open(checkpoint.path / CORE_STATE_FILE, encoding="utf-8") as stream:
                state = json.load(stream)["state"]
            iterator.restore(str(checkpoint.path))
            call_hook(self.manager, "edflow_restore_checkpoint", iterator=iterator, path=str(checkpoint.path),
                      global_step=checkpoint.step)
        except EdflowError as err:
            raise CheckpointError(f"checkpoint '{checkpoint.path}' cannot be restored: {err}") from err
        except Exception as err:
            raise CheckpointError(f"checkpoint '{checkpoint.path}' cannot be restored: {describe_exception(err)}") from err
        iterator.load_state(state)
        self.last_saved_step = checkpoint.step

    def restore(self, explicit: Checkpoint | None, latest: bool) -> Checkpoint | None:
        """Load ``explicit`` (errors stop the run), or with ``latest`` the newest loadable checkpoint, falling back
        to older ones with a warning when the newest cannot be read."""
        if explicit is not None:
            self.load(explicit)
            log.info("restored checkpoint %s (global step %d)", explicit.path, explicit.step)
            return explicit
        if not latest:
            return None
        candidates = self.store.published()
        if not candidates:
            log.info("no checkpoint in %s yet: starting from scratch", self.store.directory)
            return None
        failures = []
        for checkpoint in reversed(candidates):
            try:
                self.load(checkpoint)
            except CheckpointError as err:
                failures.append((checkpoint, str(err)))
                log.warning("%s; falling back to the previous checkpoint", err)
                continue
            if self.enabled:
                for unreadable, _ in failures:
                    try:
                        aside = self.store.set_aside(unreadable)
                    except OSError as err:
                        log.warning("could not move the unreadable checkpoint %s aside: %s", unreadable.path, err)
                        continue
                    log.warning("unreadable checkpoint moved to %s; its step will be written again", aside)
            log.info("restored checkpoint %s (global step %d)", checkpoint.path, checkpoint.step)
            return checkpoint
        raise CheckpointError("no checkpoint of the run can be restored: " + " | ".join(text for _, text in failures))


# ---------------------------------------------------------------------------------------------------------------
# The training process


def provide(manager: PluginManager, hook_name: str, what: str, **kwargs: Any) -> Any:
    """Call a firstresult provider hook; ``None`` from every plugin is an error."""
    result = call_hook(manager, hook_name, **kwargs)
    if result is None:
        raise PluginError(f"no plugin provided the {what} (hook '{hook_name}' returned None everywhere).")
    return result


def make_progress(total: float, initial: int, desc: str, position: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from edcore.progress import make_progress as make

    return make(total, initial, desc, position)


def run_training(*, config: Config, manager: PluginManager, project: Any, dist: Any = None,
                 checkpoint: Checkpoint | None = None, resume: bool = False, retrain: bool = False,
                 debug: bool = False, progress_position: int = 0,
                 on_runtime: Callable[["Runtime", SignalHandler], None] | None = None) -> int:
    """Run one training process; return its exit code (0, or 128 + signal number when interrupted)."""
    dist = dist or SingleProcess()
    data = config.data
    runtime = Runtime(manager, "train", data, dist)
    signals = SignalHandler(runtime)
    signals.install()
    if on_runtime is not None:
        on_runtime(runtime, signals)
    try:
        return _train(config, manager, project, dist, checkpoint, resume, retrain, debug, progress_position,
                      runtime, signals)
    except Exception as err:
        if not runtime.loop_entered:  # the loop reports its own failures, after its checkpoint
            _tell_plugins_of(manager, None, err)
        raise
    finally:
        signals.restore()


def _train(config: Config, manager: PluginManager, project: Any, dist: Any, checkpoint: Checkpoint | None,
           resume: bool, retrain: bool, debug: bool, progress_position: int, runtime: Runtime,
           signals: SignalHandler) -> int:
    data = config.data
    if dist.rank == 0:
        call_hook(manager, "edflow_project_init", project=project, config=data, mode="train")
    call_hook(manager, "edflow_seed", seed=int(data["seed"]) + dist.rank, config=data)

    # The seed's order: dataset, batches, model, iterator.
    dataset = provide(manager, "edflow_dataset", "dataset", config=data, mode="train")
    if debug:
        from edcore.batching import LimitedDataset

        dataset = LimitedDataset(dataset, data.get("debug", {}).get("max_examples", 5 * data["batch_size"]))
    batches = provide(manager, "edflow_batches", "batches", dataset=dataset, config=data, mode="train")
    try:
        model = provide(manager, "edflow_model", "model", config=data)
        iterator = provide(manager, "edflow_iterator", "iterator", config=data, root=str(project.train), model=model,
                           project=project)
        if not isinstance(iterator, Iterator):
            raise UserCodeError(f"the iterator provided is a {type(iterator).__name__}, not an edcore.Iterator.")

        store = CheckpointStore(project.checkpoints)
        if dist.rank == 0:
            store.clean_stale()
        checkpointer = Checkpointer(store, manager, iterator, project, config,
                                    enabled=data.get("checkpointing", True), rank=dist.rank)
        checkpointer.restore(checkpoint, latest=resume)
        if retrain:
            iterator.reset_global_step()
            log.info("-r/--retrain: global step reset to 0; training continues from the restored weights")

        num_batches = len(batches)
        runtime.checkpointer = checkpointer
        runtime.num_epochs = data.get("num_epochs", math.inf)
        runtime.num_steps = data.get("num_steps", math.inf)
        steps_for_epochs = runtime.num_epochs * num_batches
        if "num_steps" in data and "num_epochs" in data:
            which = "num_steps" if runtime.num_steps <= steps_for_epochs else "num_epochs"
            log.info("both num_steps (%d) and num_epochs (%d, = %d steps) are set: training stops at %s, whichever "
                     "comes first", runtime.num_steps, runtime.num_epochs, steps_for_epochs, which)
        total = min(runtime.num_steps, steps_for_epochs)
        iterator.runtime = runtime
        start = iterator.get_global_step()
        complete = start >= total  # a finished run resumed: one line says so, no progress bar, no loop report
        if complete:
            log.info("training already complete at global step %d (of %s); nothing to do", start, total)
        runtime.progress = make_progress(total, start, "train", progress_position,
                                         data.get("progress", True) and dist.rank == 0 and not complete)
        call_hook(manager, "edflow_before_training", iterator=iterator)
        if not complete:
            log.info("training %s from global step %d: %d examples, %d batches per epoch",
                     type(iterator).__name__, start, len(dataset), num_batches)
        status = "failed"
        runtime.loop_entered = True
        try:
            iterator.iterate(batches)
            status = "interrupted" if runtime.stop_signal else "finished"
        except BaseException as err:
            _after_failure(iterator, checkpointer, manager, err, start)
            reported = _as_user_error(err, iterator)
            if reported is err:
                raise
            raise reported from err
        finally:
            if runtime.profiler is not None:
                runtime.profiler.finish(iterator)
            if runtime.progress is not None:
                runtime.progress.close()
            if status != "failed":
                checkpointer.save("interrupt" if status == "interrupted" else "final")
            call_hook(manager, "edflow_after_training", iterator=iterator, status=status)
        if status == "interrupted":
            call_hook(manager, "edflow_interrupt", iterator=iterator, signum=runtime.stop_signal)
            log.warning("interrupted at global step %d; checkpoint written. Resume with: edflow -p %s",
                        iterator.get_global_step(), project.root)
            return EXIT_SIGNAL_BASE + runtime.stop_signal
        if not complete:
            log.info("training finished at global step %d; run folder %s", iterator.get_global_step(), project.root)
        return EXIT_OK
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _after_failure(iterator: Iterator, checkpointer: Checkpointer, manager: PluginManager, err: BaseException,
                   start: int) -> None:
    """Checkpoint the last completed step (if this invocation completed one), then tell the plugins."""
    if isinstance(err, (KeyboardInterrupt, SystemExit)):
        return
    if iterator.get_global_step() > start:
        try:
            if checkpointer.save("exception") is not None:  # None: checkpointing is off, or not rank 0
                log.warning("wrote a checkpoint of global step %d before reporting the error",
                            iterator.get_global_step())
        except Exception as save_err:  # the original error matters more
            log.warning("could not write a checkpoint after the error: %s", describe_exception(save_err))
    _tell_plugins_of(manager, iterator, err)


def _tell_plugins_of(manager: PluginManager, iterator: Iterator | None, err: BaseException) -> None:
    """``edflow_exception``; a plugin that raises there must not hide the original error."""
    try:
        manager.hook.edflow_exception(iterator=iterator, exception=err)
    except Exception as hook_err:
        log.warning("an edflow_exception hook raised: %s", describe_exception(hook_err))


def _as_user_error(err: BaseException, iterator: Iterator) -> BaseException:
    if isinstance(err, (EdflowError, KeyboardInterrupt, SystemExit)):
        return err
    return UserCodeError(
        f"training failed at global step {iterator.get_global_step()}: {describe_exception(err)}\n"
        f"{format_user_traceback(err)}"
    )
