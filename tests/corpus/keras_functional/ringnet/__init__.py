"""A functional Keras model (keras.Input ... keras.Model(inputs, outputs)) made by a function of the config."""
