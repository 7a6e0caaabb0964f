"""Running the real ``edflow -t`` inside the benchmark process on pre-built batches, with a timer that adds no
per-step hook."""
from __future__ import annotations

from typing import Any, Callable

from common import Stopwatch, quiet_output

from edcore import hookimpl


class PrebuiltDataset:
    """What the config's ``dataset`` names; the batches come pre-built from :class:`LoopTimer`."""

    def __init__(self, config: Any) -> None:
        self.length = config["bench_examples"]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        raise IndexError("the loop benchmark uses pre-built batches")


class PrebuiltBatches:
    """``edflow_batches`` over pre-built batches (dicts), resumable at any batch like the real ones."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int, start: int = 0) -> Any:
        return iter(self.batches[start:])


class EpochTimer:
    """Times the loop from before the first step to the end of the epoch (before the final checkpoint, which the
    checkpoint benchmark measures); keeps the iterator for the loss check. No per-step hook: it costs nothing."""

    def __init__(self) -> None:
        self.watch = Stopwatch()
        self.iterator: Any = None

    @hookimpl
    def edflow_before_training(self, iterator: Any) -> None:
        self.iterator = iterator
        self.watch.start()

    @hookimpl
    def edflow_after_epoch(self, iterator: Any, epoch: int) -> None:
        self.watch.stop()


class LoopTimer(EpochTimer):
    """An :class:`EpochTimer` that also provides the pre-built batches."""

    def __init__(self, batches: list) -> None:
        super().__init__()
        self.batches = batches

    @hookimpl
    def edflow_batches(self, dataset: Any, config: Any, mode: str) -> Any:
        return PrebuiltBatches(self.batches)


def train_quietly(project: Any, config_name: str, plugins: list) -> None:
    """``edflow -t config_name`` in this process with ``plugins``, its output into a file; its tail on failure."""
    output = project.path / "edflow-output.log"
    with quiet_output(str(output)):
        code = project.run_in_process("-t", config_name, plugins=plugins)
    if code != 0:
        tail = "\n".join(output.read_text(errors="replace").splitlines()[-20:])
        raise SystemExit(f"edflow -t {config_name} exited with {code}:\n{tail}")


def edflow_variant(project: Any, config_name: str, batches: list | None, loss_of: Callable[[Any], float],
                   steps: int | None = None) -> Callable:
    """A variant that runs ``edflow -t config_name`` in this process (the command line's own path), on the
    pre-built ``batches`` or, with ``None``, on the batches edflow makes itself."""
    def run() -> dict:
        timer = LoopTimer(batches) if batches is not None else EpochTimer()
        train_quietly(project, config_name, [timer])
        return {**timer.watch.result, "steps": steps or len(batches or ()), "final_loss": loss_of(timer.iterator)}

    return run


def teacher_batches(num_batches: int, batch_size: int, inputs: int, classes: int, seed: int = 0) -> list:
    """``(x, y)`` numpy batches of a random linear teacher, so the loss really goes down; the same for every
    framework."""
    import numpy as np

    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(inputs, classes)).astype("float32")
    batches = []
    for _ in range(num_batches):
        x = rng.normal(size=(batch_size, inputs)).astype("float32")
        batches.append((x, (x @ teacher).argmax(1)))
    return batches
