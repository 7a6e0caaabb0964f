import tensorflow as tf
from edflow_tf import TemplateIterator, step_function


class Iterator(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = tf.keras.optimizers.Adam(self.config.get("learning_rate", 0.01))
        self.loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @step_function
    def train_step(self, point, label):
        with tf.GradientTape() as tape:
            loss = self.loss(label, self.model(point, training=True))
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return {"loss": loss}

    def step_op(self, model, point, label):
        outputs = {}

        def train_op():
            outputs.update(self.train_step(point, label))

        def log_op():
            return {"scalars": outputs}

        def eval_op():
            return {"prediction": tf.argmax(model(point), axis=1)}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
