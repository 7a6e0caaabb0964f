"""Workload 8: the path users take. A map-style dataset of examples batched by edflow's own default batching (the
torch backend's DataLoader) against a raw loop over a DataLoader of the same dataset with the same workers; and
what a logged step costs more than an unlogged one. ``--tf``: the same dataset through edflow-tf's tf.data pipeline
against a raw ``tf.function`` loop over that same pipeline.

Every variant trains the tiny MLP of workload 1 from the same initial weights on the same examples in the same
order (no shuffling), so the final losses agree. The logged-step rows run the no-op step of workload 1 with the
defaults on (console, ``metrics.jsonl``, TensorBoard, the bar) and ``log_freq: 1`` against ``log_freq: null``:
the difference per step is what logging one step costs.
"""
from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any

from common import Stopwatch, arguments, interleave, machine_state, report, summarize, table
from harness import train_quietly

#: The examples of the raw and the edflow variants (x float32[32], y int64); set before the variants run.
EXAMPLES: Any = None


class Examples:
    """A map-style dataset of example dicts, as a user writes one."""

    def __init__(self, config: Any = None) -> None:
        self.x, self.y = EXAMPLES

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict:
        return {"x": self.x[index], "y": self.y[index]}


def raw_dataloader_loop(workers: int):
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    import torch_workload as workload

    def run() -> dict:
        model = workload.TinyMLP()
        optimizer = torch.optim.Adam(model.parameters(), lr=workload.LR)
        loader = DataLoader(Examples(), batch_size=64, shuffle=False, num_workers=workers,
                            persistent_workers=workers > 0)
        watch = Stopwatch()
        steps = 0
        iterator = iter(loader)
        x, y = next(iterator).values()  # the workers start here; edflow's timer starts after its first batch too
        watch.start()
        while True:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            steps += 1
            try:
                x, y = next(iterator).values()
            except StopIteration:
                break
        result = watch.stop()
        del iterator, loader
        return {**result, "steps": steps, "final_loss": workload.check_loss(model)}

    return run


class FirstBatchTimer:
    """Times edflow's loop from the end of its first step's batch fetch, as the raw loop is timed: both then
    exclude starting the workers. Starts at the first ``before_step``, stops at the end of the epoch."""

    def __init__(self) -> None:
        self.watch = Stopwatch()
        self.iterator: Any = None
        self.started = False

    def edflow_before_training(self, iterator: Any) -> None:
        self.iterator = iterator

    def edflow_before_step(self) -> None:
        if not self.started:
            self.started = True
            self.watch.start()

    def edflow_after_epoch(self, iterator: Any, epoch: int) -> None:
        self.watch.stop()


def edflow_variant(project: Any, config_name: str, steps: int, loss_of: Any = None):
    from edcore import hookimpl

    class Timer(FirstBatchTimer):
        edflow_before_training = hookimpl(FirstBatchTimer.edflow_before_training)
        edflow_before_step = hookimpl(FirstBatchTimer.edflow_before_step)
        edflow_after_epoch = hookimpl(FirstBatchTimer.edflow_after_epoch)

    def run() -> dict:
        timer = Timer()
        train_quietly(project, config_name, [timer])
        result = {**timer.watch.result, "steps": steps - 1}
        if loss_of is not None:
            result["final_loss"] = loss_of(timer.iterator)
        return result

    return run


def raw_tf_loop(steps: int, in_memory: bool = False):
    """The raw loop of workload 1 (TF) over the tf.data pipeline edflow-tf builds for the same dataset, or
    (``in_memory``) over ``from_tensor_slices`` of the arrays, what a TF user writes for data in memory."""
    import keras
    import tensorflow as tf

    import tf_workload as workload
    from edflow_tf.batching import TFBatches
    from edflow_tf.settings import tf_settings

    def run() -> dict:
        model = workload.make_model()
        optimizer = keras.optimizers.Adam(workload.LR)
        loss_fn = workload.loss_function()

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss

        if in_memory:
            x, y = EXAMPLES
            batches = iter(tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).batch(64).prefetch(tf.data.AUTOTUNE))
        else:
            pipeline = TFBatches(Examples(), 64, seed=0, shuffle=False, drop_last=False, settings=tf_settings({}))
            batches = iter(pipeline.pipeline(0))
        first = next(batches)
        train_step(first["x"], first["y"])  # traces; timed from here, as edflow-tf's variant is
        watch = Stopwatch()
        watch.start()
        count = 0
        for batch in batches:
            train_step(batch["x"], batch["y"])
            count += 1
        return {**watch.stop(), "steps": count, "final_loss": workload.check_loss(model)}

    return run


