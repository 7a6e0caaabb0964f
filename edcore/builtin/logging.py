"""Built-in logging of the log op's scalars: the console (through tqdm) and ``train/metrics.jsonl``."""
from __future__ import annotations

import json
import logging
import math
import time

from edcore.hookspecs import hookimpl
from edcore.runlog import log_info

log = logging.getLogger("edflow")


def format_scalars(scalars: dict) -> str:
    return "  ".join(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in scalars.items())


class MetricsLogger:
    """One JSON object per logged step: ``{"global_step": 100, "time": ..., "loss": 0.12, ...}``."""

    def __init__(self) -> None:
        self.stream = None
        self.path = None

    @hookimpl
    def edflow_project_init(self, project, config, mode):
        if mode == "train":
            self.path = project.train / "metrics.jsonl"

    @hookimpl(trylast=True)
    def edflow_log(self, global_step, logs, mode):
        scalars = logs.get("scalars") or {}
        if not scalars:
            return
        if log.isEnabledFor(logging.INFO):
            log_info(f"step {global_step}  {format_scalars(scalars)}")
        if self.path is None:
            return
        if self.stream is None:
            self.stream = open(self.path, "a", encoding="utf-8")
        record = {"global_step": global_step, "time": round(time.time(), 3)}
        record.update({k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in scalars.items()})
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    @hookimpl
    def edflow_after_training(self, iterator, status):
        if self.stream is not None:
            self.stream.close()
            self.stream = None
