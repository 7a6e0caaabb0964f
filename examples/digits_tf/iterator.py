"""Training and evaluation of the digits classifier with edflow-tf."""
import keras
import tensorflow as tf
from edflow_tf import TemplateIterator, step_function

from .data import split


class Iterator(TemplateIterator):
    """Adam on cross-entropy; every log step also reports the accuracy on the held-out split."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = keras.optimizers.Adam(self.config.get("lr", 1e-3))
        images, labels = split("heldout")
        self.heldout = (tf.constant(images), tf.constant(labels))

    @step_function
    def train_step(self, image, label):
        with tf.GradientTape() as tape:
            logits = self.model(image, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(label, logits, from_logits=True))
            replica_loss = loss / self.num_replicas  # with a strategy, the replicas' gradients are summed
        gradients = tape.gradient(replica_loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return {"loss": loss, "accuracy": accuracy(logits, label)}

    def step_op(self, model, image, label, **_):
        outputs = {}

        def train_op():
            outputs.update(self.train_step(image, label))

        def log_op():
            images, labels = self.heldout
            return {"scalars": {**outputs, "heldout_accuracy": accuracy(model(images), labels)}}

        def eval_op():
            return {"correct": tf.argmax(model(image), axis=1) == label}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}


def accuracy(logits, labels):
    return tf.reduce_mean(tf.cast(tf.argmax(logits, axis=1) == labels, tf.float32))
