"""scikit-learn's bundled 8x8 digits (no download). The configs take a fixed part of them with
``edcore.data.split``: ``fractions: [0.2, 0.8]`` with ``seed: 0`` holds out 359 images (part 0) and trains on
the other 1438 (part 1), the same on every machine and run."""
import numpy as np
from edcore.data import Dataset
from sklearn.datasets import load_digits


class Digits(Dataset):
    """All 1797 examples ``{"image": float32[1, 8, 8] in [0, 1], "label": int64}``; ``label`` is a label, so a
    part of the dataset has its labels without loading an image."""

    def __init__(self, config):
        digits = load_digits()
        # The pixels are counts 0..16; one channel first, as torch's Conv2d expects.
        self.images = (digits.images / 16.0).astype(np.float32)[:, None]
        self.labels = {"label": digits.target.astype(np.int64)}

    def __len__(self):
        return len(self.images)

    def get_example(self, index):
        return {"image": self.images[index]}
