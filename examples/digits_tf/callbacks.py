"""Evaluation callbacks: called as ``fn(eval_dir, dataset, outputs, config)``, returning a dict of scalars."""
import numpy as np


def accuracy(eval_dir, dataset, outputs, config):
    """Share of held-out images classified correctly (the eval op's per-example ``correct``)."""
    correct = np.asarray(outputs["correct"]).reshape(-1)
    if len(correct) != len(dataset):
        raise ValueError(f"{len(correct)} results for {len(dataset)} examples")
    return {"accuracy": float(np.mean(correct))}
