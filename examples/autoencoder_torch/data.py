"""scikit-learn's bundled 8x8 digits (no download) as 16x16 images in [-1, 1], EDFlow's image convention.

The configs split them as the digits classifier's do (``edcore.data.split``, fractions [0.2, 0.8], seed 0): the
same images are held out.
"""
import numpy as np
from edcore.data import Dataset
from sklearn.datasets import load_digits


class Digits(Dataset):
    """All 1797 examples ``{"image": float32[1, 16, 16] in [-1, 1], "label": int64}``: each pixel doubled in both
    directions, so the logged grids are large enough to look at."""

    def __init__(self, config):
        digits = load_digits()
        images = digits.images / 8.0 - 1.0  # counts 0..16 -> [-1, 1]
        self.images = images.repeat(2, axis=1).repeat(2, axis=2).astype(np.float32)[:, None]
        self.labels = {"label": digits.target.astype(np.int64)}

    def __len__(self):
        return len(self.images)

    def get_example(self, index):
        return {"image": self.images[index]}
