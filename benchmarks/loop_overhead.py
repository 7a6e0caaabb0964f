"""Workload 1: per-step overhead of the training loop on a tiny MLP with pre-built in-memory batches.

Every variant trains the same 32-64-10 MLP with Adam (batch 64) from the same initial weights on the same batches,
so the final losses agree; the loop time is divided by the steps. Variants run interleaved in one process.

    python benchmarks/loop_overhead.py            # torch: raw, edflow on/off, Lightning off/with bar
    python benchmarks/loop_overhead.py --tf       # tf.function loop, edflow-tf, Keras fit
"""
from __future__ import annotations

import gc
import importlib.util
import tempfile
from pathlib import Path

from common import arguments, interleave, machine_state, quiet_output, report, summarize, table


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def quietly(run):
    """Peers' bars and messages go where edflow's go (see ``quiet_output``)."""
    def wrapped() -> dict:
        with quiet_output():
            return run()

    return wrapped


def collected(run):
    """Start every variant with the same garbage-collector state."""
    def wrapped() -> dict:
        gc.collect()
        return run()

    return wrapped


def torch_variants(num_steps: int, workdir: Path) -> tuple[dict, list[str]]:
    import torch

    import torch_workload as workload
    from edcore.testing import EdflowProject
    from harness import edflow_variant

    torch.set_num_threads(1)  # one core per variant: the other core is free for the rest of the machine
    workload.BATCHES = workload.make_batches(num_steps)
    workload.INITIAL_STATE = workload.initial_state()
    project = EdflowProject(workdir)
    for name, config in workload.edflow_configs(num_steps).items():
        project.config(f"{name}.yaml", **config)
    batches = [{"x": x, "y": y} for x, y in workload.BATCHES]
    loss_of = lambda iterator: workload.check_loss(iterator._raw_model)  # noqa: E731
    variants = {
        "raw loop": workload.raw_loop,
        "edflow, defaults on": edflow_variant(project, "on.yaml", batches, loss_of),
        "edflow, everything off": edflow_variant(project, "off.yaml", batches, loss_of),
    }
    # The same runs with a step that computes nothing: what edflow itself adds per step, in µs, which load
    # on the machine disturbs far less than a ratio of two noisy step times.
    no_op = {
        "raw loop, no-op step": workload.raw_noop_loop,
        "edflow, defaults on, no-op step": edflow_variant(project, "on-noop.yaml", batches, lambda _: None),
        "edflow, everything off, no-op step": edflow_variant(project, "off-noop.yaml", batches, lambda _: None),
    }
    notes = []
    if installed("lightning"):
        variants["Lightning, features off"] = quietly(lambda: workload.lightning_loop(progress_bar=False))
        variants["Lightning, with its bar"] = quietly(lambda: workload.lightning_loop(progress_bar=True))
    else:
        notes.append("Lightning not installed (pip install -r benchmarks/requirements.txt)")
    return {name: collected(run) for name, run in variants.items()}, notes, no_op


def tf_variants(num_steps: int, workdir: Path) -> tuple[dict, list[str]]:
    import tf_workload as workload

    workload.setup(num_steps)
    variants = {"raw tf.function loop": workload.raw_loop}
    notes, no_op = [], {}
    if installed("edflow_tf"):
        from edcore.testing import EdflowProject

        project = EdflowProject(workdir)
        for name, config in workload.edflow_configs(num_steps).items():
            project.config(f"{name}.yaml", **config)
        variants["edflow-tf, jit, defaults on"] = workload.edflow_variant(project, "on.yaml")
        variants["edflow-tf, jit, everything off"] = workload.edflow_variant(project, "off.yaml")
        no_op = {
            "raw loop, no-op step": workload.raw_noop_loop,
            "edflow-tf, defaults on, no-op step": workload.edflow_variant(project, "on-noop.yaml", check=False),
            "edflow-tf, everything off, no-op step": workload.edflow_variant(project, "off-noop.yaml", check=False),
        }
    else:
        notes.append("edflow-tf not installed (pip install -e plugins/edflow_tf): its rows are missing")
    variants["Keras fit, verbose 0"] = quietly(lambda: workload.keras_fit(verbose=0))
    variants["Keras fit, its progress bar"] = quietly(lambda: workload.keras_fit(verbose=1))
    return {name: collected(run) for name, run in variants.items()}, notes, no_op


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--tf", action="store_true", help="the TensorFlow variants instead of the torch ones")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 2000, quick 30)")
    args = parser.parse_args()
    num_steps = args.steps or (30 if args.quick else 2000)
    trials = args.trials or (1 if args.quick else 9)
    state = machine_state()
    with tempfile.TemporaryDirectory(prefix="edflow-bench-") as workdir:
        make = tf_variants if args.tf else torch_variants
        variants, notes, no_op = make(num_steps, Path(workdir))
        samples = interleave(variants, trials, warmup=0 if args.quick else 1)
        no_op_samples = interleave(no_op, trials, warmup=0 if args.quick else 1) if no_op else {}
    cpu_rows = summarize(samples, key="cpu_seconds", per="steps", scale=1e6)
    wall_rows = summarize(samples, per="steps", scale=1e6)
    name = "loop_overhead_tf" if args.tf else "loop_overhead_torch"
    framework = "TensorFlow" if args.tf else "PyTorch"
    sections = [("CPU time per step (the work done; less disturbed by other jobs' load):",
                 table(cpu_rows, "µs/step", columns=("ratio_of_minimums", "final_loss"), ratio_label="ratio to raw")),
                ("Wall time per step (includes waiting for a core on a loaded machine):",
                 table(wall_rows, "µs/step", columns=("ratio_of_minimums",), ratio_label="ratio to raw"))]
    no_op_rows = []
    if no_op_samples:
        no_op_rows = summarize(no_op_samples, key="cpu_seconds", per="steps", scale=1e6)
        raw_step = cpu_rows[0]["median"]
        for row in no_op_rows:
            row.pop("ratio", None)
            row.pop("ratio_of_minimums", None)
            row["added_us_per_step"] = round(row["median"] - no_op_rows[0]["median"], 2)
            row["implied_ratio_to_raw"] = round((raw_step + row["added_us_per_step"]) / raw_step, 4)
        sections.append(("edflow's own cost: the same runs with a step that computes nothing (CPU time; implied "
                         "ratio = (raw step + added) / raw step, from the medians above):",
                         table(no_op_rows, "µs/step", columns=("added_us_per_step", "implied_ratio_to_raw"),
                               ratio_label=None)))
    if notes:
        sections.append(("", "\n".join(f"- {note}" for note in notes)))
    report(name, f"Loop overhead, {framework} (tiny MLP, {num_steps} pre-built batches of 64, {trials} trials)",
           sections, {"cpu": cpu_rows, "wall": wall_rows, "no_op": no_op_rows, "num_steps": num_steps, "trials": trials, "notes": notes},
           args.out, state)


if __name__ == "__main__":
    main()
