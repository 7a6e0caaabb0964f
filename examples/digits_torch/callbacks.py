"""Evaluation callbacks: called as ``fn(eval_dir, dataset, outputs, config)``, returning a dict of scalars."""
import numpy as np


def accuracy(eval_dir, dataset, outputs, config):
    """Share of held-out images whose predicted class (the eval op's ``prediction``) is the label."""
    predictions = np.asarray(outputs["prediction"]).reshape(-1)
    labels = np.asarray(dataset.labels["label"]).reshape(-1)  # labels: no image is loaded for them
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} examples")
    return {"accuracy": float(np.mean(predictions == labels))}
