"""Built-in media logging: the log op's images as PNG grids in the run folder and in TensorBoard, its histograms in
TensorBoard.

Training writes ``train/images/<key>/<global_step:010d>.png`` and ``RUN/tensorboard/train``; an evaluation writes
``<evaluation folder>/<global_step>/images/<key>/<global_step:010d>.png`` for the first batch of each pass and
``RUN/tensorboard/eval_<name>``. The grids are made, encoded and written on a :class:`edcore.media.MediaWriter`
thread; the training thread only hands over the numpy arrays the core converted.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edcore import media
from edcore.builtin import tensorboard as builtin_tensorboard
from edcore.hookspecs import hookimpl

log = logging.getLogger("edflow")


def settings(config: dict) -> dict:
    """``images: {max_per_grid: 64, padding: 2}``."""
    return {"max_per_grid": media.MAX_PER_GRID, "padding": media.PADDING, **(config.get("images") or {})}


class MediaLogger:
    def __init__(self) -> None:
        self.project: Any = None
        self.images_dir: Path | None = None
        self.logdir: Path | None = None  # TensorBoard; None when TensorBoard is off
        self.max_per_grid = media.MAX_PER_GRID
        self.padding = media.PADDING
        self.writer = media.MediaWriter()
        self.events: Any = None  # the shared TensorBoard writer of logdir, acquired at the first image
        self.tensorboard_on = False
        self.warned: set = set()

    @hookimpl(trylast=True)
    def edflow_to_numpy(self, value):
        return np.array(value)  # a copy: the writer thread reads it while the next steps run

    @hookimpl
    def edflow_project_init(self, project, config, mode):
        self.project = project
        chosen = settings(config)
        self.max_per_grid, self.padding = int(chosen["max_per_grid"]), int(chosen["padding"])
        tensorboard_on = builtin_tensorboard.enabled(config)
        if mode == "train":
            self.images_dir = project.train / "images"
            self.logdir = project.root / "tensorboard" / "train" if tensorboard_on else None
        self.tensorboard_on = tensorboard_on  # in evaluations the folders come with each pass

    @hookimpl
    def edflow_before_evaluation(self, iterator, global_step, eval_dir):
        self.writer.drain()
        self.images_dir = Path(eval_dir) / "images"
        name = getattr(iterator.runtime, "evaluation", None)
        logdir = builtin_tensorboard.eval_logdir(self.project, name) if name and self.tensorboard_on else None
        if logdir != self.logdir:
            self._release()
            self.logdir = logdir

    @hookimpl
    def edflow_log(self, global_step, logs, mode):
        if self.images_dir is None:
            return
        images, histograms = logs.get("images") or {}, logs.get("histograms") or {}
        batches = {}
        for key, array in images.items():  # only views and checks here, on the training thread
            try:
                batches[key] = media.check_dtype(key, media.as_nhwc(key, array)[: self.max_per_grid])
            except media.ImageError as err:
                self._warn(key, f"{err} It is not logged; training goes on.")
        histograms = {key: value for key, value in histograms.items() if self._numeric(key, value)}
        if batches or (histograms and self.logdir is not None):
            self.writer.submit(lambda: self._write(global_step, batches, histograms))

    @hookimpl
    def edflow_after_evaluation(self, iterator, global_step, eval_dir, metrics):
        self.writer.drain()  # the pass's images are on disk before the evaluation records it as done
        if self.events is not None:
            self.events.flush()

    @hookimpl
    def edflow_after_training(self, iterator, status):
        self.writer.drain()
        self._release()

    # -- on the writer thread ------------------------------------------------------------------------------------

    def _write(self, step: int, batches: dict, histograms: dict) -> None:
        events = self._events()
        for key, batch in batches.items():
            grid = media.make_grid(media.to_uint8(key, batch), self.max_per_grid, self.padding)
            png = media.encode_png(grid)
            media.write_atomic(media.image_path(self.images_dir, key, step), png)
            if events is not None:
                events.add_image(key, png, grid.shape[0], grid.shape[1], grid.shape[2], step)
        if events is not None:
            for key, values in histograms.items():
                events.add_histogram(key, values, step)
            events.flush()

    def _events(self) -> Any:
        if self.events is None and self.logdir is not None:
            from edcore import tensorboard

            self.events = tensorboard.acquire(self.logdir)
        return self.events

    def _release(self) -> None:
        if self.events is not None:
            from edcore import tensorboard

            tensorboard.release(self.events)
            self.events = None

    # -- reporting -----------------------------------------------------------------------------------------------

    def _numeric(self, key: str, value: np.ndarray) -> bool:
        if np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_:
            return True
        self._warn(("histogram", key), f"logged histogram '{key}' has dtype {value.dtype}, not numbers; it is not "
                                       f"logged; training goes on.")
        return False

    def _warn(self, what: Any, message: str) -> None:
        if what not in self.warned:
            self.warned.add(what)
            log.warning("%s", message)
