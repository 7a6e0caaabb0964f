"""``edflow new NAME [--backend torch|tf]``: a project skeleton (dataset, model, iterator, train.yaml, eval.yaml)
that trains out of the box on generated data with ``edflow -t NAME/train.yaml``."""
from __future__ import annotations

import argparse
import keyword
import textwrap
from pathlib import Path

from edcore.commands import emit
from edcore.errors import UsageError

PLACEHOLDER = "__NAME__"

DATA = '''
    """Generated data: two noisy interleaved half-moons in the plane, labelled 0 and 1.

    Replace this with your own dataset: any class called as ``Dataset(config)`` with ``__len__`` and
    ``__getitem__(index)`` returning a dict of numpy arrays and numbers.
    """
    import numpy as np


    class Dataset:
        def __init__(self, config):
            settings = config.get("data", {})
            size = settings.get("size", 512)
            # Evaluation (test_mode: true) draws different points from the same distribution.
            rng = np.random.RandomState(1 if config.get("test_mode") else 0)
            labels = rng.randint(0, 2, size)
            angle = rng.uniform(0, np.pi, size)
            points = np.stack([np.cos(angle), np.sin(angle)], axis=1)
            points[labels == 1] = 1 - points[labels == 1] - [0, 0.5]
            points += settings.get("noise", 0.2) * rng.randn(size, 2)
            self.x = points.astype("float32")
            self.y = labels.astype("int64")

        def __len__(self):
            return len(self.x)

        def __getitem__(self, index):
            return {"x": self.x[index], "y": self.y[index]}
'''

TORCH_MODEL = '''
    """The model: a small multi-layer perceptron, called as ``Model(config)``."""
    import torch


    class Model(torch.nn.Module):
        def __init__(self, config):
            super().__init__()
            hidden = config.get("hidden_units", 32)
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(2, hidden), torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                torch.nn.Linear(hidden, 2),
            )

        def forward(self, x):
            return self.layers(x)
'''

TORCH_ITERATOR = '''
    """The iterator: what one training step does, what is logged, what evaluation computes."""
    import torch
    from edflow_torch import TemplateIterator


    class Iterator(TemplateIterator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Optimizers held as attributes are checkpointed and restored by edflow-torch.
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.get("learning_rate", 0.01))

        def step_op(self, model, x, y, **kwargs):
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)

            def train_op():
                self.optimize(loss, self.optimizer)

            def log_op():
                accuracy = (logits.argmax(dim=1) == y).float().mean()
                return {"scalars": {"loss": loss, "accuracy": accuracy}}

            def eval_op():
                return {"prediction": logits.argmax(dim=1), "label": y}

            return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
'''

TF_MODEL = '''
    """The model: a small multi-layer perceptron, called as ``Model(config)``."""
    import tensorflow as tf


    class Model(tf.keras.Model):
        def __init__(self, config):
            super().__init__()
            hidden = config.get("hidden_units", 32)
            self.hidden_1 = tf.keras.layers.Dense(hidden, activation="relu")
            self.hidden_2 = tf.keras.layers.Dense(hidden, activation="relu")
            self.logits = tf.keras.layers.Dense(2)
            self(tf.zeros((1, 2)))  # one call creates the weights, so a checkpoint can be restored into them

        def call(self, x, training=False):
            return self.logits(self.hidden_2(self.hidden_1(x, training=training), training=training),
                               training=training)
'''

TF_ITERATOR = '''
    """The iterator: what one training step does, what is logged, what evaluation computes."""
    import tensorflow as tf
    from edflow_tf import TemplateIterator


    class Iterator(TemplateIterator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Optimizers held as attributes are checkpointed and restored by edflow-tf.
            self.optimizer = tf.keras.optimizers.Adam(self.config.get("learning_rate", 0.01))
            self.loss_function = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        def step_op(self, model, x, y, **kwargs):
            # edflow-tf calls the model with training=True in training and training=False in evaluation.
            def train_op():
                with tf.GradientTape() as tape:
                    loss = self.loss_function(y, model(x))
                gradients = tape.gradient(loss, model.trainable_variables)
                self.optimizer.apply_gradients(zip(gradients, model.trainable_variables))

            def log_op():
                logits = model(x)
                accuracy = tf.reduce_mean(tf.cast(tf.argmax(logits, axis=1) == tf.cast(y, tf.int64), tf.float32))
                return {"scalars": {"loss": self.loss_function(y, logits), "accuracy": accuracy}}

            def eval_op():
                return {"prediction": tf.argmax(model(x), axis=1), "label": y}

            return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
'''

