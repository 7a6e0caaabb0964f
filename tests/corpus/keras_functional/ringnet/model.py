import keras


def build_model(config):
    """The model: called as build_model(config), like a class."""
    inputs = keras.Input(shape=(2,), name="point")
    hidden = inputs
    for width in config.get("widths", [16, 16]):
        hidden = keras.layers.Dense(width, activation="tanh")(hidden)
    hidden = keras.layers.Dropout(0.1)(hidden)
    outputs = keras.layers.Dense(2, name="logits")(hidden)
    return keras.Model(inputs, outputs, name="ringnet")
