"""Where a template step's cost goes outside edflow's loop: the raw step written four ways, the template
contract's closures, ``TemplateIterator.run`` and the raw loop with unrelated Python work between its steps, in one
process, no ``edflow -t`` (CPU time).

    python benchmarks/step_anatomy.py --steps 1000 --trials 30
    python benchmarks/step_anatomy.py --hidden 4096 --steps 400 --trials 20   # a step about seven times longer

The loop benchmark's gap between a real step and a no-op step (edflow's own work is a few µs, the real step
grows by 10-20 µs) shows up here already, without edflow's loop: how long the step's loss lives and how many
Python frames and function objects a step makes change a 360 µs step of the tiny MLP by about 1% each. The last
variants put a few tenths of a microsecond to a few microseconds of Python arithmetic that touches neither the
model nor the data between the raw loop's steps: the table compares what that work costs alone (``own µs``) with
what it adds to a step (``added µs``, the median of the per-round differences). Every variant starts from the same
weights with a fresh Adam, so the final losses agree.
"""
from __future__ import annotations

import statistics
import timeit
from typing import Any, Callable

import torch
import torch.nn.functional as F

import torch_workload
from common import Stopwatch, arguments, interleave, machine_state, report, summarize, table


#: Iterations of :func:`busy` between the raw loop's steps, for the last variants.
BUSY = (5, 40, 160)


def busy(iterations: int) -> int:
    """Python work unrelated to the step: integer arithmetic in one frame, no objects made."""
    total = 0
    for i in range(iterations):
        total += i * 3 & 7
    return total


def busy_name(iterations: int) -> str:
    return f"raw loop + {iterations} Python additions between steps"


def variants() -> dict[str, Callable[[], dict]]:
    batches = torch_workload.BATCHES
    feeds = [{"x": x, "y": y} for x, y in batches]

    def fresh() -> tuple[Any, Any]:
        model = torch_workload.TinyMLP()
        return model, torch.optim.Adam(model.parameters(), lr=torch_workload.LR)

    def timed(loop: Callable[[Any, Any], Any]) -> Callable[[], dict]:
        def run() -> dict:
            model, optimizer = fresh()
            watch = Stopwatch()
            watch.start()
            loop(model, optimizer)
            return {**watch.stop(), "steps": len(batches), "final_loss": torch_workload.check_loss(model)}

        return run

    def raw(model: Any, optimizer: Any) -> None:  # the loss lives until the next step's forward is done
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

    def raw_freed(model: Any, optimizer: Any) -> None:  # the loss is freed as its step ends
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            del loss

    def raw_function(model: Any, optimizer: Any) -> None:  # the step as a function, as any framework calls it
        def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            return loss

        for x, y in batches:
            step(x, y)

    def iterator(model: Any, optimizer: Any) -> Any:
        made = torch_workload.Iterator({"torch": {"device": "cpu"}}, None, model)
        made.optimizer = optimizer
        return made

    def closures(model: Any, optimizer: Any) -> None:  # the template contract: step_op's closures, called
        step_op = iterator(model, optimizer).step_op
        for batch in feeds:
            step_op(model, **batch)["train_op"]()

    def template_run(model: Any, optimizer: Any) -> None:  # what Iterator.train calls per step
        made = iterator(model, optimizer)
        run, fetches = made.run, made.step_ops()
        for batch in feeds:
            run(fetches, batch)

    def raw_busy(iterations: int) -> Callable[[Any, Any], None]:
        def loop(model: Any, optimizer: Any) -> None:  # the raw loop, and work that touches neither model nor data
            for x, y in batches:
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
                busy(iterations)

        return loop

    return {"raw loop": timed(raw), "raw loop, loss freed at the step's end": timed(raw_freed),
            "raw step as a function": timed(raw_function), "template closures (step_op, train_op)": timed(closures),
            "TemplateIterator.run": timed(template_run),
            **{busy_name(n): timed(raw_busy(n)) for n in BUSY}}


def busy_columns(rows: list[dict], samples: dict[str, list[dict]]) -> None:
    """``own_us``: :func:`busy` timed alone; ``added_us``: the median per-round difference to the raw loop."""
    base = [s["cpu_seconds"] / s["steps"] * 1e6 for s in samples["raw loop"]]
    for row in rows:
        name = row["variant"]
        if name == "raw loop":
            continue
        per_step = [s["cpu_seconds"] / s["steps"] * 1e6 for s in samples[name]]
        row["added_us"] = round(statistics.median(p - b for p, b in zip(per_step, base)), 2)
        for iterations in BUSY:
            if name == busy_name(iterations):
                calls = 20000
                row["own_us"] = round(timeit.timeit(lambda: busy(iterations), number=calls) / calls * 1e6, 2)


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 1000, quick 30)")
    parser.add_argument("--hidden", type=int, default=torch_workload.HIDDEN,
                        help="width of the MLP's hidden layer (default 64): does the cost stay fixed as steps grow?")
    args = parser.parse_args()
    num_steps = args.steps or (30 if args.quick else 1000)
    trials = args.trials or (1 if args.quick else 30)
    torch_workload.HIDDEN = args.hidden
    torch.set_num_threads(1)
    torch_workload.BATCHES = torch_workload.make_batches(num_steps)
    torch_workload.INITIAL_STATE = torch_workload.initial_state()
    state = machine_state()
    samples = interleave(variants(), trials, warmup=0 if args.quick else 1)
    rows = summarize(samples, key="cpu_seconds", per="steps", scale=1e6)
    busy_columns(rows, samples)
    width = "" if args.hidden == 64 else f", hidden layer {args.hidden}"
    report("step_anatomy", f"A template step outside edflow's loop, PyTorch ({num_steps} batches of 64{width}, "
           f"{trials} trials)", [("CPU time per step (ratio: median of the per-round ratios, its 95% interval in brackets):",
                        table(rows, "µs/step", columns=("added_us", "own_us", "ratio_of_minimums",
                                                       "final_loss"),
                              ratio_label="ratio to raw"))],
           {"cpu": rows, "num_steps": num_steps, "trials": trials, "hidden": args.hidden}, args.out, state)


if __name__ == "__main__":
    main()
