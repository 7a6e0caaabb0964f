"""Built-in TensorBoard logging: training scalars at their global step into ``RUN/tensorboard/train``; the
evaluations write theirs into ``RUN/tensorboard/eval_<name>`` (:func:`eval_logdir`)."""
from __future__ import annotations

import time

from edcore import tensorboard
from edcore.hookspecs import hookimpl


def enabled(config: dict) -> bool:
    """``tensorboard: true|false|{enabled: ...}``; on by default when the ``tensorboard`` package is installed."""
    setting = config.get("tensorboard")
    if isinstance(setting, dict):
        setting = setting.get("enabled")
    if setting is None:
        return tensorboard.available()
    return bool(setting)


class TensorBoardLogger:
    """Writes the scalars of every logged step; the writer is made at the first log, so runs that never log pay
    nothing."""

    def __init__(self) -> None:
        self.logdir = None
        self.writer = None
        self.flush_secs = 10.0
        self.last_flush = 0.0

    @hookimpl
    def edflow_project_init(self, project, config, mode):
        if mode == "train" and enabled(config):
            if not tensorboard.available():
                raise_missing()
            self.logdir = project.root / "tensorboard" / "train"
            setting = config.get("tensorboard")
            if isinstance(setting, dict) and "flush_secs" in setting:
                self.flush_secs = float(setting["flush_secs"])

    @hookimpl
    def edflow_log(self, global_step, logs, mode):
        if self.logdir is None or mode != "train":
            return
        if self.writer is None:
            self.writer = tensorboard.acquire(self.logdir)  # shared with core.media's images
        self.writer.add_scalars(logs.get("scalars", {}), global_step)
        now = time.monotonic()
        if now - self.last_flush > self.flush_secs:
            self.writer.flush()
            self.last_flush = now

    @hookimpl
    def edflow_after_training(self, iterator, status):
        if self.writer is not None:
            tensorboard.release(self.writer)
            self.writer = None


def eval_logdir(project, name: str):
    """``RUN/tensorboard/eval_<name>``: next to ``train``, so TensorBoard lists the evaluations as runs beside it."""
    return project.root / "tensorboard" / f"eval_{name}"


def raise_missing() -> None:
    from edcore.errors import ConfigError

    raise ConfigError(
        "tensorboard: true needs the 'tensorboard' package for its event-file format; install it with "
        "pip install 'edcore[tensorboard]' or set tensorboard: false."
    )
