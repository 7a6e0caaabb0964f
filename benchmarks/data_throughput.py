"""Workload 2: end-to-end examples per second with a per-example dataset (about 0.5 ms of numpy work in every
``__getitem__``, 4096 examples, batch 32) feeding the tiny MLP.

Variants, interleaved: a raw loop over ``DataLoader(num_workers=0)`` and ``(num_workers=2)``, ``edflow -t`` with its
batching defaults (the torch backend's DataLoader, ``num_workers: auto``), and Lightning on the same DataLoader as
the best raw one. One epoch per run, worker start-up included, wall time (the workers run beside the main process).
"""
from __future__ import annotations

import gc
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # numpy in every worker: no thread pools fighting over 2 cores

import numpy as np

from common import Stopwatch, arguments, interleave, machine_state, quiet_output, report, summarize, table

EXAMPLES, BATCH_SIZE, WORK_SIZE, WORK_ROUNDS = 4096, 32, 40_000, 18


class Data:
    """Every example costs about 0.5 ms of numpy work (measured in the report), like decoding and augmenting."""

    def __init__(self, config: Any = None) -> None:
        self.examples = (config or {}).get("bench_examples", EXAMPLES)
        rng = np.random.default_rng(0)
        self.labels = rng.integers(0, 10, size=self.examples)
        self.base = np.linspace(0.0, 1.0, WORK_SIZE, dtype=np.float32)

    def __len__(self) -> int:
        return self.examples

    def __getitem__(self, index: int) -> dict:
        values = self.base + np.float32(index % 97)
        for _ in range(WORK_ROUNDS):
            values = np.sin(values) * np.float32(1.1)
        return {"x": values[:32].copy(), "y": self.labels[index]}


def time_per_example() -> float:
    """Seconds of CPU time one ``__getitem__`` takes here."""
    import time

    data = Data()
    start = time.process_time()
    for index in range(200):
        data[index]
    return (time.process_time() - start) / 200


def raw_loop(num_workers: int, examples: int):
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    import torch_workload

    def run() -> dict:
        model = torch_workload.TinyMLP()
        optimizer = torch.optim.Adam(model.parameters(), lr=torch_workload.LR)
        loader = DataLoader(Data({"bench_examples": examples}), batch_size=BATCH_SIZE, shuffle=True,
                            num_workers=num_workers)
        watch = Stopwatch()
        watch.start()
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(batch["x"]), batch["y"])
            loss.backward()
            optimizer.step()
        return {**watch.stop(), "examples": examples}

    return run


def lightning_loop(num_workers: int, examples: int):
    import lightning
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    import torch_workload

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = torch_workload.TinyMLP()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return F.cross_entropy(self.model(batch["x"]), batch["y"])

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.model.parameters(), lr=torch_workload.LR)

    class Timer(lightning.Callback):
        watch = Stopwatch()

        def on_train_start(self, trainer: Any, module: Any) -> None:
            self.watch.start()

        def on_train_end(self, trainer: Any, module: Any) -> None:
            self.watch.stop()

    def run() -> dict:
        timer = Timer()
        loader = DataLoader(Data({"bench_examples": examples}), batch_size=BATCH_SIZE, shuffle=True,
                            num_workers=num_workers)
        trainer = lightning.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                                    enable_checkpointing=False, enable_progress_bar=False,
                                    enable_model_summary=False, callbacks=[timer])
        with quiet_output():
            trainer.fit(Module(), train_dataloaders=loader)
        return {**timer.watch.result, "examples": examples}

    return run


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    import torch

    from edcore.testing import EdflowProject
    from harness import edflow_variant

    torch.set_num_threads(1)
    examples = 256 if args.quick else EXAMPLES
    trials = args.trials or (1 if args.quick else 5)
    state = machine_state()
    per_example = time_per_example()
    with tempfile.TemporaryDirectory(prefix="edflow-bench-data-") as tmp:
        project = EdflowProject(Path(tmp))
        project.config("train.yaml", dataset="data_throughput.Data", model="torch_workload.TinyMLP",
                       iterator="torch_workload.Iterator", batch_size=BATCH_SIZE, num_epochs=1, seed=0,
                       bench_examples=examples, code_root=None, torch={"device": "cpu"})
        edflow_run = edflow_variant(project, "train.yaml", None, lambda iterator: 0.0, steps=examples)
        variants = {
            "raw loop, DataLoader num_workers=0": raw_loop(0, examples),
            "raw loop, DataLoader num_workers=2": raw_loop(2, examples),
            "edflow -t, batching defaults": lambda: {**edflow_run(), "examples": examples},
        }
        notes = []
        if importlib.util.find_spec("lightning") is not None:
            variants["Lightning, DataLoader num_workers=2"] = lightning_loop(2, examples)
        else:
            notes.append("Lightning not installed (pip install -r benchmarks/requirements.txt)")

        def collected(run):
            def wrapped() -> dict:
                gc.collect()
                return run()

            return wrapped

        samples = interleave({name: collected(run) for name, run in variants.items()}, trials,
                             warmup=0 if args.quick else 1)
    # Throughput: examples per second, so the row with the larger number is the faster one.
    for rows in samples.values():
        for sample in rows:
            sample["rate"] = sample["examples"] / sample["seconds"]
    rows = summarize(samples, key="rate")
    best = max(rows[:2], key=lambda row: row["median"])  # the faster raw DataLoader configuration
    paired = summarize(samples, key="rate", baseline=best["variant"])
    for row, against_best in zip(rows, paired):
        row["of_best_raw"] = round(against_best["ratio"], 3)
    sections = [(f"Examples per second ({examples} examples, batch {BATCH_SIZE}, {1e3 * per_example:.2f} ms of CPU per "
                 f"example; ratio to num_workers=0, of_best_raw to the faster raw DataLoader, both paired per round):",
                 table(rows, "examples/s", columns=("of_best_raw",), ratio_label="ratio"))]
    if notes:
        sections.append(("", "\n".join(f"- {note}" for note in notes)))
    report("data_throughput", f"Data throughput ({trials} trials)", sections,
           {"rows": rows, "ms_per_example": 1e3 * per_example, "trials": trials}, args.out, state)


if __name__ == "__main__":
    main()
