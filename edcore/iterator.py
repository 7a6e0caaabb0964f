"""The iterator: EDFlow's data loop (fetches, feeds, hooks, run, global step) and the template contract."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from edcore.errors import ConfigError, UserCodeError, call_mismatch, describe_callable


class DummyModel:
    """The model used when the config names none: it only holds the config."""

    def __init__(self, config: dict) -> None:
        self.config = config

    def __repr__(self) -> str:
        return "DummyModel()"


class _NoRuntime:
    """Used until the process attaches the real runtime: an iterator made by hand (tests, notebooks) still runs."""

    before_step = after_step = log = None
    before_epoch = after_epoch = None
    log_freq = 0
    ckpt_freq = 0
    num_steps = math.inf
    num_epochs = 1
    stop_signal = 0
    progress = None

    def checkpoint(self, reason: str) -> None:
        pass


class Iterator:
    """The framework-neutral loop of the seed. Subclass it (or a backend's ``TemplateIterator``).

    Constructed by the process as ``Iterator(config, root, model)``: ``config`` is the effective config (a dict),
    ``root`` the folder of this process, ``model`` the model. Each step::

        fetches = self.step_ops()                       # nested dict whose leaves are callables
        feeds = self.make_feeds(batch)                  # a copy of the batch
        edflow_before_step(global_step, fetches, feeds, batch)
        results = self.run(fetches, feeds)              # every leaf called as leaf(model, **feeds)
        global_step += 1
        edflow_after_step(global_step, fetches, feeds, batch, results)

    ``save(path)``/``restore(path)`` are called with a checkpoint folder; the core itself saves the global step, the
    data position and the Python/NumPy RNG states.
    """

    def __init__(self, config: dict, root: Any, model: Any, **kwargs: Any) -> None:
        self.config = config
        self.root = root
        self.model = model
        self.project = kwargs.get("project")
        self._global_step = 0
        self._epoch = 0  # the data position: the epoch and the index of the next batch in it
        self._position = 0
        self._log_now = False
        self.runtime: Any = _NoRuntime()

    # -- the global step ----------------------------------------------------------------------------------------

    def get_global_step(self) -> int:
        """The number of training steps completed (during a step: the step being run, counted from 0)."""
        return self._global_step

    def set_global_step(self, step: int) -> None:
        self._global_step = int(step)

    def reset_global_step(self) -> None:
        """Start counting from 0 again (``-r``: train on from the weights of a checkpoint)."""
        self._global_step = 0
        self._epoch = 0
        self._position = 0

    @property
    def test_mode(self) -> bool:
        return bool(self.config.get("test_mode", False))

    @property
    def is_log_step(self) -> bool:
        """True while a step whose log op runs is being executed."""
        return self._log_now

    # -- the step contract ---------------------------------------------------------------------------------------

    def step_ops(self) -> Any:
        """The fetches: a nested dict (or list) whose leaves are callables ``leaf(model, **feeds)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement step_ops() (or derive from a TemplateIterator)")

    def make_feeds(self, batch: Any) -> Any:
        """The feeds of a step: a copy of the batch's structure (arrays are not copied), so hooks can change them."""
        return copy_structure(batch)

    def run(self, fetches: Any, feeds: Mapping) -> Any:
        """Call every leaf of ``fetches`` with ``(model, **feeds)``; the results have the shape of ``fetches``."""
        return call_leaves(fetches, self.model, feeds)

    def save(self, path: str) -> None:
        """Write the iterator's state (model, optimizers, ...) into the checkpoint folder ``path``."""

    def restore(self, path: str) -> None:
        """Read the state written by :meth:`save` from the checkpoint folder ``path``."""

    def state(self) -> dict:
        """The loop's own state, stored by the core in every checkpoint."""
        return {"global_step": self._global_step, "epoch": self._epoch, "position": self._position}

    def load_state(self, state: Mapping) -> None:
        self._global_step = int(state["global_step"])
        self._epoch = int(state.get("epoch", 0))
        self._position = int(state.get("position", 0))

    def logs(self, results: Any) -> Any:
        """What to log from the results of a log step (default: ``results["log_op"]``)."""
        return results.get("log_op") if isinstance(results, Mapping) else None

    # -- the loops -----------------------------------------------------------------------------------------------

    def iterate(self, batches: Any) -> None:
        """Run the training loop (or, with ``test_mode``, one pass over the data) on ``batches``."""
        if self.test_mode:
            self.evaluate(batches)
        else:
            self.train(batches)

    def train(self, batches: Any) -> None:
        """Train until ``num_steps`` or ``num_epochs``, whichever comes first, or until a signal arrives."""
        runtime = self.runtime
        num_batches = len(batches)
        before_step, after_step, log = runtime.before_step, runtime.after_step, runtime.log
        log_freq, ckpt_freq, num_steps = runtime.log_freq or 0, runtime.ckpt_freq or 0, runtime.num_steps
        progress = runtime.progress
        run, make_feeds, logs_of = self.run, self.make_feeds, self.logs
        first_step = self._global_step
        while self._epoch < runtime.num_epochs and self._global_step < num_steps and not runtime.stop_signal:
            epoch = self._epoch
            if runtime.before_epoch is not None:
                runtime.before_epoch(iterator=self, epoch=epoch)
            if progress is not None:
                of = f"/{runtime.num_epochs}" if runtime.num_epochs != math.inf else ""
                progress.set_description(f"train epoch {epoch + 1}{of}", refresh=False)
            fetches = self.step_ops()
            epoch_ended = False
            for batch in batches.epoch(epoch, self._position):
                step = self._global_step
                self._log_now = log_now = log_freq != 0 and ((step + 1) % log_freq == 0 or step == first_step)
                feeds = make_feeds(batch)
                if before_step is not None:
                    before_step(step, fetches, feeds, batch)
                results = run(fetches, feeds)
                step += 1
                self._global_step = step
                self._position += 1
                if self._position >= num_batches:
                    self._epoch, self._position, epoch_ended = epoch + 1, 0, True
                if after_step is not None:
                    after_step(step, fetches, feeds, batch, results)
                if log_now and log is not None:
                    log(step, logs_of(results))
                if progress is not None:
                    progress.update(1)
                if ckpt_freq and step % ckpt_freq == 0:
                    runtime.checkpoint("periodic")
                if runtime.stop_signal or step >= num_steps:
                    break
            self._log_now = False
            if not epoch_ended and self._epoch == epoch and not runtime.stop_signal and self._global_step < num_steps:
                self._epoch, self._position, epoch_ended = epoch + 1, 0, True  # the batches ended early
            if epoch_ended:
                if runtime.after_epoch is not None:
                    runtime.after_epoch(iterator=self, epoch=epoch)
                if not ckpt_freq and self._epoch < runtime.num_epochs and self._global_step < num_steps:
                    runtime.checkpoint("epoch")

    def evaluate(self, batches: Any) -> None:
        """One pass over all batches without changing the global step (evaluation processes)."""
        runtime = self.runtime
        before_step, after_step, log = runtime.before_step, runtime.after_step, runtime.log
        step = self._global_step
        if runtime.before_epoch is not None:
            runtime.before_epoch(iterator=self, epoch=0)
        fetches = self.step_ops()
        self._log_now = log is not None  # the first batch of a pass is its logged step (images of each checkpoint)
        for batch in batches.epoch(0, 0):
            feeds = self.make_feeds(batch)
            if before_step is not None:
                before_step(step, fetches, feeds, batch)
            results = self.run(fetches, feeds)
            if after_step is not None:
                after_step(step, fetches, feeds, batch, results)
            if self._log_now:
                self._log_now = False
                log(step, self.logs(results))
            if runtime.progress is not None:
                runtime.progress.update(1)
            if runtime.stop_signal:
                break
        self._log_now = False
        if runtime.after_epoch is not None:
            runtime.after_epoch(iterator=self, epoch=0)


class TemplateIterator(Iterator):
    """EDFlow's template contract, framework-neutral; the backends' ``TemplateIterator`` classes derive from it.

    Implement ``step_op(self, model, **batch)`` returning a dict of callables: ``train_op`` runs every training
    step, ``log_op`` on logged steps (every ``log_freq``, and on the first batch of each evaluation pass) and returns
    ``{"scalars": {...}, "images": {...}, "histograms": {...}}``, ``eval_op`` in evaluation processes. Any of them may be missing. Their results appear in the step's
    ``results`` under the same names.
    """

    def step_op(self, model: Any, **batch: Any) -> Mapping[str, Callable[[], Any]]:
        raise NotImplementedError(f"{type(self).__name__} must implement step_op(self, model, **batch)")

    def step_ops(self) -> dict:
        return {"step_op": self.step_op}

    def run(self, fetches: Any, feeds: Mapping) -> dict:
        try:
            ops = self.step_op(self.model, **feeds)
        except TypeError as err:  # costs nothing per step until it is raised
            reported = _signature_error(err, self.step_op, (self.model,), feeds)
            if reported is err:
                raise
            raise reported from err
        if type(ops) is not dict and not isinstance(ops, Mapping):
            raise UserCodeError(
                f"{type(self).__name__}.step_op returned {type(ops).__name__}; it must return a dict of callables "
                f"like {{'train_op': fn, 'log_op': fn, 'eval_op': fn}}."
            )
        results = {}
        if self.config.get("test_mode"):  # the test_mode property, inlined: this runs every step
            eval_op = ops.get("eval_op")
            if eval_op is not None:
                results["eval_op"] = eval_op()
            if self._log_now:  # the first batch of an evaluation pass
                log_op = ops.get("log_op")
                if log_op is not None:
                    results["log_op"] = log_op()
        else:
            train_op = ops.get("train_op")
            if train_op is not None:
                results["train_op"] = train_op()
            if self._log_now:
                log_op = ops.get("log_op")
                if log_op is not None:
                    results["log_op"] = log_op()
        if len(fetches) > 1:  # hooks added fetches of their own
            for key, leaf in fetches.items():
                if key != "step_op":
                    results[key] = call_leaves(leaf, self.model, feeds)
        return results


def _signature_error(err: TypeError, function: Callable, args: tuple, kwargs: Mapping) -> BaseException:
    """``err`` as a sentence naming the function and its file:line when it was raised by calling ``function`` with
    arguments it does not take (then the traceback holds no frame of ``function``); else ``err`` itself."""
    tb = err.__traceback__
    if tb is None or tb.tb_next is not None or not call_mismatch(function, args, dict(kwargs)):
        return err
    keys = ", ".join(str(key) for key in kwargs)
    name = getattr(function, "__name__", "step")
    own = "self, " if hasattr(function, "__self__") else ""
    return UserCodeError(
        f"{describe_callable(getattr(function, '__func__', function))} cannot be called as edflow calls it, "
        f"{name}(model, **batch) with the batch keys {keys} ({err}). Define it as def {name}({own}model, {keys}) or "
        f"def {name}({own}model, **batch)."
    )


def check_iterator_class(cls: Any, name: str, where: str) -> None:
    """Raise a :class:`ConfigError` naming ``where`` unless ``cls`` is an :class:`Iterator` subclass."""
    if isinstance(cls, type) and issubclass(cls, Iterator):
        return
    kind = f"class {cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else type(cls).__name__
    raise ConfigError(
        f"{where}: '{name}' is a {kind}, not an iterator. Derive it from a backend's TemplateIterator "
        f"(edflow_torch.TemplateIterator, edflow_tf.TemplateIterator) or edcore.Iterator."
    )


def copy_structure(obj: Any) -> Any:
    """Copy nested dicts and lists (not their leaves)."""
    # Runs every step: dict.copy() and a scan for nested containers cost a fifth of a comprehension (benchmarks/).
    if type(obj) is dict:
        copy = obj.copy()
        for key, value in obj.items():
            if type(value) is dict or type(value) is list:
                copy[key] = copy_structure(value)
        return copy
    if type(obj) is list:
        return [copy_structure(value) if type(value) in (dict, list) else value for value in obj]
    return obj


def call_leaves(fetches: Any, model: Any, feeds: Mapping) -> Any:
    """Call every callable leaf of a nested dict/list with ``(model, **feeds)``."""
    if isinstance(fetches, Mapping):
        return {key: call_leaves(value, model, feeds) for key, value in fetches.items()}
    if isinstance(fetches, (list, tuple)):
        return [call_leaves(value, model, feeds) for value in fetches]
    if callable(fetches):
        try:
            return fetches(model, **feeds)
        except TypeError as err:
            reported = _signature_error(err, fetches, (model,), feeds)
            if reported is err:
                raise
            raise reported from err
    return fetches
