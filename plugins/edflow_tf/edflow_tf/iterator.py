"""The TensorFlow TemplateIterator: devices, training/inference calls, compiled and distributed steps, checkpoints."""
from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any, Callable, Mapping

import edcore
import tensorflow as tf
from edcore.errors import CheckpointError

from edflow_tf.distribute import make_strategy, run_on_replicas, split_for_replicas
from edflow_tf.settings import resolve_device, tf_settings

log = logging.getLogger("edflow")

STATE_PREFIX = "tf_state"  # tf.train.Checkpoint writes tf_state.index and tf_state.data-*
OBJECTS_FILE = "tf_objects.json"
GLOBAL_GENERATOR = "global_generator"
_SKIPPED_ATTRIBUTES = {"model", "runtime", "config", "project", "root", "strategy"}


class TemplateIterator(edcore.TemplateIterator):
    """Subclass this to train a TensorFlow model (a ``tf.keras.Model`` or any ``tf.Module``) with ``edflow -t``.

    In ``__init__`` call ``super().__init__(*args, **kwargs)`` first, then create optimizers (and any
    ``tf.Variable`` or ``tf.random.Generator`` you need) as attributes: they are made inside the strategy's scope
    and on ``self.device``. Implement ``step_op(self, model, **batch)`` returning ``{"train_op": fn, "log_op": fn,
    "eval_op": fn}``; the batch arrives as ``tf.Tensor``s on ``self.device``. The ``model`` argument calls a Keras
    model with ``training=True`` in training and always with ``training=False`` in evaluation (``test_mode``).

    Decorate the method that computes a step with :func:`step_function`: it is compiled with ``tf.function`` under
    ``tf: {jit: true}`` and runs on every replica under ``tf: {strategy: mirrored}``.

    Everything trackable is checkpointed through ``tf.train.Checkpoint`` without code: the model, every optimizer,
    ``tf.Module``, Keras layer, ``tf.Variable`` and ``tf.random.Generator`` attribute, and TensorFlow's global
    generator (the core adds the global step, the data position and the Python/NumPy RNG states). Override
    ``save(path)``/``restore(path)`` (calling ``super()``) to add files of your own.
    """

    def __init__(self, config: Mapping, root: Any, model: Any, **kwargs: Any) -> None:
        super().__init__(config, root, model, **kwargs)
        settings = tf_settings(config)
        self.strategy = make_strategy(settings)
        self.uses_strategy = settings["strategy"] != "default"
        self.num_replicas = self.strategy.num_replicas_in_sync
        self.device = resolve_device(settings["device"])
        self.jit = settings["jit"]
        self._raw_model = model
        self._step_functions: dict[str, Callable] = {}

    @property
    def training(self) -> bool:
        """True in training, False in evaluation (pass it as ``training=`` to models you call yourself)."""
        return not self.test_mode

    # -- running -------------------------------------------------------------------------------------------------

    def run(self, fetches: Any, feeds: Mapping) -> Any:
        # While the ops run, ``self.model`` is the same mode-aware wrapper as their ``model`` argument, as a
        # torch model is in train() or eval() mode for the whole step.
        model = self.model
        if isinstance(model, _keras_layer_type()):
            self.model = ModeModel(model, training=self.training)  # what step_op receives as ``model``
        try:
            return super().run(fetches, feeds)
        finally:
            self.model = model

    def compile_step(self, function: Callable) -> Callable:
        """``function`` as a step: under ``tf.function`` with ``jit``, on every replica (results averaged) with a
        distribution strategy, else as it is."""
        if not self.uses_strategy:
            return tf.function(function, reduce_retracing=True) if self.jit else function
        strategy = self.strategy

        def replicated(inputs: dict) -> Any:
            return run_on_replicas(strategy, function, inputs)

        # Distributed runs always trace (eager strategy.run executes the replicas one after the other), except the
        # first call: optimizers make their slots lazily, which a traced replica function cannot do.
        compiled = tf.function(replicated, reduce_retracing=True)
        first_call = [True]

        def call(*args: Any, **kwargs: Any) -> Any:
            inputs = split_for_replicas(strategy, {"args": args, "kwargs": kwargs})
            if first_call[0]:
                first_call[0] = False
                return replicated(inputs)
            return compiled(inputs)

        return call

    # -- checkpoints ---------------------------------------------------------------------------------------------

    def trackables(self) -> dict[str, Any]:
        """What the checkpoint holds, by name: the model, the trackable attributes, the global generator."""
        trackable = tf.__internal__.tracking.Trackable
        objects: dict[str, Any] = {}
        if isinstance(self._raw_model, trackable):
            objects["model"] = self._raw_model
        for name, value in vars(self).items():
            if name in _SKIPPED_ATTRIBUTES or name.startswith("_") or value is self._raw_model:
                continue
            if isinstance(value, trackable):
                objects[name] = value
        objects[GLOBAL_GENERATOR] = tf.random.get_global_generator()
        return objects

    def save(self, path: str) -> None:
        objects = self.trackables()
        checkpoint = tf.train.Checkpoint(**{name: _checkpointable(obj) for name, obj in objects.items()})
        checkpoint.write(os.path.join(path, STATE_PREFIX))
        described = {name: {"kind": _kind(obj), "variables": len(_keras_variables(obj) or ())}
                     for name, obj in objects.items()}
        for name, optimized in _optimized_variables(objects).items():
            described[name]["optimizes"] = optimized
        for name, obj in objects.items():
            built = _build_config(obj)
            if built is not None:
                described[name]["build"] = built
        with open(os.path.join(path, OBJECTS_FILE), "w", encoding="utf-8") as stream:
            json.dump({"format": 1, "objects": described}, stream)

    def restore(self, path: str) -> None:
        names_file = os.path.join(path, OBJECTS_FILE)
        if not os.path.exists(names_file):
            raise CheckpointError(f"'{path}' has no {OBJECTS_FILE}; it was not written by edflow-tf.")
        try:
            with open(names_file, encoding="utf-8") as stream:
                saved = json.load(stream)["objects"]
            reader = tf.train.load_checkpoint(os.path.join(path, STATE_PREFIX))
        except (OSError, ValueError, KeyError, tf.errors.OpError) as err:
            raise CheckpointError(f"the TensorFlow state in '{path}' cannot be read: {err}") from err
        current = self.trackables()
        missing = [name for name in saved if name not in current]
        if missing:
            described = ", ".join(f"{saved[name]['kind']} '{name}'" for name in missing)
            raise CheckpointError(
                f"the checkpoint holds {described} but "
                f"{type(self).__name__} has no such attribute (it has: "
                f"{', '.join(n for n in current if n != GLOBAL_GENERATOR) or 'none'}). Was it written by another "
                f"iterator?"
            )
        native = {}
        for name, obj in current.items():
            if name not in saved:
                log.warning("%s '%s' is not in the checkpoint; it keeps its fresh state", _kind(obj), name)
            elif _keras_variables(obj) is not None:
                self._build_layer(name, obj, saved[name])
                self._build_optimizer(name, obj, saved[name].get("optimizes"), current)
                _restore_keras(name, obj, saved[name]["variables"], reader)
            else:
                native[name] = obj
        if native:
            try:
                status = tf.train.Checkpoint(**native).read(os.path.join(path, STATE_PREFIX))
                status.assert_existing_objects_matched()
            except (ValueError, AssertionError, tf.errors.OpError) as err:
                raise CheckpointError(f"the checkpoint does not fit {', '.join(native)} (a checkpoint of another "
                                      f"model?): {' '.join(str(err).split())[:600]}") from err
            status.expect_partial()  # variables a tf.Module creates later are restored when they are created


    def _build_layer(self, name: str, obj: Any, saved: Mapping) -> None:
        """Make the weights of a Keras model or layer that creates them at its first call (a subclassed model, a
        Sequential without ``keras.Input``) from the input shapes it was built for when it was saved, so that they
        can be restored before the first step. The core restores the Python and NumPy RNG states afterwards, so
        the initializers run here change nothing the resumed run sees."""
        import keras

        if not isinstance(obj, keras.layers.Layer) or obj.built or not saved.get("build"):
            return  # (an unbuilt model may have variables already: a Dropout's seed state is made in __init__)
        try:
            with self.strategy.scope(), tf.device(self.device):
                obj.build_from_config(saved["build"])
        except Exception as err:  # noqa: BLE001 - the user's build/call code may raise anything
            raise CheckpointError(f"'{name}' cannot be built for the input shapes it had when it was saved "
                                  f"({saved['build']}): {' '.join(str(err).split())[:400]}") from err

    def _build_optimizer(self, name: str, optimizer: Any, optimizes: list | None, current: Mapping) -> None:
        """Make the slots of an optimizer that has not run yet, for the variables it optimized when it was saved,
        so that they can be restored now (and, with a strategy, mirrored in its scope)."""
        import keras

        if not isinstance(optimizer, keras.optimizers.Optimizer) or optimizer.built or not optimizes:
            return
        try:
            variables = [_keras_variables(current[owner])[index] for owner, index in optimizes]
        except (KeyError, IndexError, TypeError) as err:
            raise CheckpointError(f"optimizer '{name}' optimized variables the iterator does not have now "
                                  f"({optimizes}); a checkpoint of another model?") from err
        with self.strategy.scope(), tf.device(self.device):
            optimizer.build(variables)


