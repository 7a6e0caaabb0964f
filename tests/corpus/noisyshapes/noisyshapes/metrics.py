import numpy as np


def accuracy(eval_dir, dataset, outputs, config):
    return {"accuracy": float(np.mean(np.asarray(outputs["prediction"]) == dataset.labels))}
