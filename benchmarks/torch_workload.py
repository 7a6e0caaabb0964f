"""The PyTorch side of the loop-overhead workload: one tiny MLP trained by a raw loop, edflow and Lightning on the
same pre-built batches from the same initial weights."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

import edflow_torch
from common import Stopwatch

IN, HIDDEN, OUT = 32, 64, 10
LR = 1e-3

#: Set by the benchmark before a variant runs: every variant starts from these weights.
INITIAL_STATE: dict | None = None
#: The pre-built batches, a list of ``(x, y)`` tensors; shared by every variant.
BATCHES: list = []


class TinyMLP(torch.nn.Module):
    """32-64-10, the model of the issue; loads :data:`INITIAL_STATE` when it is set."""

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT))
        if INITIAL_STATE is not None:
            self.load_state_dict(INITIAL_STATE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def make_batches(num_batches: int, batch_size: int = 64, seed: int = 0) -> list:
    """The pre-built batches as tensors."""
    from harness import teacher_batches

    return [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in teacher_batches(num_batches, batch_size, IN, OUT,
                                                                                   seed)]


def initial_state(seed: int = 0) -> dict:
    """Freshly initialised weights (drawn before :data:`INITIAL_STATE` is set)."""
    torch.manual_seed(seed)
    layers = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT))
    return {f"layers.{k}": v.clone() for k, v in layers.state_dict().items()}


def check_loss(model: torch.nn.Module) -> float:
    """The loss on the first batch after training: equal across variants when they did the same steps."""
    x, y = BATCHES[0]
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


# -- 1. the raw loop ------------------------------------------------------------------------------------------------


def raw_loop() -> dict:
    model = TinyMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    watch = Stopwatch()
    watch.start()
    for x, y in BATCHES:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return {**watch.stop(), "steps": len(BATCHES), "final_loss": check_loss(model)}


# -- 2. edflow --------------------------------------------------------------------------------------------------------


class Iterator(edflow_torch.TemplateIterator):
    """The same step as the raw loop, written as an edflow template iterator."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        if self.config.get("bench_noop"):
            self.step_op = self.noop_step_op  # type: ignore[method-assign]

    def noop_step_op(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> dict:
        """A step that computes nothing, to measure what edflow itself costs per step."""
        return {"train_op": _nothing, "log_op": _zero_loss}

    def step_op(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> dict:
        losses = []

        def train_op() -> None:
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            self.optimizer.step()
            losses.append(loss)

        def log_op() -> dict:
            return {"scalars": {"loss": losses[-1].detach()}}

        return {"train_op": train_op, "log_op": log_op}


ZERO = torch.zeros(())


def _nothing() -> None:
    return None


def _zero_loss() -> dict:
    return {"scalars": {"loss": ZERO}}


def raw_noop_loop() -> dict:
    """The raw loop's share of the no-op measurement: iterating over the batches."""
    watch = Stopwatch()
    watch.start()
    for x, y in BATCHES:
        pass
    return {**watch.stop(), "steps": len(BATCHES)}


def edflow_configs(num_steps: int) -> dict[str, dict]:
    """The two edflow variants: every default on, and everything off."""
    common = {"dataset": "harness.PrebuiltDataset", "model": "torch_workload.TinyMLP",
              "iterator": "torch_workload.Iterator", "batch_size": 64, "num_steps": num_steps, "seed": 0,
              "bench_examples": 64 * num_steps, "code_root": None, "torch": {"device": "cpu"}}
    configs = {
        "on": dict(common),  # progress bar, log_freq 100, TensorBoard, metrics.jsonl, checkpoint at the end
        "off": {**common, "progress": False, "log_freq": None, "checkpointing": False, "tensorboard": False},
    }
    return {**configs, **{f"{name}-noop": {**config, "bench_noop": True} for name, config in configs.items()}}


# -- 3. Lightning -----------------------------------------------------------------------------------------------------


class BatchIterable:
    """The pre-built batches as one iterable (Lightning reads a plain list as several dataloaders)."""

    def __iter__(self) -> Any:
        return iter(BATCHES)

    def __len__(self) -> int:
        return len(BATCHES)


def lightning_loop(progress_bar: bool) -> dict:
    import lightning

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = TinyMLP()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return F.cross_entropy(self.model(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.model.parameters(), lr=LR)

    class Timer(lightning.Callback):
        watch = Stopwatch()

        def on_train_start(self, trainer: Any, module: Any) -> None:
            self.watch.start()

        def on_train_end(self, trainer: Any, module: Any) -> None:
            self.watch.stop()

    timer = Timer()
    module = Module()
    trainer = lightning.Trainer(
        max_steps=len(BATCHES), max_epochs=1, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=progress_bar, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=BatchIterable())
    return {**timer.watch.result, "steps": len(BATCHES), "final_loss": check_loss(module.model)}
