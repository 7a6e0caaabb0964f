"""Resume of Keras models that make their weights at the first call (subclassed TF2 style, a Sequential or a
functional model without keras.Input-built weights in the model factory): no build call in the user's code, and the
resumed run ends bit-identical to the uninterrupted one (weights, optimizer slots, dropout seeds, generators)."""
import numpy as np
import pytest
from edcore.testing import EdflowProject
from tf_helpers import checkpoint_arrays

LAZY_PROJECT = {
    "lazyuser/__init__.py": "",
    "lazyuser/data.py": '''
        import numpy as np


        class Blobs:
            def __init__(self, config):
                rng = np.random.RandomState(0)
                self.x = rng.randn(48, 4).astype("float32")
                self.y = (self.x[:, 0] > self.x[:, 1]).astype("int64")

            def __len__(self):
                return len(self.x)

            def __getitem__(self, index):
                return {"x": self.x[index], "y": self.y[index]}
    ''',
    "lazyuser/model.py": '''
        import keras


        class Subclassed(keras.Model):
            """Layers in __init__, weights at the first call: no build call anywhere."""

            def __init__(self, config):
                super().__init__()
                self.hidden = keras.layers.Dense(8, activation="relu")
                self.dropout = keras.layers.Dropout(0.3)
                self.out = keras.layers.Dense(2)

            def call(self, x, training=False):
                return self.out(self.dropout(self.hidden(x), training=training))


        def sequential(config):
            return keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.3),
                                     keras.layers.Dense(2)])


        class Functional(keras.Model):
            """A functional model wrapped lazily: the graph is made at the first call, from the input's shape."""

            def __init__(self, config):
                super().__init__()
                self.inner = None
                self.hidden = keras.layers.Dense(8, activation="relu")
                self.out = keras.layers.Dense(2)

            def build(self, input_shape):
                inputs = keras.Input(shape=tuple(input_shape[1:]))
                self.inner = keras.Model(inputs, self.out(self.hidden(inputs)))

            def call(self, x, training=False):
                return self.inner(x, training=training)
    ''',
    "lazyuser/iterator.py": '''
        import keras
        import tensorflow as tf
        from edflow_tf import TemplateIterator, step_function


        class Iterator(TemplateIterator):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.optimizer = keras.optimizers.Adam(0.01)

            @step_function
            def train_step(self, x, y):
                with tf.GradientTape() as tape:
                    logits = self.model(x, training=True)
                    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
                gradients = tape.gradient(loss, self.model.trainable_variables)
                self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
                return {"loss": loss}

            def step_op(self, model, x, y):
                def train_op():
                    self.train_step(x, y)

                return {"train_op": train_op}
    ''',
}


@pytest.mark.parametrize("model", ["lazyuser.model.Subclassed", "lazyuser.model.sequential",
                                   "lazyuser.model.Functional"])
def test_a_model_built_at_its_first_call_resumes_bit_identically(tmp_path, model):
    config = {"dataset": "lazyuser.data.Blobs", "model": model, "iterator": "lazyuser.iterator.Iterator",
              "batch_size": 8, "num_steps": 10, "ckpt_freq": 2, "seed": 5}
    reference = EdflowProject(tmp_path / "reference")
    reference.write(LAZY_PROJECT)
    reference.config("train.yaml", **config)
    reference.run("-t", "train.yaml", timeout=300).assert_success()
    (reference_run,) = reference.runs()

    project = EdflowProject(tmp_path / "resumed")
    project.write(LAZY_PROJECT)
    project.config("train.yaml", **{**config, "num_steps": 4})
    project.run("-t", "train.yaml", timeout=300).assert_success()
    (run,) = project.runs()
    outcome = project.run("-p", str(run), "--num_steps", "10", timeout=300).assert_success()
    assert "global step 4" in outcome.output, outcome.output  # it resumed, it did not start over

    expected = checkpoint_arrays(reference_run / "train" / "checkpoints" / "0000000010")
    actual = checkpoint_arrays(run / "train" / "checkpoints" / "0000000010")
    assert sorted(actual) == sorted(expected)
    assert any(key.startswith("optimizer/") for key in expected) and any(key.startswith("model/") for key in expected)
    different = [key for key in expected if not np.array_equal(actual[key], expected[key])]
    assert not different, f"differs from the uninterrupted run: {different}"