class _VariableList(tf.__internal__.tracking.AutoTrackable):
    """A Keras object's variables in a fixed order: what the checkpoint stores for it.

    Keras 3 keeps layers and weights in its own lists, which tf.train.Checkpoint does not follow (a Sequential's
    weights would be missing), so Keras objects are saved as the ordered list of ``.variables``, which includes
    the optimizer slots and the state of the layers' seed generators (dropout resumes exactly).
    """

    def __init__(self, variables: list) -> None:
        self.variables = list(variables)


def _keras_variables(obj: Any) -> list | None:
    """The ordered variables of a Keras layer, model or optimizer, or None for other objects."""
    import keras

    if isinstance(obj, (keras.layers.Layer, keras.optimizers.Optimizer)):
        return list(obj.variables)
    if isinstance(obj, keras.Variable):
        return [obj]
    return None


def _build_config(obj: Any) -> dict | None:
    """The input shapes a built Keras layer or model was built for (JSON-ready), or None."""
    import keras

    if not isinstance(obj, keras.layers.Layer) or not obj.built:
        return None
    try:
        config = obj.get_build_config()
        return json.loads(json.dumps(config)) if config else None
    except (TypeError, ValueError, NotImplementedError):
        return None


def _checkpointable(obj: Any) -> Any:
    variables = _keras_variables(obj)
    return obj if variables is None else _VariableList(variables)


