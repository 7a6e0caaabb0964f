"""Images from the log op: checking their layout, one grid per batch, PNG encoding and the writer thread.

The log op returns ``{"images": {key: batch}}`` with batches as torch or tf tensors or numpy arrays. The core turns
them into numpy arrays on the training thread (hook ``edflow_to_numpy``, on logged steps only); everything after
that, the grid, the PNG encoding (Pillow) and the writes, runs on a :class:`MediaWriter` thread, because encoding
one grid costs more than the 1 ms per logged step the loop may spend (``benchmarks/media_cost.py``).

Accepted images: a batch ``(N, H, W, C)`` or ``(N, C, H, W)``, one image ``(H, W, C)``, ``(C, H, W)`` or ``(H, W)``,
with 1 (grey), 3 (RGB) or 4 (RGBA) channels; floats in ``[-1, 1]`` as in EDFlow (clipped), ``uint8`` in ``[0, 255]``
or booleans.
"""
from __future__ import annotations

import io
import logging
import math
import os
import queue
import re
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

log = logging.getLogger("edflow")

CHANNELS = (1, 3, 4)
MAX_PER_GRID = 64
PADDING = 2  # pixels between the images of a grid: digits on black touch their neighbours without it
ACCEPTED = ("a batch (N, H, W, C) or (N, C, H, W), or one image (H, W, C), (C, H, W) or (H, W), with 1, 3 or 4 "
            "channels, as floats in [-1, 1], uint8 or bool")


class ImageError(ValueError):
    """An image whose shape or dtype cannot be shown; the message names the key, the shape and what is accepted."""


def as_nhwc(key: str, array: np.ndarray) -> np.ndarray:
    """``array`` as a batch ``(N, H, W, C)`` (a view)."""
    shape = tuple(array.shape)
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim in (3, 4):
        array = _channels_last(array if array.ndim == 4 else array[None])
    else:
        array = None
    if array is None or 0 in array.shape:
        hint = " (a batch of grey images needs its channel axis: x[:, None] or x[..., None])" if len(shape) == 3 else ""
        raise ImageError(f"logged image '{key}' has shape {shape}; edflow shows {ACCEPTED}{hint}.")
    return array


def _channels_last(batch: np.ndarray) -> np.ndarray | None:
    last, first = batch.shape[3] in CHANNELS, batch.shape[1] in CHANNELS
    if last and first:
        # Both fit, e.g. (8, 4, 4, 3) or (8, 3, 4, 4): the channel axis is the smaller of the two candidates; when
        # they are equal, as in (8, 3, 32, 3), channels last (EDFlow's layout) is taken.
        first = batch.shape[1] < batch.shape[3]
        last = not first
    if last:
        return batch
    if first:
        return np.moveaxis(batch, 1, 3)
    return None


def check_dtype(key: str, batch: np.ndarray) -> np.ndarray:
    """``batch`` itself when :func:`to_uint8` can map its dtype, else an :class:`ImageError`."""
    if batch.dtype == np.uint8 or batch.dtype == np.bool_ or np.issubdtype(batch.dtype, np.floating):
        return batch
    raise ImageError(f"logged image '{key}' of shape {tuple(batch.shape)} has dtype {batch.dtype}; edflow shows "
                     f"{ACCEPTED} (scale integer images to uint8 or to floats in [-1, 1]).")


def to_uint8(key: str, batch: np.ndarray) -> np.ndarray:
    """Map floats in [-1, 1] (clipped; NaN becomes -1) and booleans to uint8; uint8 stays as it is."""
    batch = check_dtype(key, batch)
    if batch.dtype == np.uint8:
        return batch
    if batch.dtype == np.bool_:
        return batch.astype(np.uint8) * 255
    values = np.nan_to_num(batch.astype(np.float32), nan=-1.0, posinf=1.0, neginf=-1.0)
    return np.rint((np.clip(values, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of the grid of ``count`` images: as square as possible, filled row by row."""
    columns = max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / columns), columns


def make_grid(batch: np.ndarray, max_per_grid: int = MAX_PER_GRID, padding: int = PADDING) -> np.ndarray:
    """The first ``max_per_grid`` images of an ``(N, H, W, C)`` uint8 batch side by side, row by row, ``padding``
    white pixels between neighbours (none around the grid); the cells after the last image are black."""
    batch = batch[:max_per_grid]
    count, height, width, channels = batch.shape
    rows, columns = grid_shape(count)
    grid = np.full((rows * (height + padding) - padding, columns * (width + padding) - padding, channels), 255,
                   dtype=np.uint8)
    for index in range(rows * columns):
        row, column = divmod(index, columns)
        top, left = row * (height + padding), column * (width + padding)
        grid[top:top + height, left:left + width] = batch[index] if index < count else 0
    return grid


def encode_png(grid: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, C)`` uint8 image (grey for one channel)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(grid[:, :, 0] if grid.shape[2] == 1 else grid))  # L, RGB, RGBA
    stream = io.BytesIO()
    image.save(stream, format="PNG", compress_level=1)  # level 1: a fifth of the default's time, files ~10% larger
    return stream.getvalue()


def image_path(folder: Path, key: str, step: int) -> Path:
    """``folder/<key>/<step:010d>.png``: one folder per key (``/`` in keys nests folders), names sortable by step."""
    parts = [re.sub(r"[^A-Za-z0-9_.=+-]", "_", part) for part in key.split("/") if part not in ("", ".", "..")]
    return folder.joinpath(*(parts or ["image"])) / f"{int(step):010d}.png"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a crash leaves no truncated PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


def flatten(entries: Any, prefix: str = "") -> dict:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``; a single image is named ``image``."""
    from edcore.outputs import flatten_keys

    return flatten_keys(entries, "image", prefix)


class MediaWriter:
    """A daemon thread that runs write jobs in order; :meth:`drain` waits for the jobs queued so far.

    The queue is bounded, so a loop that logs faster than the disk takes images waits instead of filling memory. A
    failing job is reported once per kind of failure and does not stop the thread or the training.
    """

    def __init__(self, max_pending: int = 16) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.thread: threading.Thread | None = None
        self.reported: set[str] = set()

    def submit(self, job: Callable[[], None]) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._work, name="edflow-media", daemon=True)
            self.thread.start()
        self.queue.put(job)

    def drain(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.queue.join()

    def _work(self) -> None:
        while True:
            job = self.queue.get()
            try:
                job()
            except Exception as err:  # noqa: BLE001 - a full disk must not end the training
                kind = f"{type(err).__name__}: {err}"
                if kind not in self.reported:
                    self.reported.add(kind)
                    log.warning("writing logged images failed (%s); training goes on", kind)
            finally:
                self.queue.task_done()
