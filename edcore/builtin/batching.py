"""Built-in batching: stack numpy arrays in the main process (the fallback when no backend provides batches)."""
from __future__ import annotations

from edcore.batching import NumpyBatches
from edcore.hookspecs import hookimpl


@hookimpl(trylast=True)
def edflow_batches(dataset, config, mode):
    training = mode == "train"
    return NumpyBatches(
        dataset,
        config["batch_size"],
        seed=config.get("seed") or 0,
        shuffle=training and config.get("shuffle", True),
        drop_last=training and config.get("drop_last", False),
        name=str(config.get("dataset")),
    )
