import keras
import tensorflow as tf
from edflow_tf import TemplateIterator


class Iterator(TemplateIterator):
    """Eager steps (no tf: {jit: true}); RMSprop."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = keras.optimizers.RMSprop(self.config.get("learning_rate", 0.01))

    def step_op(self, model, point, label):
        outputs = {}

        def train_op():
            with tf.GradientTape() as tape:
                logits = model(point, training=True)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(label, logits, from_logits=True))
            gradients = tape.gradient(loss, model.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            outputs["loss"] = loss

        def log_op():
            return {"scalars": outputs}

        def eval_op():
            return {"inside": tf.argmax(model(point), axis=1)}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
