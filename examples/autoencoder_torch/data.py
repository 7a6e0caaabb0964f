"""scikit-learn's bundled 8x8 digits (no download) as 16x16 images in [-1, 1], EDFlow's image convention.

The split is the digits classifier's (examples.digits_torch.data): the same images are held out.
"""
import numpy as np
from sklearn.datasets import load_digits

from examples.digits_torch.data import split_indices


class Digits:
    """Examples ``{"image": float32[1, 16, 16] in [-1, 1], "label": int64}``: each pixel doubled in both
    directions, so the logged grids are large enough to look at."""

    part = "train"

    def __init__(self, config):
        digits = load_digits()
        train, held_out = split_indices(len(digits.target))
        chosen = train if self.part == "train" else held_out
        images = digits.images[chosen] / 8.0 - 1.0  # counts 0..16 -> [-1, 1]
        self.images = images.repeat(2, axis=1).repeat(2, axis=2).astype(np.float32)[:, None]
        self.labels = digits.target[chosen].astype(np.int64)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"image": self.images[index], "label": self.labels[index]}


class DigitsTrain(Digits):
    part = "train"


class DigitsHeldOut(Digits):
    part = "held_out"