METRICS = '''
    """Evaluation callbacks: called after every evaluated checkpoint as ``fn(eval_dir, dataset, outputs, config)``
    with what the eval op returned for every example; they return a dict of numbers (printed and logged)."""
    import numpy as np


    def accuracy(eval_dir, dataset, outputs, config):
        """Share of the examples whose predicted class is their label."""
        return {"accuracy": float(np.mean(np.asarray(outputs["prediction"]) == np.asarray(outputs["label"])))}
'''

TRAIN_YAML = '''
    # Train from the folder that holds __NAME__/:   edflow -t __NAME__/train.yaml
    # Override any value on the command line:     edflow -t __NAME__/train.yaml --learning_rate 0.003
    dataset: __NAME__.data.Dataset
    model: __NAME__.model.Model
    iterator: __NAME__.iterator.Iterator
    seed: 0               # the same seed gives the same training, run after run; remove it to draw one per run
    batch_size: 32
    num_steps: 300
    log_freq: 50
    ckpt_freq: 100
    learning_rate: 0.01
    hidden_units: 32
    data:
      size: 512
      noise: 0.2
'''

EVAL_YAML = '''
    # Evaluate the latest checkpoint of a run:   edflow -e __NAME__/eval.yaml -p logs/<run>
    dataset: __NAME__.data.Dataset
    model: __NAME__.model.Model
    iterator: __NAME__.iterator.Iterator
    batch_size: 64
    data:
      size: 256
      noise: 0.2
    eval_callbacks:
      heldout: __NAME__.metrics.accuracy      # printed as heldout/accuracy for every evaluated checkpoint
'''

BACKENDS = {
    "torch": {"model.py": TORCH_MODEL, "iterator.py": TORCH_ITERATOR},
    "tf": {"model.py": TF_MODEL, "iterator.py": TF_ITERATOR},
}


def skeleton(name: str, backend: str) -> dict[str, str]:
    """The files of a new project ``name``: relative path -> text."""
    files = {"__init__.py": "", "data.py": DATA, **BACKENDS[backend], "metrics.py": METRICS,
             "train.yaml": TRAIN_YAML, "eval.yaml": EVAL_YAML}
    return {path: textwrap.dedent(text).lstrip("\n").replace(PLACEHOLDER, name) for path, text in files.items()}


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow new``."""
    parser = argparse.ArgumentParser(prog="edflow new", description=__doc__.split(": ", 1)[1])
    parser.add_argument("name", metavar="NAME", help="the project folder to create; its last part is the Python "
                                                     "package name, so it must be an identifier (e.g. my_project)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="torch",
                        help="the framework of the model and iterator (default: torch)")
    return parser


def main(argv: list[str]) -> int:
    """Create the skeleton; an existing folder is never touched."""
    args = build_parser().parse_args(argv)
    target = Path(args.name)
    package = target.name
    if not package.isidentifier() or keyword.iskeyword(package):
        raise UsageError(f"'{package}' cannot be a Python package name (the configs refer to {package}.data.Dataset); "
                         f"use letters, digits and underscores, not starting with a digit, e.g. "
                         f"'{''.join(c if c.isalnum() else '_' for c in package).lstrip('0123456789') or 'project'}'.")
    if target.exists():
        raise UsageError(f"'{target}' already exists; edflow new never overwrites. Choose another name or remove it.")
    target.mkdir(parents=True)
    for relative, text in skeleton(package, args.backend).items():
        (target / relative).write_text(text, encoding="utf-8")
    emit(f"created {target}/ ({args.backend}): {', '.join(sorted(skeleton(package, args.backend)))}")
    parent = target.parent
    where = "" if str(parent) in ("", ".") else f"cd {parent} && "
    emit(f"train it:     {where}edflow -t {package}/train.yaml")
    emit(f"evaluate it:  {where}edflow -e {package}/eval.yaml -p logs/<run>")
    return 0
