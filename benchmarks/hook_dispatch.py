"""Workload 6: per-step cost of the core's hook calls with 0, 1 and 10 plugins implementing before/after_step.

Two measurements, each interleaved: the hook calls alone (the callers the loop binds once, next to calling pluggy's
hook caller every step), and the whole core loop (``Iterator.train``) around a step that does nothing, so the
figures are the core's own cost per step.
"""
from __future__ import annotations

import time
from typing import Any

from common import arguments, interleave, machine_state, report, summarize, table

from edcore import TemplateIterator, hookimpl
from edcore.plugins import make_plugin_manager
from edcore.process import Runtime

PLUGIN_COUNTS = (0, 1, 10)


class StepObserver:
    """A plugin that implements both per-step hooks and does nothing in them."""

    @hookimpl
    def edflow_before_step(self, global_step, fetches, feeds, batch):
        pass

    @hookimpl
    def edflow_after_step(self, global_step, fetches, feeds, batch, results):
        pass


def manager_with(count: int) -> Any:
    return make_plugin_manager(autoload=False, extra=[(f"observer-{i}", StepObserver()) for i in range(count)])


def bound_calls(count: int, steps: int):
    """The loop's way: callers bound once, ``None`` when nobody implements the hook."""
    runtime = Runtime(manager_with(count), "train", {})
    before, after = runtime.before_step, runtime.after_step
    fetches, feeds, batch, results = {}, {}, {}, {}

    def run() -> dict:
        start = time.perf_counter()
        for step in range(steps):
            if before is not None:
                before(step, fetches, feeds, batch)
            if after is not None:
                after(step + 1, fetches, feeds, batch, results)
        return {"seconds": time.perf_counter() - start, "steps": steps}

    return run


def pluggy_calls(count: int, steps: int):
    """For comparison: pluggy's hook caller with keyword arguments on every step."""
    hook = manager_with(count).hook
    before, after = hook.edflow_before_step, hook.edflow_after_step
    fetches, feeds, batch, results = {}, {}, {}, {}

    def run() -> dict:
        start = time.perf_counter()
        for step in range(steps):
            before(global_step=step, fetches=fetches, feeds=feeds, batch=batch)
            after(global_step=step + 1, fetches=fetches, feeds=feeds, batch=batch, results=results)
        return {"seconds": time.perf_counter() - start, "steps": steps}

    return run


class NoOpIterator(TemplateIterator):
    def step_op(self, model, x):
        return {"train_op": _nothing}


def _nothing() -> None:
    return None


class ListBatches:
    def __init__(self, count: int) -> None:
        self.batches = [{"x": i} for i in range(count)]

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int, start: int = 0):
        return iter(self.batches[start:])


def core_loop(count: int, steps: int):
    """``Iterator.train`` with no progress bar, logging or checkpoints: the loop's bookkeeping plus the hooks."""
    manager = manager_with(count)
    batches = ListBatches(steps)

    def run() -> dict:
        runtime = Runtime(manager, "train", {"log_freq": None})
        runtime.num_steps, runtime.num_epochs = steps, 1
        iterator = NoOpIterator({}, ".", None)
        iterator.runtime = runtime
        start = time.perf_counter()
        iterator.train(batches)
        return {"seconds": time.perf_counter() - start, "steps": steps}

    return run


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    steps = 2000 if args.quick else 200_000
    trials = args.trials or (1 if args.quick else 7)
    state = machine_state()
    calls = {}
    for count in PLUGIN_COUNTS:
        calls[f"bound callers, {count} plugins"] = bound_calls(count, steps)
    for count in PLUGIN_COUNTS:
        calls[f"pluggy hook call, {count} plugins"] = pluggy_calls(count, steps)
    call_rows = summarize(interleave(calls, trials), per="steps", scale=1e6)
    for row in call_rows:  # a ratio to a loop that calls nothing means little: the cost per plugin says more
        row.pop("ratio", None)
        count = int(row["variant"].split(", ")[1].split()[0])
        empty = next(r for r in call_rows if r["variant"] == row["variant"].replace(f"{count} plugins", "0 plugins"))
        row["added_per_plugin_us"] = (row["median"] - empty["median"]) / count if count else 0.0
    loops = {f"core loop, no-op step, {count} plugins": core_loop(count, steps // 4) for count in PLUGIN_COUNTS}
    loop_rows = summarize(interleave(loops, trials), per="steps", scale=1e6)
    sections = [
        ("Both per-step hooks (before and after), per step:",
         table(call_rows, "µs/step", columns=("added_per_plugin_us",), ratio_label=None)),
        ("The whole core loop around a step that does nothing (ratio to no plugins):",
         table(loop_rows, "µs/step", ratio_label="ratio")),
    ]
    report("hook_dispatch", f"Hook dispatch ({steps} steps, {trials} trials)", sections,
           {"calls": call_rows, "loop": loop_rows, "steps": steps, "trials": trials}, args.out, state)


if __name__ == "__main__":
    main()
