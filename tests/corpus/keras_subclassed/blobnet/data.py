import numpy as np


class Blobs:
    """Points of three classes around (0, 3), (3, 0) and (-3, -3); evaluation (test_mode) gets other points."""

    centres = np.array([[0, 3], [3, 0], [-3, -3]], dtype="float32")

    def __init__(self, config):
        rng = np.random.RandomState(1 if config.get("test_mode") else 0)
        self.labels = rng.randint(0, 3, config.get("num_points", 120)).astype("int64")
        self.points = (self.centres[self.labels] + rng.randn(len(self.labels), 2)).astype("float32")

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"point": self.points[index], "label": self.labels[index]}
