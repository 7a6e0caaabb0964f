"""The TensorFlow side of the loop-overhead workload: the same MLP, batches and initial weights trained by a raw
``tf.function`` loop, edflow-tf with its compiled step (``tf: {jit: true}``) and Keras ``fit``.

The first step of every variant traces and compiles its graph (hundreds of milliseconds): every variant is timed
from the end of its first step, over the remaining steps.
"""
from __future__ import annotations

import functools
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Any

import numpy as np

from common import Stopwatch
from edcore import hookimpl

IN, HIDDEN, OUT = 32, 64, 10
LR = 1e-3

BATCHES: list = []  # dicts of tf tensors, shared by every variant
ARRAYS: tuple = ()  # the same examples as two numpy arrays, for Keras fit
INITIAL_WEIGHTS: list | None = None
ZERO: list = []  # the no-op step's logged loss, a tf tensor like a real step's


def setup(num_steps: int) -> None:
    """Build the batches and the initial weights; one thread, like the torch workload."""
    global ARRAYS, INITIAL_WEIGHTS
    import tensorflow as tf

    from harness import teacher_batches

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process
        pass
    pairs = teacher_batches(num_steps, 64, IN, OUT)
    ZERO[:] = [tf.constant(0.0)]
    BATCHES[:] = [{"x": tf.constant(x), "y": tf.constant(y)} for x, y in pairs]
    ARRAYS = (np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs]))
    import keras

    keras.utils.set_random_seed(0)
    INITIAL_WEIGHTS = None
    INITIAL_WEIGHTS = [w.copy() for w in make_model().get_weights()]


def make_model(config: Any = None) -> Any:
    """32-64-10 with :data:`INITIAL_WEIGHTS`; also the config's ``model`` for edflow-tf."""
    import keras

    model = keras.Sequential([keras.Input((IN,)), keras.layers.Dense(HIDDEN, activation="relu"),
                              keras.layers.Dense(OUT)])
    if INITIAL_WEIGHTS is not None:
        model.set_weights(INITIAL_WEIGHTS)
    return model


def loss_function() -> Any:
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def check_loss(model: Any) -> float:
    """The loss on the first batch after training: equal across variants when they did the same steps."""
    batch = BATCHES[0]
    return float(loss_function()(batch["y"], model(batch["x"], training=False)))


def raw_step(model: Any, optimizer: Any, loss_fn: Any) -> Any:
    """The raw loop's step: forward, backward and update of ``model`` as one ``tf.function``."""
    import tensorflow as tf

    @tf.function
    def train_step(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return train_step


def raw_loop() -> dict:
    import keras

    model = make_model()
    train_step = raw_step(model, keras.optimizers.Adam(LR), loss_function())
    watch = Stopwatch()
    first, rest = BATCHES[0], BATCHES[1:]
    train_step(first["x"], first["y"])
    watch.start()
    for batch in rest:
        train_step(batch["x"], batch["y"])
    return {**watch.stop(), "steps": len(rest), "final_loss": check_loss(model)}


def raw_noop_loop() -> dict:
    """The raw loop's share of the no-op measurement: iterating over the batches after the first."""
    watch = Stopwatch()
    watch.start()
    for batch in BATCHES[1:]:
        pass
    return {**watch.stop(), "steps": len(BATCHES) - 1}


def keras_fit(verbose: int) -> dict:
    import keras

    class Timer(keras.callbacks.Callback):
        watch = Stopwatch()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 0:
                self.watch.start()

        def on_train_end(self, logs: Any = None) -> None:
            self.watch.stop()

    model = make_model()
    model.compile(optimizer=keras.optimizers.Adam(LR), loss=loss_function())
    timer = Timer()
    x, y = ARRAYS
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=verbose, callbacks=[timer])
    return {**timer.watch.result, "steps": len(BATCHES) - 1, "final_loss": check_loss(model)}


# -- edflow-tf ------------------------------------------------------------------------------------------------------


def _nothing() -> None:
    return None


def _zero_loss() -> dict:
    return {"scalars": {"loss": ZERO[0]}}


@functools.lru_cache(maxsize=1)  # one class, however often edflow resolves the name
def _iterator_class() -> Any:
    import edflow_tf
    import keras
    import tensorflow as tf

    class Iterator(edflow_tf.TemplateIterator):
        """The raw loop's step as an edflow-tf template iterator: ``tf: {jit: true}`` compiles its step function
        with ``tf.function``, as the raw loop compiles its own."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.optimizer = keras.optimizers.Adam(LR)
            self.loss_fn = loss_function()
            if self.config.get("bench_noop"):
                self.step_op = self.noop_step_op  # type: ignore[method-assign]

        def noop_step_op(self, model: Any, x: Any, y: Any) -> dict:
            """A step that computes nothing, to measure what edflow-tf itself costs per step."""
            return {"train_op": _nothing, "log_op": _zero_loss}

        @edflow_tf.step_function
        def train_step(self, x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = self.loss_fn(y, self.model(x, training=True))
            gradients = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
            return loss

        def step_op(self, model: Any, x: Any, y: Any) -> dict:
            outputs = {}

            def train_op() -> None:
                outputs["loss"] = self.train_step(x, y)

            def log_op() -> dict:  # the step's own loss, as Keras fit reports it: no extra forward pass
                return {"scalars": outputs}

            return {"train_op": train_op, "log_op": log_op}

    return Iterator


def __getattr__(name: str) -> Any:
    if name == "Iterator":  # resolved by edflow from the config; needs edflow_tf
        return _iterator_class()
    raise AttributeError(name)


class FirstStepTimer:
    """For edflow-tf: restarts the loop timer at the end of the first (tracing) step, like the other variants.
    One per-step hook call: about a microsecond (hook_dispatch.py), noted in the README."""

    def __init__(self, watch: Stopwatch) -> None:
        self.watch = watch

    @hookimpl
    def edflow_after_step(self, global_step: int) -> None:
        if global_step == 1:
            self.watch.start()


def edflow_configs(num_steps: int) -> dict[str, dict]:
    """The edflow-tf variants, compiled step: every default on, everything off, and both with a no-op step."""
    common = {"dataset": "harness.PrebuiltDataset", "model": "tf_workload.make_model",
              "iterator": "tf_workload.Iterator", "batch_size": 64, "num_steps": num_steps, "seed": 0,
              "bench_examples": 64 * num_steps, "code_root": None, "tf": {"jit": True}}
    configs = {
        "on": dict(common),  # progress bar, log_freq 100, TensorBoard, metrics.jsonl, checkpoint at the end
        "off": {**common, "progress": False, "log_freq": None, "checkpointing": False, "tensorboard": False},
    }
    return {**configs, **{f"{name}-noop": {**config, "bench_noop": True} for name, config in configs.items()}}


def edflow_variant(project: Any, config_name: str, check: bool = True) -> Any:
    """``edflow -t`` in this process, timed from the end of its first step."""
    from harness import LoopTimer, train_quietly

    def run() -> dict:
        timer = LoopTimer(BATCHES)
        train_quietly(project, config_name, [timer, FirstStepTimer(timer.watch)])
        return {**timer.watch.result, "steps": len(BATCHES) - 1, "final_loss": check_loss(timer.iterator.model) if check else None}

    return run
