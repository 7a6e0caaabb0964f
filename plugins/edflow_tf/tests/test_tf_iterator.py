"""The TemplateIterator by hand: checkpoint round trips with optimizer state, errors for foreign checkpoints, the
training flag the model is called with, and the feeds-to-tensor conversion."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from edcore.errors import CheckpointError
from edflow_tf import TemplateIterator, step_function
from edflow_tf.plugin import to_tensors


def make_model(width=8):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(width), keras.layers.Dropout(0.5),
                             keras.layers.Dense(2)])


class Iterator(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = keras.optimizers.Adam(0.01)
        self.counter = tf.Variable(0)

    @step_function
    def train_step(self, x, y):
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        self.counter.assign_add(1)
        return {"loss": loss}

    def step_op(self, model, x, y):
        return {"train_op": lambda: self.train_step(x, y), "eval_op": lambda: model(x)}


BATCH = {"x": tf.random.stateless_normal((16, 4), seed=(1, 2)), "y": tf.constant([0, 1] * 8)}


def state(iterator):
    return [v.numpy() for v in iterator.model.variables + iterator.optimizer.variables] + [iterator.counter.numpy()]


@pytest.mark.parametrize("jit", [False, True])
def test_round_trip_restores_weights_optimizer_slots_and_seeds_into_a_fresh_iterator(tmp_path, jit):
    config = {"tf": {"jit": jit}}
    trained = Iterator(config, str(tmp_path), make_model())
    for _ in range(3):
        trained.train_step(**BATCH)
    trained.save(str(tmp_path))
    assert {"tf_state.index", "tf_objects.json"} <= set(os.listdir(tmp_path))
    fresh = Iterator(config, str(tmp_path), make_model())
    assert not fresh.optimizer.built  # slots are made lazily: restore must make them to fill them
    fresh.restore(str(tmp_path))
    assert fresh.optimizer.built and fresh.optimizer.iterations.numpy() == 3
    assert all(np.array_equal(a, b) for a, b in zip(state(fresh), state(trained)))
    # the dropout seed state is part of the model's variables: the next step is the same step
    assert trained.train_step(**BATCH)["loss"].numpy() == fresh.train_step(**BATCH)["loss"].numpy()
    assert all(np.array_equal(a, b) for a, b in zip(state(fresh), state(trained)))


def test_a_checkpoint_of_another_model_names_the_variable_and_shapes(tmp_path):
    Iterator({}, str(tmp_path), make_model(8)).save(str(tmp_path))
    with pytest.raises(CheckpointError, match=r"variable 0 of 'model' \(sequential\w*/dense\w*/kernel\) has shape "
                                              r"\(4, 16\) but the checkpoint holds shape \(4, 8\)"):
        Iterator({}, str(tmp_path), make_model(16)).restore(str(tmp_path))


def test_a_checkpoint_with_an_attribute_the_iterator_lacks(tmp_path):
    class Other(TemplateIterator):
        def step_op(self, model, **_):
            return {}

    Iterator({}, str(tmp_path), make_model()).save(str(tmp_path))
    with pytest.raises(CheckpointError, match="holds optimizer 'optimizer', variable 'counter' but Other has no such"):
        Other({}, str(tmp_path), make_model()).restore(str(tmp_path))
    with pytest.raises(CheckpointError, match="has no tf_objects.json; it was not written by edflow-tf"):
        Iterator({}, str(tmp_path / "missing"), make_model()).restore(str(tmp_path / "missing"))


def test_step_op_gets_a_model_that_defaults_to_training_and_is_never_training_in_evaluation():
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x, training=None):
            seen.append(training)
            return x

    class Mode(TemplateIterator):
        def step_op(self, model, x):
            return {"train_op": lambda: (model(x), model(x, training=False), self.model(x)),
                    "eval_op": lambda: (model(x), model(x, training=True), self.model(x))}

    x = tf.zeros((2, 3))
    training = Mode({}, "", Probe())
    training.run({"step_op": None}, {"x": x})
    Mode({"test_mode": True}, "", Probe()).run({"step_op": None}, {"x": x})
    assert seen == [True, False, True, False, False, False]
    assert isinstance(training.model, Probe)  # outside the ops, self.model is the model itself


def test_feeds_become_float32_tensors_on_the_device_nested_dicts_included():
    feeds = {"x": np.ones((2, 2)), "n": np.arange(3), "nested": {"t": tf.constant([1.0], tf.float64)},
             "name": ["a", "b"]}
    to_tensors(feeds, "/device:CPU:0", tf.float32)
    assert feeds["x"].dtype == tf.float32 and isinstance(feeds["x"], tf.Tensor)
    assert feeds["n"].dtype == tf.int64 and feeds["nested"]["t"].dtype == tf.float32
    assert feeds["name"] == ["a", "b"] and feeds["x"].device.endswith("CPU:0")


def test_feeds_already_on_the_device_stay_the_same_objects_and_float64_is_found_by_its_dtype():
    from edflow_tf.plugin import FeedConverter

    x, y = tf.zeros((2, 3)), tf.constant([1, 2], tf.int64)
    feeds = {"x": x, "y": y}
    convert = FeedConverter("/device:CPU:0", tf.float32)
    assert not convert.needs_conversion(feeds)
    convert(feeds)
    assert feeds["x"] is x and feeds["y"] is y
    wide = {"x": tf.constant(np.ones(2)), "inner": {"y": y}}  # float64 from numpy, as tf.data hands it over
    assert convert.needs_conversion(wide)
    convert(wide)
    assert wide["x"].dtype == tf.float32 and wide["inner"]["y"] is y
    kept = {"x": tf.constant(np.ones(2))}
    FeedConverter("/device:CPU:0", None)(kept)  # float_dtype: keep
    assert kept["x"].dtype == tf.float64


def test_a_tf_module_that_stores_the_config_wraps_its_lists_in_place_and_the_dump_still_works():
    """EDFlow's bug, in the form plain tf.Module still has: the config's own lists become ListWrappers."""
    import yaml
    from edcore.config import dump

    class Holder(tf.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config

    config = {"layers": [16, 8], "net": {"sizes": [1, 2]}}
    Holder(config)
    assert type(config["layers"]).__name__ == "ListWrapper"  # changed in place, as EDFlow's users saw
    with pytest.raises(yaml.representer.RepresenterError):
        yaml.safe_dump(config)
    assert yaml.safe_load(dump(config)) == {"layers": [16, 8], "net": {"sizes": [1, 2]}}


def test_devices_auto_and_cpu_resolve_and_a_missing_gpu_is_a_config_error():
    from edcore.errors import ConfigError
    from edflow_tf.settings import resolve_device

    assert resolve_device("cpu") == "/device:CPU:0"
    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    assert resolve_device("auto") == ("/device:GPU:0" if has_gpu else "/device:CPU:0")
    if not has_gpu:
        with pytest.raises(ConfigError, match=r"tf: \{device: gpu\} but TensorFlow sees no GPU here"):
            resolve_device("gpu")
