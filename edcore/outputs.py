"""The stored outputs of one evaluation pass: what the eval op returned, per example, readable without model code.

Layout of ``eval/<timestamp>_<name>/<global_step>/``::

    outputs.json          the index: format, global step, number of examples, one entry per key
    <key>.npy             one array per key, first axis = example (dataset order), when all examples agree in
                          shape and dtype ("layout": "stacked")
    <key>/0000000.npy ... one file per example otherwise ("layout": "per_example")
    metrics.json          the scalars the callbacks returned

Nested keys (``{"a": {"b": x}}``) are stored as ``a/b``. Everything is plain ``.npy`` (``allow_pickle`` is never
needed), so ``numpy.load`` or :func:`load_outputs` reads it with numpy alone, and ``edcore.data.MetaDataset``
reads it as a dataset (stacked keys are its labels, per-example keys are loaded per example).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from edcore.errors import EdflowError, UserCodeError

FORMAT = "edflow-eval-outputs/1"
INDEX = "outputs.json"
CHUNKS = ".chunks"  # batches spilled while a pass runs; removed when it is complete
METRICS = "metrics.json"
EXAMPLE_DIGITS = 7
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def to_numpy(value: Any) -> np.ndarray:
    """A framework tensor or a Python value as a numpy array (tensors are moved to the CPU first)."""
    for method in ("detach", "cpu"):  # torch; duck-typed so edcore never imports a framework
        if hasattr(value, method) and callable(getattr(value, method)):
            value = getattr(value, method)()
    if hasattr(value, "numpy") and callable(value.numpy):  # torch and TensorFlow eager tensors
        value = value.numpy()
    return np.asarray(value)


def flatten_outputs(outputs: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``; a value that is not a dict is stored under ``output``."""
    return flatten_keys(outputs, "output", prefix)


