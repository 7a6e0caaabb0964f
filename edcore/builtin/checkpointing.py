"""Built-in checkpoint retention: ``ckpt_keep`` newest, ``ckpt_best`` by a logged metric, never what an
evaluator still needs, always the checkpoint written at the end of training."""
from __future__ import annotations

import json
import logging
import math

from edcore.checkpoint import CheckpointStore, steps_needed_by_evaluators
from edcore.hookspecs import hookimpl

log = logging.getLogger("edflow")
BEST_FILE = "best.json"


class Retention:
    def __init__(self) -> None:
        self.keep_last = None
        self.best = None
        self.latest_metric = None
        self.store = None
        self.scores: dict = {}

    @hookimpl
    def edflow_project_init(self, project, config, mode):
        if mode != "train":
            return
        self.keep_last = config.get("ckpt_keep")
        self.best = config.get("ckpt_best")
        self.store = CheckpointStore(project.checkpoints)
        path = project.checkpoints / BEST_FILE
        if self.best and path.exists():
            try:
                self.scores = {int(k): v for k, v in json.loads(path.read_text()).items()}
            except (OSError, ValueError):
                self.scores = {}

    @hookimpl
    def edflow_log(self, global_step, logs, mode):
        if self.best and mode == "train":
            value = (logs.get("scalars") or {}).get(self.best["metric"])
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.latest_metric = float(value)

    @hookimpl
    def edflow_checkpoint_published(self, checkpoint, project):
        if self.store is None or (self.keep_last is None and not self.best):
            return
        keep = {c.step for c in self.store.published() if c.manifest.get("reason") == "final"}
        keep |= steps_needed_by_evaluators(self.store.directory)
        if self.best:
            if self.latest_metric is not None:
                self.scores[checkpoint.step] = self.latest_metric
                from edcore.project import write_text_atomic

                write_text_atomic(self.store.directory / BEST_FILE, json.dumps(self.scores))
            published = {c.step for c in self.store.published()}
            ranked = sorted((s for s in self.scores if s in published), key=self.scores.get,
                            reverse=self.best.get("mode", "min") == "max")
            keep |= set(ranked[: self.best.get("keep", 1)])
            if self.keep_last is None:
                keep |= {s for s in published if s not in self.scores}  # only scored checkpoints compete
        keep.add(checkpoint.step)
        deleted = self.store.prune(self.keep_last if self.keep_last is not None else 0, keep)
        if deleted:
            log.debug("checkpoint retention removed steps %s", deleted)
