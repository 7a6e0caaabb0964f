"""What logging every ``log_freq`` steps costs inside the real torch loop: the time between consecutive steps by
their place in the log period, with the defaults on and with logging off (``log_freq: null``).

    python benchmarks/log_period.py --steps 4000 --trials 4

``user_path.py --part logged`` times a logged step against an unlogged one with a step that does nothing, so the
logging code stays in the caches: 41 µs. Here real training steps run between two logged steps, as in a user's run.
A plugin records the time at every ``edflow_after_step`` (wall clock; both variants pay for that hook alike), and the
median interval at each offset of the period, minus the median of the offsets 20 to 98, is what the logged step and
the steps after it cost beyond an ordinary step. Their sum over one period, divided by ``log_freq``, is logging's
cost per step.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import torch_workload
from common import arguments, interleave, machine_state, report
from edcore import hookimpl
from edcore.testing import EdflowProject
from harness import LoopTimer, train_quietly

#: The offsets of the period shown one by one: the logged step's interval and the steps right after it.
SHOWN = 8


class StepClock:
    """The time at the end of every step, from ``edflow_after_step``."""

    def __init__(self) -> None:
        self.times: list[int] = []

    @hookimpl
    def edflow_after_step(self, global_step: int) -> None:
        self.times.append(time.perf_counter_ns())


def variant(project: Any, config_name: str, batches: list) -> Any:
    def run() -> dict:
        clock = StepClock()
        train_quietly(project, config_name, [LoopTimer(batches), clock])
        # intervals[i] runs from the end of step i + 1 to the end of step i + 2: it holds the work after step
        # i + 1 (its log call when it was a logged step) and step i + 2 itself.
        intervals = [(end - start) / 1000 for start, end in zip(clock.times, clock.times[1:])]
        return {"intervals": intervals}

    return run


def by_offset(samples: list[dict], log_freq: int) -> dict[int, float]:
    """The median interval (µs) at each offset in the log period; offset 1 holds the logged step's log call."""
    values: dict[int, list[float]] = {}
    for sample in samples:
        for index, interval in enumerate(sample["intervals"]):
            values.setdefault((index + 2) % log_freq, []).append(interval)  # the step that ends it, in the period
    return {offset: statistics.median(found) for offset, found in sorted(values.items())}


def summary(name: str, medians: dict[int, float], log_freq: int) -> dict:
    ordinary = statistics.median([medians[offset] for offset in range(log_freq // 5, log_freq)])
    extra = {offset: medians[offset] - ordinary for offset in medians}
    return {"variant": name, "ordinary_step_us": round(ordinary, 1),
            "extra_us_by_offset": [round(extra[offset], 1) for offset in range(SHOWN + 1)],
            "extra_us_per_period": round(sum(extra.values()), 1),
            "per_step_us": round(sum(extra.values()) / log_freq, 2)}


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 4000, quick 60)")
    parser.add_argument("--log-freq", type=int, default=None, help="the log period (default 100, quick 20)")
    args = parser.parse_args()
    num_steps = args.steps or (60 if args.quick else 4000)
    log_freq = args.log_freq or (20 if args.quick else 100)
    trials = args.trials or (1 if args.quick else 4)
    torch.set_num_threads(1)
    torch_workload.BATCHES = torch_workload.make_batches(num_steps)
    torch_workload.INITIAL_STATE = torch_workload.initial_state()
    batches = [{"x": x, "y": y} for x, y in torch_workload.BATCHES]
    state = machine_state()
    with tempfile.TemporaryDirectory(prefix="edflow-bench-") as workdir:
        project = EdflowProject(Path(workdir))
        on = {**torch_workload.edflow_configs(num_steps)["on"], "log_freq": log_freq}
        project.config("on.yaml", **on)
        project.config("nolog.yaml", **{**on, "log_freq": None})
        samples = interleave({"edflow, defaults on": variant(project, "on.yaml", batches),
                              "defaults, logging off": variant(project, "nolog.yaml", batches)},
                             trials, warmup=0 if args.quick else 1)
    rows = [summary(name, by_offset(found, log_freq), log_freq) for name, found in samples.items()]
    head = ["variant", "ordinary step µs", *[f"+{offset}" for offset in range(SHOWN + 1)], "sum µs per period",
            "µs per step"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join([row["variant"], str(row["ordinary_step_us"]),
                                         *map(str, row["extra_us_by_offset"]), str(row["extra_us_per_period"]),
                                         str(row["per_step_us"])]) + " |")
    report("log_period", f"Logging every {log_freq} steps inside the torch loop ({num_steps} steps, {trials} trials)",
           [(f"Extra time of each interval by its offset in the log period, beyond an ordinary step (wall clock, "
             f"µs; offset +1 holds the logged step's log call):", "\n".join(lines))],
           {"rows": rows, "num_steps": num_steps, "log_freq": log_freq, "trials": trials}, args.out, state)


if __name__ == "__main__":
    main()
