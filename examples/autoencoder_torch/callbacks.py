"""Evaluation callback: called as ``fn(eval_dir, dataset, outputs, config)``, returning a dict of scalars."""
import numpy as np


def reconstruction_error(eval_dir, dataset, outputs, config):
    """Mean squared error of the held-out reconstructions (pixels in [-1, 1])."""
    errors = np.asarray(outputs["squared_error"]).reshape(-1)
    if len(errors) != len(dataset):
        raise ValueError(f"{len(errors)} errors for {len(dataset)} examples")
    return {"mse": float(errors.mean())}
