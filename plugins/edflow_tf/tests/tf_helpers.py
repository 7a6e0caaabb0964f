"""Helpers of the edflow-tf tests: a tiny TensorFlow user project (dropout, Adam, a tf.random.Generator, a compiled
step), a probe plugin that records what plugins see at every step, and reading checkpoints."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from edcore.testing import EdflowProject

TF_PROJECT = {
    "tfuser/__init__.py": "",
    "tfuser/data.py": '''
        import numpy as np


        class Blobs:
            """64 examples of two classes; x is float64 so the backend's cast to float32 is exercised."""

            def __init__(self, config):
                rng = np.random.RandomState(0)
                self.x = rng.randn(64, 4)
                self.y = (self.x[:, 0] + self.x[:, 1] > 0).astype("int64")

            def __len__(self):
                return len(self.x)

            def __getitem__(self, index):
                return {"x": self.x[index], "y": self.y[index], "index": index}
    ''',
    "tfuser/model.py": '''
        import json
        import os

        import keras
        import tensorflow as tf


        class Settings(tf.Module):
            """A plain tf.Module keeping the config: it turns the config's own lists and dicts into wrappers."""

            def __init__(self, config):
                super().__init__()
                self.config = config


        class Net(keras.Model):
            """Stores its config, as EDFlow's Keras users did: Keras wraps its lists and dicts."""

            def __init__(self, config):
                super().__init__()
                self.settings = Settings(config)  # edflow dumps this config after the model exists
                self.config = config
                self.hidden = [keras.layers.Dense(width, activation=config["net"]["activation"])
                               for width in config["layers"]]
                self.dropout = keras.layers.Dropout(config["net"]["dropout"])
                self.out = keras.layers.Dense(2)
                self.build((None, 4))

            def build(self, input_shape):
                width = input_shape[-1]
                for layer in self.hidden:
                    layer.build((None, width))
                    width = layer.units
                self.out.build((None, width))
                super().build(input_shape)

            def call(self, x, training=False):
                flags = self.config.get("flags_file")
                if flags:  # records the mode of every call made outside a compiled function
                    with open(flags, "a") as stream:
                        stream.write(json.dumps(bool(training)) + "\\n")
                for layer in self.hidden:
                    x = layer(x)
                return self.out(self.dropout(x, training=training))
    ''',
    "tfuser/iterator.py": '''
        import json
        import os

        import keras
        import tensorflow as tf
        from edflow_tf import TemplateIterator, step_function


        class Iterator(TemplateIterator):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.optimizer = keras.optimizers.Adam(0.01)
                self.noise = tf.random.Generator.from_seed(7)

            @step_function
            def train_step(self, x, y):
                x = x + 0.01 * self.noise.normal(tf.shape(x))
                with tf.GradientTape() as tape:
                    logits = self.model(x, training=True)
                    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
                gradients = tape.gradient(loss, self.model.trainable_variables)
                self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
                return {"loss": loss}

            def step_op(self, model, x, y, index):
                outputs = {}
                step = self.get_global_step()

                def train_op():
                    outputs.update(self.train_step(x, y))

                def log_op():
                    # no dropout here: the first step after a resume is logged too, and must draw no random numbers
                    logits = model(x, training=False)
                    accuracy = tf.reduce_mean(tf.cast(tf.argmax(logits, 1) == y, tf.float32))
                    return {"scalars": {**outputs, "accuracy": accuracy, "step_in_op": step,
                                        "replicas": self.num_replicas}}

                def eval_op():
                    logits = model(x)
                    with open(os.path.join(self.root, "eval.jsonl"), "a") as stream:
                        stream.write(json.dumps({"step": step, "type": type(x).__name__,
                                                 "index": index.numpy().tolist()}) + "\\n")
                    return logits

                return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
    ''',
    "tfprobe.py": '''
        """Records the feeds plugins see, and holds the process at a checkpoint moment when asked (for SIGKILL)."""
        import json
        import os
        import time

        from edcore import hookimpl


        def _write(record):
            with open(os.environ.get("PROBE_FILE", "probe.jsonl"), "a") as stream:
                stream.write(json.dumps(record) + "\\n")


        def _hold(point, step):
            if os.environ.get("HOLD_AT") == point and step >= int(os.environ.get("HOLD_STEP", "0")):
                with open(os.environ["HOLD_MARKER"], "w") as stream:
                    stream.write(str(step))
                time.sleep(120)


        @hookimpl
        def edflow_before_step(global_step, feeds):
            _write({"step": global_step, "types": sorted({type(v).__name__ for v in feeds.values()}),
                    "x_dtype": feeds["x"].dtype.name, "device": feeds["x"].device,
                    "index": feeds["index"].numpy().tolist()})


        @hookimpl
        def edflow_after_step(global_step):
            delay = float(os.environ.get("STEP_DELAY", "0"))
            if delay:
                time.sleep(delay)


        @hookimpl
        def edflow_save_checkpoint(path, global_step):
            _hold("save", global_step)


        @hookimpl
        def edflow_checkpoint_published(checkpoint):
            _hold("published", checkpoint.step)
    ''',
}

TRAIN_CONFIG = {
    "dataset": "tfuser.data.Blobs",
    "model": "tfuser.model.Net",
    "iterator": "tfuser.iterator.Iterator",
    "batch_size": 8,  # 8 batches an epoch: 20 steps end in the middle of the third epoch
    "num_steps": 20,
    "log_freq": 5,
    "ckpt_freq": 2,
    "seed": 3,
    "plugins": ["tfprobe"],
    "layers": [16, 8],
    "net": {"dropout": 0.3, "activation": "relu"},
    "tf": {"jit": True},
}

EVAL_CONFIG = {
    "dataset": "tfuser.data.Blobs",
    "model": "tfuser.model.Net",
    "iterator": "tfuser.iterator.Iterator",
    "batch_size": 16,
    "layers": [16, 8],
    "net": {"dropout": 0.3, "activation": "relu"},
}


def tf_project(path: Path, **overrides) -> EdflowProject:
    """The TF user project in ``path`` with ``train.yaml`` (``TRAIN_CONFIG`` with ``overrides``)."""
    project = EdflowProject(path)
    project.write(TF_PROJECT)
    project.config("train.yaml", **{**TRAIN_CONFIG, **overrides})
    project.config("eval.yaml", **EVAL_CONFIG)
    return project


def probe_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def checkpoint_arrays(folder: Path) -> dict:
    """Every tensor of a checkpoint's TensorFlow state, by key (model, optimizer slots, generators, ...)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(folder / "tf_state"))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map() if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def start_edflow(project: EdflowProject, *args: str, env: dict) -> subprocess.Popen:
    """``edflow ARGS`` started in the background (the caller signals and waits)."""
    return subprocess.Popen([sys.executable, "-m", "edcore", *args], cwd=project.path, env={**os.environ,
                            "PYTHONUNBUFFERED": "1", **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, process: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``condition()`` until true; fail with the process's output if it ends or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"edflow ended (code {process.returncode}) before the expected moment:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            process.send_signal(signal.SIGKILL)
            pytest.fail("timed out waiting for edflow")
        time.sleep(0.05)


def saved_config(run: Path) -> dict:
    (path,) = sorted((run / "configs").glob("train_*[0-9].yaml"))
    return yaml.safe_load(path.read_text())
