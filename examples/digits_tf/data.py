"""scikit-learn's bundled 8x8 digits (no download), split deterministically into training and held-out examples."""
import numpy as np
from sklearn.datasets import load_digits

HELDOUT_FRACTION = 0.2


def split(name):
    """The images (64 floats in [0, 1]) and labels of split ``train`` or ``heldout``; the same on every machine."""
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    cut = int(len(order) * (1 - HELDOUT_FRACTION))
    chosen = order[:cut] if name == "train" else order[cut:]
    return (digits.data[chosen] / 16.0).astype("float32"), digits.target[chosen].astype("int64")


class Digits:
    """EDFlow-style dataset: ``config["split"]`` (default ``train``); examples are ``{"image", "label"}``."""

    def __init__(self, config):
        self.images, self.labels = split(config.get("split", "train"))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"image": self.images[index], "label": self.labels[index]}
