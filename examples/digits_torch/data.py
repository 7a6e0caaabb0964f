"""scikit-learn's bundled 8x8 digits (no download), split once into a training and a held-out part."""
import numpy as np
from sklearn.datasets import load_digits

#: Share of the 1797 images kept out of training; the split is fixed (seeded), not drawn per run.
HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 0


def split_indices(num_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out indices) of a fixed permutation, the same on every machine and run."""
    order = np.random.default_rng(SPLIT_SEED).permutation(num_examples)
    held_out = int(round(num_examples * HELD_OUT_FRACTION))
    return np.sort(order[held_out:]), np.sort(order[:held_out])


class Digits:
    """Examples ``{"image": float32[1, 8, 8] in [0, 1], "label": int64}``."""

    part = "train"

    def __init__(self, config):
        digits = load_digits()
        train, held_out = split_indices(len(digits.target))
        chosen = train if self.part == "train" else held_out
        # The pixels are counts 0..16; one channel first, as torch's Conv2d expects.
        self.images = (digits.images[chosen] / 16.0).astype(np.float32)[:, None]
        self.labels = digits.target[chosen].astype(np.int64)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"image": self.images[index], "label": self.labels[index]}


class DigitsTrain(Digits):
    """The 80% used for training."""

    part = "train"


class DigitsHeldOut(Digits):
    """The 20% never trained on, for evaluation."""

    part = "held_out"
