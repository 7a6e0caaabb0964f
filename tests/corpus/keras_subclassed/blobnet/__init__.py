"""A subclassed tf.keras.Model in the usual TF2 style: layers made in __init__, weights at the first call."""
