"""Built-in seeding of Python's and NumPy's generators, and their states in every checkpoint."""
from __future__ import annotations

import json
import os
import random

import numpy as np

from edcore.hookspecs import hookimpl

STATE_FILE = "rng_python_numpy.json"


@hookimpl(trylast=True)
def edflow_seed(seed, config):
    random.seed(seed)
    np.random.seed(seed % 2**32)


@hookimpl
def edflow_save_checkpoint(iterator, path, global_step):
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }
    with open(os.path.join(path, STATE_FILE), "w", encoding="utf-8") as stream:
        json.dump(state, stream)


@hookimpl
def edflow_restore_checkpoint(iterator, path, global_step):
    file = os.path.join(path, STATE_FILE)
    if not os.path.exists(file):
        return
    with open(file, encoding="utf-8") as stream:
        state = json.load(stream)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
