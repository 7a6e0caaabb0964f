"""One user project per backend for the evaluation tests: the same data, callbacks and configs, with the model and
iterator written for each backend. A backend's tests run when its package is installed.

Every project trains a tiny classifier on 48 examples (3 batches of 16); ``eval_op`` returns the logits and the
labels of each example. Config keys the iterators read: ``step_sleep`` (seconds per training step, to make the
training slower than its evaluators), ``fail_at_step`` (the training raises in that step) and ``wait_for_evaluation:
{at_step: 7, step: 3, name: eval}`` (training pauses at global step 7 until evaluation ``eval`` has recorded checkpoint
3: it would time out if the evaluator did not run while the training does).
"""
from __future__ import annotations

import importlib.util

SHARED_FILES = {
    "evalpkg/__init__.py": "",
    "evalpkg/data.py": '''
        import numpy as np


        class Blobs:
            """Two classes of 4-d points; the evaluation uses other points than the training (test_mode)."""

            def __init__(self, config):
                rng = np.random.RandomState(1 if config.get("test_mode") else 0)
                self.x = rng.randn(config.get("n_examples", 48), 4).astype("float32")
                self.y = (self.x[:, 0] + self.x[:, 1] > 0).astype("int64")

            def __len__(self):
                return len(self.x)

            def __getitem__(self, index):
                return {"x": self.x[index], "y": self.y[index], "index": index}
    ''',
    "evalpkg/waiting.py": '''
        import json
        import time


        def pause_for_evaluation(iterator):
            """Block the training at ``at_step`` until the named evaluation has recorded checkpoint ``step``."""
            wait = iterator.config.get("wait_for_evaluation")
            if not wait or iterator.get_global_step() != wait["at_step"]:
                return
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                for path in iterator.project.eval.glob(f"*_{wait['name']}/metrics.jsonl"):
                    if any(json.loads(line)["global_step"] == wait["step"] for line in path.read_text().splitlines()):
                        return
                time.sleep(0.1)
            raise TimeoutError("the evaluator did not evaluate while the training was running")
    ''',
    # Callbacks use numpy only: they also run in `edflow eval-outputs`, without the model code.
    "evalpkg/callbacks.py": '''
        import time

        import numpy as np


        def accuracy(eval_dir, dataset, outputs, config):
            labels = np.array([dataset[i]["y"] for i in range(len(dataset))])
            predicted = np.argmax(outputs["logits"], axis=1)
            return {"accuracy": float(np.mean(predicted == labels)),
                    "labels_match": float(np.array_equal(outputs["label"], labels))}


        def slow(eval_dir, dataset, outputs, config):
            time.sleep(config["sleep_seconds"])
            return {"slept": config["sleep_seconds"]}


        def crash(eval_dir, dataset, outputs, config):
            if outputs.global_step >= config["crash_at_step"]:
                raise RuntimeError(f"crashed on purpose at global step {outputs.global_step}")
            return {"survived": 1}
    ''',
}

BACKEND_FILES = {
    "torch": {
        "evalpkg/model.py": '''
            import torch


            class Net(torch.nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.layers = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

                def forward(self, x):
                    return self.layers(x)
        ''',
        "evalpkg/iterator.py": '''
            import time

            import torch
            from edflow_torch import TemplateIterator

            from evalpkg.waiting import pause_for_evaluation


            class Iterator(TemplateIterator):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

                def step_op(self, model, x, y, index):
                    logits = model(x)

                    def train_op():
                        pause_for_evaluation(self)
                        time.sleep(self.config.get("step_sleep", 0))
                        if self.get_global_step() == self.config.get("fail_at_step"):
                            raise RuntimeError("training crashed on purpose")
                        loss = torch.nn.functional.cross_entropy(logits, y)
                        self.optimizer.zero_grad()
                        loss.backward()
                        self.optimizer.step()

                    def log_op():
                        return {"scalars": {"loss": torch.nn.functional.cross_entropy(logits, y)}}

                    def eval_op():
                        return {"logits": logits, "label": y}

                    return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
        ''',
        "base.yaml": """\
            dataset: evalpkg.data.Blobs
            model: evalpkg.model.Net
            iterator: evalpkg.iterator.Iterator
            batch_size: 16
            seed: 0
            log_freq: 3
            progress: false
            torch:
              device: cpu
              num_workers: 0
        """,
    },
    "tf": {
        "evalpkg/model.py": '''
            import tensorflow as tf


            def make_net(config):
                return tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(16, activation="relu"),
                                            tf.keras.layers.Dense(2)])
        ''',
        "evalpkg/iterator.py": '''
            import time

            import tensorflow as tf
            from edflow_tf import TemplateIterator

            from evalpkg.waiting import pause_for_evaluation


            class Iterator(TemplateIterator):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    self.optimizer = tf.keras.optimizers.SGD(0.1)

                def step_op(self, model, x, y, index):
                    def loss_of(logits):
                        return tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

                    def train_op():
                        pause_for_evaluation(self)
                        time.sleep(self.config.get("step_sleep", 0))
                        if self.get_global_step() == self.config.get("fail_at_step"):
                            raise RuntimeError("training crashed on purpose")
                        variables = self._raw_model.trainable_variables
                        with tf.GradientTape() as tape:
                            loss = loss_of(model(x))
                        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

                    def log_op():
                        return {"scalars": {"loss": loss_of(model(x))}}

                    def eval_op():
                        return {"logits": model(x), "label": y}

                    return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
        ''',
        "base.yaml": """\
            dataset: evalpkg.data.Blobs
            model: evalpkg.model.make_net
            iterator: evalpkg.iterator.Iterator
            batch_size: 16
            seed: 0
            log_freq: 3
            progress: false
        """,
    },
}

#: Overrides that make the backend load data in worker processes (for the tests that look for leftover processes).
WORKER_OVERRIDES = {"torch": ["--torch/num_workers", "1"], "tf": []}

#: The backend's distribution package, by backend name.
PACKAGES = {"torch": "edflow_torch", "tf": "edflow_tf"}

CONFIGS = {
    "train.yaml": "num_steps: 12\nckpt_freq: 3\n",
    "eval.yaml": "eval_callbacks:\n  acc: evalpkg.callbacks.accuracy\n",
    "slow.yaml": "sleep_seconds: 1.0\neval_callbacks:\n  acc: evalpkg.callbacks.accuracy\n  wait: evalpkg.callbacks.slow\n",
    "crash.yaml": "crash_at_step: 6\neval_callbacks:\n  boom: evalpkg.callbacks.crash\n",
}


def installed_backends() -> list[str]:
    """The backends whose package is installed here."""
    return [name for name, package in PACKAGES.items() if importlib.util.find_spec(package) is not None]


def write_project(project, backend: str) -> None:
    """Write the shared files, the backend's model and iterator, and the configs into an EdflowProject."""
    project.write({**SHARED_FILES, **BACKEND_FILES[backend], **CONFIGS})
