import numpy as np


class Ring:
    """Points in the square [-2, 2]^2, labelled 1 inside the unit circle; evaluation gets other points."""

    def __init__(self, config):
        rng = np.random.RandomState(1 if config.get("test_mode") else 0)
        self.points = rng.uniform(-2, 2, (config.get("num_points", 128), 2))  # float64, as numpy makes them
        self.labels = (np.hypot(*self.points.T) < 1).astype("int64")

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"point": self.points[index], "label": self.labels[index]}
