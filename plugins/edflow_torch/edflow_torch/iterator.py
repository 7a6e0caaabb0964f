"""The PyTorch TemplateIterator: devices, train/eval modes, mixed precision, compile, DDP and checkpoints."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Mapping

import edcore
import torch
from edcore.errors import CheckpointError

from edflow_torch.settings import check_amp, resolve_device, torch_settings

log = logging.getLogger("edflow")

STATE_FILE = "torch_state.pt"
_SKIPPED_ATTRIBUTES = {"model", "runtime", "config", "project", "root"}


class TemplateIterator(edcore.TemplateIterator):
    """Subclass this to train a PyTorch model with ``edflow -t``.

    In ``__init__`` call ``super().__init__(*args, **kwargs)`` first, then create optimizers (and schedulers) as
    attributes. Implement ``step_op(self, model, **batch)`` returning ``{"train_op": fn, "log_op": fn,
    "eval_op": fn}``; the batch arrives as tensors on ``self.device``. Everything is checkpointed without code:
    the model, every ``nn.Module``, optimizer, LR scheduler and ``GradScaler`` attribute, and the torch RNG states
    (the core adds the global step, the data position and the Python/NumPy RNG states). Override
    ``save(path)``/``restore(path)`` (calling ``super()``) to add files of your own.

    With ``torch: {amp: fp16}`` call ``self.optimize(loss, optimizer)`` (or use ``self.scaler`` yourself) so the
    loss is scaled; with ``bf16`` or ``off`` it is a plain backward and step.
    """

    def __init__(self, config: Mapping, root: Any, model: Any, **kwargs: Any) -> None:
        super().__init__(config, root, model, **kwargs)
        settings = torch_settings(config)
        if settings["num_threads"] != "auto":
            # Small models on shared CPUs: extra threads mostly wait on each other (measured 9 ms vs 160 ms a step).
            torch.set_num_threads(settings["num_threads"])
        self.device = resolve_device(settings["device"])
        self.amp = settings["amp"]
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)
        check_amp(self.amp, self.device)  # edflow checked it already; this is for iterators made by hand
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        if isinstance(model, torch.nn.Module):
            model.to(self.device)
            from edflow_torch.distributed import wrap_model

            self.model = wrap_model(model, self.device, settings)
            if settings["compile"]:
                self.model = torch.compile(self.model)
        self._raw_model = model

    # -- running -------------------------------------------------------------------------------------------------

    def run(self, fetches: Any, feeds: Mapping) -> Any:
        if self.amp_dtype is None:
            return super().run(fetches, feeds)
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype):
            return super().run(fetches, feeds)

    def train(self, batches: Any) -> None:
        if isinstance(self.model, torch.nn.Module):
            self.model.train()
        super().train(batches)

    def evaluate(self, batches: Any) -> None:
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        with torch.inference_mode():
            super().evaluate(batches)

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, zero_grad: bool = True) -> None:
        """Backward and optimizer step, through the GradScaler when ``amp: fp16``."""
        if zero_grad:
            optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    # -- checkpoints ---------------------------------------------------------------------------------------------

    def state(self) -> dict:
        """The core's loop state, plus the number of processes that shared the data position."""
        from edflow_torch.distributed import world

        return {**super().state(), "world_size": world()[1]}

    def load_state(self, state: Mapping) -> None:
        """Restore the loop state; a run resumed with another number of processes continues at the same example.

        Rank ``r`` takes every ``world_size``-th example of the epoch order, so after ``p`` batches all ranks
        together have used exactly the first ``p * batch_size * world_size`` examples of it.
        """
        from edflow_torch.distributed import world

        super().load_state(state)
        saved, now = int(state.get("world_size", 1)), world()[1]
        if saved != now and self._position:
            position = self._position * saved // now
            log.info("checkpoint written by %d processes, resumed with %d: batch %d of epoch %d becomes batch %d",
                     saved, now, self._position, self._epoch, position)
            self._position = position

    def _stateful(self) -> dict[str, dict[str, Any]]:
        """The iterator's attributes that hold state, by kind."""
        groups: dict[str, dict[str, Any]] = {"modules": {}, "optimizers": {}, "schedulers": {}, "scalers": {}}
        for name, value in vars(self).items():
            if name in _SKIPPED_ATTRIBUTES or name.startswith("_"):
                continue
            if isinstance(value, torch.optim.Optimizer):
                groups["optimizers"][name] = value
            elif isinstance(value, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)):
                groups["schedulers"][name] = value
            elif isinstance(value, torch.amp.GradScaler):
                groups["scalers"][name] = value
            elif isinstance(value, torch.nn.Module) and value is not self._raw_model:
                groups["modules"][name] = value
        return groups

    def save(self, path: str) -> None:
        state: dict[str, Any] = {"format": 1}
        if isinstance(self._raw_model, torch.nn.Module):
            state["model"] = self._raw_model.state_dict()
        for kind, objects in self._stateful().items():
            state[kind] = {name: obj.state_dict() for name, obj in objects.items()}
        state["rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(state, os.path.join(path, STATE_FILE))

    def restore(self, path: str) -> None:
        file = os.path.join(path, STATE_FILE)
        if not os.path.exists(file):
            raise CheckpointError(f"'{path}' has no {STATE_FILE}; it was not written by edflow-torch.")
        try:
            # weights_only: a checkpoint file can never execute code (plain tensors and containers only).
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(f"'{file}' cannot be read: {' '.join(str(err).split())[:400]}") from err
        if "model" in state and isinstance(self._raw_model, torch.nn.Module):
            _load_module(self._raw_model, state["model"], "the model")
        current = self._stateful()
        for kind, saved in state.items():
            if kind not in current:
                continue
            for name, state_dict in saved.items():
                target = current[kind].get(name)
                if target is None:
                    raise CheckpointError(
                        f"the checkpoint holds {kind[:-1]} '{name}' but {type(self).__name__} has no such attribute "
                        f"(it has: {', '.join(current[kind]) or 'none'}). Was it written by another iterator?"
                    )
                if kind == "modules":
                    _load_module(target, state_dict, f"module '{name}'")
                else:
                    try:
                        target.load_state_dict(state_dict)
                    except (ValueError, KeyError, RuntimeError) as err:
                        raise CheckpointError(f"{kind[:-1]} '{name}' does not match the checkpoint: {err}") from err
            for name in current[kind]:
                if name not in saved:
                    log.warning("%s '%s' is not in the checkpoint; it keeps its fresh state", kind[:-1], name)
        rng = state.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            with contextlib.suppress(RuntimeError):
                torch.cuda.set_rng_state_all(rng["cuda"])


def _load_module(module: torch.nn.Module, state_dict: Mapping, what: str) -> None:
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        detail = detail.replace("Error(s) in loading state_dict for ", "")
        raise CheckpointError(f"the checkpoint does not fit {what} (a checkpoint of another model?): {detail}") from err
