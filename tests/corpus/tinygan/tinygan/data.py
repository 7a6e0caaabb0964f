import numpy as np


class Points:
    """Samples of a 2-d Gaussian centred at (2, -1); evaluation (test_mode) gets other samples of it."""

    mean = np.array([2.0, -1.0], dtype="float32")

    def __init__(self, config):
        rng = np.random.RandomState(1 if config.get("test_mode") else 0)
        count = config.get("num_points", 256)
        self.points = (self.mean + 0.5 * rng.randn(count, 2)).astype("float32")

    def __len__(self):
        return len(self.points)

    def __getitem__(self, index):
        return {"real": self.points[index]}