def edflow_tf_variant(project: Any, config_name: str, steps: int):
    import tf_workload as workload
    from edcore import hookimpl

    class Timer:
        """From the end of the first (tracing) step to the end of the epoch."""

        def __init__(self) -> None:
            self.watch = Stopwatch()
            self.iterator: Any = None

        @hookimpl
        def edflow_before_training(self, iterator: Any) -> None:
            self.iterator = iterator

        @hookimpl
        def edflow_after_step(self, global_step: int) -> None:
            if global_step == 1:
                self.watch.start()

        @hookimpl
        def edflow_after_epoch(self, iterator: Any, epoch: int) -> None:
            self.watch.stop()

    def run() -> dict:
        timer = Timer()
        train_quietly(project, config_name, [timer])
        return {**timer.watch.result, "steps": steps - 1, "final_loss": workload.check_loss(timer.iterator.model)}

    return run


def tf_main(args: Any) -> None:
    import numpy as np

    import tf_workload as workload
    from edcore.testing import EdflowProject
    from harness import teacher_batches

    global EXAMPLES
    steps = 60 if args.quick else 1500
    trials = args.trials or (1 if args.quick else 7)
    state = machine_state()
    workload.setup(steps)
    batches = teacher_batches(steps, 64, workload.IN, workload.OUT)
    EXAMPLES = (np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]).astype(np.int64))
    import user_path  # the module the config names: this script runs as __main__

    user_path.EXAMPLES = EXAMPLES
    with tempfile.TemporaryDirectory(prefix="edflow-bench-user-tf-") as tmp:
        project = EdflowProject(Path(tmp))
        common = {"dataset": "user_path.Examples", "model": "tf_workload.make_model",
                  "iterator": "tf_workload.Iterator", "batch_size": 64, "num_epochs": 1, "seed": 0,
                  "shuffle": False, "code_root": None, "tf": {"jit": True}}
        project.config("on.yaml", **common)
        project.config("off.yaml", **common, progress=False, log_freq=None, checkpointing=False, tensorboard=False)
        samples = interleave({"raw tf.function loop over the same tf.data pipeline": collected(raw_tf_loop(steps)),
                              "edflow-tf, defaults on": collected(edflow_tf_variant(project, "on.yaml", steps)),
                              "edflow-tf, everything off": collected(edflow_tf_variant(project, "off.yaml", steps)),
                              "raw loop over from_tensor_slices (for comparison)": collected(raw_tf_loop(steps, True))},
                             trials)
    sections, data = [], {"trials": trials, "steps": steps}
    for key, label in (("cpu_seconds", "CPU time"), ("seconds", "wall time")):
        rows = summarize(samples, key=key, per="steps", scale=1e6)
        data[f"{label.split()[0].lower()}"] = rows
        sections.append((f"edflow-tf's tf.data pipeline of a map-style dataset, µs per step, {label} (ratio to the "
                         f"raw loop over the same pipeline; CPU time counts tf.data's threads too):",
                         table(rows, "µs", columns=("final_loss",))))
    report("user_path_tf", f"The user's path, TensorFlow ({trials} trials of {steps} steps)", sections, data,
           args.out, state)


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--tf", action="store_true", help="the TensorFlow path instead of the torch one")
    parser.add_argument("--part", choices=("all", "path", "logged"), default="all",
                        help="torch: only the DataLoader path rows, or only the logged-step rows (default: both)")
    args = parser.parse_args()
    if args.tf:
        return tf_main(args)
    import numpy as np
    import torch

    import torch_workload as workload
    from edcore.testing import EdflowProject
    from harness import teacher_batches

    global EXAMPLES
    torch.set_num_threads(1)
    steps = 60 if args.quick else 2000
    trials = args.trials or (1 if args.quick else 7)
    state = machine_state()
    batches = teacher_batches(steps, 64, workload.IN, workload.OUT)
    EXAMPLES = (np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]).astype(np.int64))
    import user_path  # the module the config names: this script runs as __main__

    user_path.EXAMPLES = EXAMPLES
    workload.BATCHES = [(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))) for x, y in batches]
    workload.INITIAL_STATE = workload.initial_state()
    loss_of = lambda iterator: workload.check_loss(iterator._raw_model)  # noqa: E731
    sections = []
    data: dict = {"trials": trials, "steps": steps}
    with tempfile.TemporaryDirectory(prefix="edflow-bench-user-") as tmp:
        project = EdflowProject(Path(tmp))
        common = {"dataset": "user_path.Examples", "model": "torch_workload.TinyMLP",
                  "iterator": "torch_workload.Iterator", "batch_size": 64, "num_epochs": 1, "seed": 0,
                  "shuffle": False, "code_root": None}
        variants = {}
        for workers in (0, 2) if args.part != "logged" else ():
            torch_section = {"device": "cpu", "num_workers": workers}
            project.config(f"on{workers}.yaml", **common, torch=torch_section)
            project.config(f"off{workers}.yaml", **common, torch=torch_section, progress=False, log_freq=None,
                           checkpointing=False, tensorboard=False)
            variants[f"raw DataLoader loop, {workers} workers"] = raw_dataloader_loop(workers)
            variants[f"edflow, defaults on, {workers} workers"] = edflow_variant(project, f"on{workers}.yaml", steps,
                                                                                 loss_of)
            variants[f"edflow, everything off, {workers} workers"] = edflow_variant(project, f"off{workers}.yaml",
                                                                                    steps, loss_of)
        samples = interleave({name: collected(run) for name, run in variants.items()}, trials) if variants else {}
        for workers in (0, 2) if variants else ():
            group = {name: rows for name, rows in samples.items() if name.endswith(f", {workers} workers")}
            for key, label in (("cpu_seconds", "CPU time"), ("seconds", "wall time")):
                rows = summarize(group, key=key, per="steps", scale=1e6)
                data[f"{label.split()[0].lower()}_{workers}_workers"] = rows
                sections.append((f"{workers} DataLoader workers, µs per step, {label} (ratio to the raw loop):",
                                 table(rows, "µs", columns=("final_loss",))))

        # A logged step against an unlogged one, on the no-op step: everything else equal.
        if args.part == "path":
            report("user_path", f"The user's path ({trials} trials of {steps} steps)", sections, data, args.out, state)
            return
        noop = {"dataset": "harness.PrebuiltDataset", "model": "torch_workload.TinyMLP",
                "iterator": "torch_workload.Iterator", "batch_size": 64, "num_steps": steps, "seed": 0,
                "bench_examples": 64 * steps, "code_root": None, "torch": {"device": "cpu"}, "bench_noop": True,
                "checkpointing": False}
        project.config("log-every.yaml", **noop, log_freq=1)
        project.config("log-never.yaml", **noop, log_freq=None)
        from harness import edflow_variant as prebuilt_variant

        prebuilt = [{"x": x, "y": y} for x, y in workload.BATCHES]
        logged = interleave({"no-op step, log_freq null": collected(prebuilt_variant(project, "log-never.yaml",
                                                                                         prebuilt, loss_of)),
                             "no-op step, log_freq 1": collected(prebuilt_variant(project, "log-every.yaml",
                                                                                     prebuilt, loss_of))}, trials)
        for key, label in (("cpu_seconds", "CPU time"), ("seconds", "wall time")):
            rows = summarize(logged, key=key, per="steps", scale=1e6)
            base, every = rows[0]["median"], rows[1]["median"]
            data[f"logged_{key}"] = rows
            sections.append((f"A logged step (console, metrics.jsonl, TensorBoard, bar), µs per step, {label}; a "
                             f"logged step costs {every - base:.0f} µs more:", table(rows, "µs", ratio_label=None)))
    report("user_path", f"The user's path ({trials} trials of {steps} steps)", sections, data, args.out, state)


def collected(run):
    def wrapped() -> dict:
        gc.collect()
        return run()

    return wrapped


if __name__ == "__main__":
    main()