def flatten_keys(entries: Any, single: str, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``, for what a step logs or outputs; a value that is not a dict is
    named ``single``. (The configs' own flattening, which keeps lists and empty dicts whole, is in commands.diff.)"""
    if not isinstance(entries, Mapping):
        return {prefix.rstrip("/") or single: entries}
    flat: dict[str, Any] = {}
    for key, value in entries.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_keys(value, single, name + "/"))
        else:
            flat[name] = value
    return flat


class OutputWriter:
    """Collects the eval op's batched outputs and writes them per example when the pass is complete.

    Each batch is spilled to a chunk file at once, so memory holds one batch, not the outputs of the whole
    dataset; :meth:`close` assembles the chunks into the final files and removes them.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.spill = self.folder / CHUNKS
        self.chunks: dict[str, list[tuple[Path, tuple, np.dtype]]] = {}  # key -> (file, shape, dtype) per batch
        self.num_examples = 0
        self.num_batches = 0

    def add(self, outputs: Any) -> None:
        """Add the outputs of one batch: every value has the batch as its first axis."""
        if outputs is None:
            return
        flat = flatten_outputs(outputs)
        if self.chunks and set(flat) != set(self.chunks):
            raise UserCodeError(f"eval_op returned the keys {sorted(flat)} for one batch and {sorted(self.chunks)} "
                                f"for an earlier one; every batch must return the same keys.")
        batch_size = None
        arrays = {}
        for key, value in flat.items():
            for part in key.split("/"):
                if not _SAFE_KEY.match(part) or part in (".", ".."):
                    raise UserCodeError(f"eval_op output key '{key}' cannot be a file name; use letters, digits and "
                                        f"'_', '.', '-' only.")
            array = to_numpy(value)
            if array.dtype == object:
                raise UserCodeError(f"eval_op output '{key}' holds Python objects ({type(value).__name__}); stored "
                                    f"outputs must be numbers, booleans or strings (arrays or tensors).")
            if array.ndim == 0:
                raise UserCodeError(
                    f"eval_op output '{key}' is a single value per batch; outputs are stored per example, so every "
                    f"value needs the batch as its first axis. Return per-example values (e.g. the loss of each "
                    f"example) and compute averages in an eval callback.")
            if batch_size is not None and len(array) != batch_size:
                raise UserCodeError(f"eval_op outputs disagree in batch size: '{key}' has {len(array)} entries, "
                                    f"others {batch_size}.")
            batch_size = len(array)
            arrays[key] = array
        self.spill.mkdir(parents=True, exist_ok=True)
        for position, (key, array) in enumerate(arrays.items()):
            file = self.spill / f"{self.num_batches:07d}-{position}.npy"
            np.save(file, array, allow_pickle=False)
            self.chunks.setdefault(key, []).append((file, array.shape, array.dtype))
        self.num_examples += batch_size or 0
        self.num_batches += 1

    def close(self, metadata: Mapping | None = None) -> dict:
        """Write the arrays and the index; return the index."""
        self.folder.mkdir(parents=True, exist_ok=True)
        keys: dict[str, dict] = {}
        for key, chunks in self.chunks.items():
            shapes = {shape[1:] for _file, shape, _dtype in chunks}
            kinds = {dtype.kind for _file, _shape, dtype in chunks}
            target = self.folder.joinpath(*key.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            if len(shapes) == 1 and len(kinds) == 1:
                dtype = np.result_type(*(dtype for _file, _shape, dtype in chunks))
                shape = (self.num_examples, *shapes.pop())
                stacked = np.lib.format.open_memmap(target.with_name(target.name + ".npy"), mode="w+",
                                                    dtype=dtype, shape=shape)
                start = 0
                for file, chunk_shape, _dtype in chunks:  # one chunk in memory at a time
                    stacked[start:start + chunk_shape[0]] = np.load(file, allow_pickle=False)
                    start += chunk_shape[0]
                stacked.flush()
                del stacked
                keys[key] = {"layout": "stacked", "file": f"{key}.npy", "dtype": str(dtype), "shape": list(shape)}
            else:  # ragged: one file per example
                target.mkdir(exist_ok=True)
                index = 0
                for file, _shape, _dtype in chunks:
                    for example in np.load(file, allow_pickle=False):
                        np.save(target / f"{index:0{EXAMPLE_DIGITS}d}.npy", example, allow_pickle=False)
                        index += 1
                keys[key] = {"layout": "per_example", "folder": key, "count": index}
        shutil.rmtree(self.spill, ignore_errors=True)
        index = {"format": FORMAT, "num_examples": self.num_examples, "keys": keys, **(metadata or {})}
        write_json(self.folder / INDEX, index)
        return index


class EvalOutputs(Mapping):
    """The stored outputs of one pass: ``outputs["key"]`` is an array (first axis = example) or, for ragged keys,
    a list of arrays; ``outputs.example(i)`` is example ``i`` as a dict; ``num_examples``, ``global_step``,
    ``folder`` and ``metrics`` describe the pass."""

    def __init__(self, folder: Path, index: dict) -> None:
        self.folder = folder
        self.index = index
        self.num_examples: int = index["num_examples"]
        self.global_step: int | None = index.get("global_step")
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._cache:
            entry = self.index["keys"][key]
            if entry["layout"] == "stacked":
                self._cache[key] = np.load(self.folder / entry["file"], mmap_mode="r", allow_pickle=False)
            else:
                folder = self.folder / entry["folder"]
                self._cache[key] = [np.load(folder / f"{i:0{EXAMPLE_DIGITS}d}.npy", allow_pickle=False)
                                    for i in range(entry["count"])]
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.index["keys"])

    def __len__(self) -> int:
        return len(self.index["keys"])

    def example(self, position: int) -> dict:
        """All stored outputs of the example at ``position`` (dataset order)."""
        return {key: self[key][position] for key in self}

    @property
    def metrics(self) -> dict:
        path = self.folder / METRICS
        return json.loads(path.read_text()) if path.exists() else {}


def load_outputs(folder: str | os.PathLike) -> EvalOutputs:
    """Open the stored outputs of one evaluation pass (``eval/<timestamp>_<name>/<global_step>/``)."""
    folder = Path(folder)
    try:
        index = json.loads((folder / INDEX).read_text())
    except FileNotFoundError as err:
        raise EdflowError(f"'{folder}' holds no evaluation outputs: it has no {INDEX}. Pass a folder like "
                          f"RUN/eval/<timestamp>_<name>/<global_step>.") from err
    except (OSError, ValueError) as err:
        raise EdflowError(f"'{folder / INDEX}' cannot be read: {err}") from err
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise EdflowError(f"'{folder / INDEX}' is not an edflow outputs index (format '{FORMAT}' expected).")
    return EvalOutputs(folder, index)


def write_json(path: Path, data: Any) -> None:
    """Write a small JSON file atomically."""
    from edcore.project import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True, default=str))
