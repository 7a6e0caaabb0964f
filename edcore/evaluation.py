"""Evaluation processes: restore checkpoints of a run and run the eval ops over the evaluation data."""
from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

from edcore.checkpoint import Checkpoint, CheckpointStore
from edcore.errors import UsageError
from edcore.iterator import Iterator
from edcore.plugins import call_hook
from edcore.process import Checkpointer, Runtime, SingleProcess, make_progress, provide, setup_logging

log = logging.getLogger("edflow")


def run_evaluations(project: Any, eval_configs: list, manager: Any, explicit: Checkpoint | None, args: Any,
                    argv: list[str], now: datetime.datetime) -> int:
    """Evaluate a run: ``-c`` that checkpoint, ``--all`` every one, else the latest."""
    code = 0
    for path, config in eval_configs:
        name = args.name or config.get("experiment_name") or Path(path).stem
        eval_dir = project.new_eval_dir(name, now)
        setup_logging(eval_dir / "log.txt", args.debug, f"eval {name}")
        project.write_config("eval", config, now)
        store = CheckpointStore(project.checkpoints)
        if explicit is not None:
            checkpoints = [explicit]
        elif config.get("eval_all"):
            checkpoints = store.published()
        else:
            latest = store.latest()
            checkpoints = [latest] if latest else []
        if not checkpoints:
            raise UsageError(f"run '{project.root}' has no checkpoint to evaluate yet.")
        code = max(code, evaluate_checkpoints(config, manager, project, eval_dir, checkpoints))
    return code


def evaluate_checkpoints(config: Any, manager: Any, project: Any, eval_dir: Path, checkpoints: list) -> int:
    data = config.data
    call_hook(manager, "edflow_project_init", project=project, config=data, mode="eval")
    call_hook(manager, "edflow_seed", seed=int(data["seed"]), config=data)
    dataset = provide(manager, "edflow_dataset", "dataset", config=data, mode="eval")
    batches = provide(manager, "edflow_batches", "batches", dataset=dataset, config=data, mode="eval")
    model = provide(manager, "edflow_model", "model", config=data)
    iterator = provide(manager, "edflow_iterator", "iterator", config=data, root=str(eval_dir), model=model,
                       project=project)
    if not isinstance(iterator, Iterator):
        raise UsageError(f"the iterator provided is a {type(iterator).__name__}, not an edcore.Iterator.")
    runtime = Runtime(manager, "eval", data)
    iterator.runtime = runtime
    checkpointer = Checkpointer(CheckpointStore(project.checkpoints), manager, iterator, project, config, enabled=False)
    for checkpoint in checkpoints:
        checkpointer.load(checkpoint)
        step_dir = eval_dir / f"{checkpoint.step}"
        step_dir.mkdir(parents=True, exist_ok=True)
        call_hook(manager, "edflow_before_evaluation", iterator=iterator, global_step=checkpoint.step, eval_dir=str(step_dir))
        runtime.progress = make_progress(len(batches), 0, f"eval {checkpoint.step}", 0, data.get("progress", True))
        iterator.iterate(batches)
        if runtime.progress is not None:
            runtime.progress.close()
        call_hook(manager, "edflow_after_evaluation", iterator=iterator, global_step=checkpoint.step,
                  eval_dir=str(step_dir), metrics={})
        log.info("evaluated checkpoint %d into %s", checkpoint.step, step_dir)
    return 0


def start_followers(project: Any, eval_paths: list, bases: list, extras: list, args: Any) -> Any:
    raise UsageError("evaluation processes next to training (-t with -e) are not available yet; evaluate the "
                     "finished run with 'edflow -e EVAL.yaml -p RUN_DIR'.")
