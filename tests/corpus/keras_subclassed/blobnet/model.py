import tensorflow as tf


class Classifier(tf.keras.Model):
    def __init__(self, config):
        super().__init__()
        self.hidden = tf.keras.layers.Dense(config.get("hidden_units", 32), activation="relu")
        self.dropout = tf.keras.layers.Dropout(0.2)
        self.logits = tf.keras.layers.Dense(3)

    def call(self, points, training=False):
        return self.logits(self.dropout(self.hidden(points), training=training))
