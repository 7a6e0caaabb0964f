"""A small Keras classifier for 8x8 digits."""
import keras


class Classifier(keras.Model):
    """64 inputs, one hidden layer with dropout, 10 logits; built at once so checkpoints restore into it."""

    def __init__(self, config):
        super().__init__()
        self.config = config  # Keras wraps it (TrackedDict); edflow's config dumps still work
        width = config.get("hidden", 128)
        self.hidden = keras.layers.Dense(width, activation="relu")
        self.dropout = keras.layers.Dropout(config.get("dropout", 0.1))
        self.logits = keras.layers.Dense(10)
        self.build((None, 64))

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.logits.build((None, self.hidden.units))
        super().build(input_shape)

    def call(self, images, training=False):
        return self.logits(self.dropout(self.hidden(images), training=training))
