import numpy as np


def mean_error(eval_dir, dataset, outputs, config):
    """How far the mean of the generated points is from the mean of the real ones."""
    fake = np.asarray(outputs["fake"])
    return {"mean_error": float(np.linalg.norm(fake.mean(axis=0) - dataset.points.mean(axis=0)))}