def _optimized_variables(objects: Mapping) -> dict[str, list]:
    """For each built Keras optimizer: the variables it optimizes, as ``[owner name, index in its .variables]``."""
    import keras

    where = {}
    for name, obj in objects.items():
        for index, variable in enumerate(_keras_variables(obj) or ()):
            where.setdefault(id(variable), [name, index])
    optimized = {}
    for name, obj in objects.items():
        if isinstance(obj, keras.optimizers.Optimizer) and obj.built:
            # Keras keeps the list its optimizer was built for only here (set by Optimizer.build)
            variables = getattr(obj, "_trainable_variables", None) or []
            optimized[name] = [where.get(id(variable)) for variable in variables]
            if None in optimized[name]:
                del optimized[name]  # it optimizes variables outside the checkpoint: it cannot be rebuilt early
    return optimized


def _restore_keras(name: str, obj: Any, count: int, reader: Any) -> None:
    """Assign the saved variables of a Keras object (an optimizer's slots must exist: see ``_build_optimizer``)."""
    variables = _keras_variables(obj)
    if not variables and count:
        raise CheckpointError(
            f"'{name}' has no variables yet but the checkpoint holds {count}: build the model when it is made "
            f"(e.g. with keras.Input in a Sequential, or self.build(input_shape) in __init__) so its weights exist "
            f"when the checkpoint is restored."
        )
    values = [reader.get_tensor(f"{name}/variables/{i}/.ATTRIBUTES/VARIABLE_VALUE") for i in range(count)]
    _assign(name, variables, values)


def _assign(name: str, variables: list, values: list) -> None:
    if len(variables) != len(values):
        raise CheckpointError(f"'{name}' has {len(variables)} variables but the checkpoint holds {len(values)} "
                              f"(a checkpoint of another model?).")
    for index, (variable, value) in enumerate(zip(variables, values)):
        if tuple(variable.shape) != tuple(value.shape):
            label = getattr(variable, "path", None) or variable.name
            raise CheckpointError(
                f"variable {index} of '{name}' ({label}) has shape {tuple(variable.shape)} but the checkpoint holds "
                f"shape {tuple(value.shape)} (a checkpoint of another model?)."
            )
        variable.assign(value)


def step_function(method: Callable) -> Callable:
    """Decorate an iterator method that computes one step from tensors (e.g. forward, backward and update):
    compiled with ``tf.function`` under ``tf: {jit: true}``; under ``tf: {strategy: mirrored}`` each replica runs
    it on its part of the batch and the (nested) tensors it returns are averaged over the replicas."""
    name = method.__name__

    @functools.wraps(method)
    def call(self: TemplateIterator, *args: Any, **kwargs: Any) -> Any:
        compiled = self._step_functions.get(name)
        if compiled is None:
            compiled = self._step_functions[name] = self.compile_step(functools.partial(method, self))
        return compiled(*args, **kwargs)

    return call


class ModeModel:
    """A Keras model as ``step_op`` sees it: calls default to ``training=True`` in training and are always
    ``training=False`` in evaluation; every other attribute is the model's."""

    def __init__(self, model: Any, training: bool) -> None:
        self.__dict__["wrapped"] = model
        self.__dict__["training"] = training

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.training:
            kwargs["training"] = False
        else:
            kwargs.setdefault("training", True)
        return self.wrapped(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["wrapped"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.wrapped, name, value)

    def __repr__(self) -> str:
        return f"ModeModel({self.wrapped!r}, training={self.training})"


@functools.lru_cache(maxsize=1)
def _keras_layer_type() -> type:
    import keras

    return keras.layers.Layer


def _kind(obj: Any) -> str:
    import keras

    if isinstance(obj, keras.optimizers.Optimizer):
        return "optimizer"
    if isinstance(obj, tf.random.Generator):
        return "generator"
    if isinstance(obj, (tf.Variable, keras.Variable)):
        return "variable"
    if isinstance(obj, (keras.layers.Layer, tf.Module)):
        return "module"
    return "object"


