"""tf tensors and variables as logged images and histograms: NHWC from a subclassed Keras model, bfloat16, uint8, a
variable the next step assigns; in training and in an evaluation, read back from the PNGs and with TensorBoard's
EventAccumulator."""
import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorboard")

FILES = {
    "pictf/__init__.py": "",
    "pictf/data.py": '''
        import numpy as np


        class Data:
            """Image i is an 8x8 grey square (NHWC) filled with VALUES[i] in [-1, 1]."""

            def __init__(self, config):
                self.values = np.linspace(-1, 1, 12).astype("float32")

            def __len__(self):
                return len(self.values)

            def __getitem__(self, index):
                return {"image": np.full((8, 8, 1), self.values[index], "float32"), "index": index}
    ''',
    "pictf/model.py": '''
        import keras


        class Net(keras.Model):
            def __init__(self, config):
                super().__init__()
                self.conv = keras.layers.Conv2D(3, 3, padding="same", activation="tanh")

            def call(self, x, training=False):
                return self.conv(x)
    ''',
    "pictf/iterator.py": '''
        import keras
        import tensorflow as tf
        from edflow_tf import TemplateIterator


        class Iterator(TemplateIterator):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.optimizer = keras.optimizers.SGD(0.1)
                self.canvas = tf.Variable(tf.zeros((2, 4, 4, 1)), trainable=False)  # assigned by every step

            def step_op(self, model, image, index):
                step = self.get_global_step()
                output = model(image)

                def train_op():
                    self.canvas.assign(tf.fill((2, 4, 4, 1), 1.0 if step % 2 == 0 else -1.0))
                    with tf.GradientTape() as tape:
                        loss = tf.reduce_mean((model(image) - image) ** 2)
                    variables = model.trainable_variables
                    self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

                def log_op():
                    return {
                        "images": {
                            "inputs": image,
                            "outputs": output,
                            "bfloat16": tf.cast(image, tf.bfloat16),
                            "uint8": tf.cast(tf.round((image + 1) * 127.5), tf.uint8),
                            "canvas": self.canvas,
                        },
                        "histograms": {"kernel": model.conv.kernel},
                    }

                def eval_op():
                    return {"output_mean": tf.reduce_mean(output, axis=(1, 2, 3))}

                return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
    ''',
}

CONFIG = {"dataset": "pictf.data.Data", "model": "pictf.model.Net", "iterator": "pictf.iterator.Iterator",
          "batch_size": 4, "num_steps": 3, "log_freq": 2, "ckpt_freq": 3, "seed": 0, "shuffle": False,
          "tensorboard": True, "images": {"padding": 0}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from edcore.testing import EdflowProject

    project = EdflowProject(tmp_path_factory.mktemp("tf_media"))
    project.write(FILES)
    project.config("train.yaml", **CONFIG)
    project.config("eval.yaml", **CONFIG)
    training = project.run("-t", "train.yaml").assert_success()
    (run,) = project.runs()
    evaluation = project.run("-e", "eval.yaml", "-p", str(run)).assert_success()
    return run, training.stderr + evaluation.stderr


def grid(path):
    return np.asarray(Image.open(path))


def expected_inputs(first):
    """The 2x2 grid of the 8x8 examples ``first..first+3`` (no shuffling), mapped from [-1, 1] to uint8."""
    values = np.rint((np.linspace(-1, 1, 12).astype("float32")[first:first + 4] + 1) * 127.5).astype(np.uint8)
    return np.kron(values.reshape(2, 2), np.ones((8, 8), np.uint8))


def test_nhwc_tf_tensors_become_grids_with_the_batch_in_order(trained):
    run, output = trained
    folder = run / "train" / "images"
    assert sorted(p.name for p in (folder / "inputs").iterdir()) == ["0000000001.png", "0000000002.png"]
    assert (grid(folder / "inputs" / "0000000001.png") == expected_inputs(0)).all()
    assert (grid(folder / "inputs" / "0000000002.png") == expected_inputs(4)).all()
    outputs = Image.open(folder / "outputs" / "0000000002.png")
    assert (outputs.mode, outputs.size) == ("RGB", (16, 16))
    assert (grid(folder / "bfloat16" / "0000000002.png") == expected_inputs(4)).all()
    assert (grid(folder / "uint8" / "0000000002.png") == expected_inputs(4)).all()
    assert "Traceback" not in output and "not logged" not in output


def test_a_variable_the_next_step_assigns_is_written_as_it_was_when_logged(trained):
    run, _ = trained
    folder = run / "train" / "images" / "canvas"
    assert (grid(folder / "0000000001.png") == 255).all()
    assert (grid(folder / "0000000002.png") == 0).all()


def test_tensorboard_has_the_images_and_the_kernel_histogram(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = trained
    events = EventAccumulator(str(run / "tensorboard" / "train"), size_guidance={"images": 0, "histograms": 0})
    events.Reload()
    inputs = events.Images("inputs")
    assert [e.step for e in inputs] == [1, 2]
    assert (np.asarray(Image.open(io.BytesIO(inputs[1].encoded_image_string))) == expected_inputs(4)).all()
    histogram = events.Histograms("kernel")[-1].histogram_value
    assert histogram.num == 27 and sum(histogram.bucket) == 27


def test_an_evaluation_logs_its_first_batch(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = trained
    (folder,) = (run / "eval").iterdir()
    assert (grid(folder / "0000000003" / "images" / "inputs" / "0000000003.png") == expected_inputs(0)).all()
    events = EventAccumulator(str(run / "tensorboard" / "eval_eval"), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("outputs")] == [3]
