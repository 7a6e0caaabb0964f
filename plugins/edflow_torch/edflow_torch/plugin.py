"""The edflow plugin of the PyTorch backend (entry point ``torch`` of group ``edflow``).

It acts only for iterators derived from ``edflow_torch.TemplateIterator``; it imports torch only then, so other
backends' runs do not pay torch's import time.
"""
from __future__ import annotations

import sys
from typing import Any, Mapping

from edcore import hookimpl
from edcore.references import iterator_derives_from

from edflow_torch.settings import SCHEMA, launched_by_torchrun, torch_settings


def uses_torch(config: Mapping) -> bool:
    """Whether the config's iterator is a torch TemplateIterator (already imported by edcore's reference check)."""
    return iterator_derives_from(config, "edflow_torch.iterator", "TemplateIterator")


class TorchPlugin:
    """Batches, feeds-to-tensor conversion, seeding and distribution for torch iterators."""

    def __init__(self) -> None:
        self.device = None
        self.float_dtype = None
        self.distributed = None

    @hookimpl
    def edflow_config_schema(self):
        return {"torch": SCHEMA}

    @hookimpl
    def edflow_check_config(self, config, where):
        """Devices, amp and compile of torch configs, judged by torch on this machine before the run folder."""
        if not uses_torch(config):
            return
        from edflow_torch.settings import check_settings

        check_settings(torch_settings(config), where)

    @hookimpl
    def edflow_distributed(self, config):
        if not launched_by_torchrun() or not uses_torch(config):
            return None
        from edflow_torch.distributed import TorchDistributed

        self.distributed = TorchDistributed(torch_settings(config))
        return self.distributed

    @hookimpl
    def edflow_seed(self, seed, config):
        if "torch" not in sys.modules:
            return
        import torch

        torch.manual_seed(seed)
        if torch_settings(config)["deterministic"]:
            torch.use_deterministic_algorithms(True)

    @hookimpl
    def edflow_to_numpy(self, value):
        """Logged torch tensors as numpy arrays: detached, on the host, copied (bfloat16 as float32)."""
        if "torch" not in sys.modules:
            return None
        import torch

        if not isinstance(value, torch.Tensor):
            return None
        tensor = value.detach()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        host = tensor.cpu()
        # On the CPU, .numpy() shares the tensor's memory, which an in-place update of the next step would change
        # while the writer thread still reads it.
        return host.numpy().copy() if host.data_ptr() == value.data_ptr() else host.numpy()

    @hookimpl
    def edflow_batches(self, dataset, config, mode):
        if not uses_torch(config):
            return None
        from edflow_torch.batching import TorchBatches
        from edflow_torch.distributed import world
        from edflow_torch.settings import resolve_device

        settings = torch_settings(config)
        training = mode == "train"
        rank, world_size = world() if training else (0, 1)
        return TorchBatches(
            dataset, config["batch_size"], seed=config.get("seed") or 0,
            shuffle=training and config.get("shuffle", True), drop_last=training and config.get("drop_last", False),
            settings=settings, device=resolve_device(settings["device"]), rank=rank, world_size=world_size,
            name=str(config.get("dataset")),
        )

    @hookimpl
    def edflow_before_training(self, iterator):
        self._activate(iterator)
        if self.distributed is not None and self.distributed.world_size > 1:
            # Done here rather than as an edflow_after_step hook: single-process runs pay nothing per step.
            runtime = iterator.runtime
            runtime.after_step = self.distributed.stop_together(runtime, runtime.after_step)

    @hookimpl
    def edflow_before_evaluation(self, iterator, global_step, eval_dir):
        self._activate(iterator)

    def _activate(self, iterator: Any) -> None:
        if "edflow_torch.iterator" not in sys.modules:
            return  # no torch iterator can exist
        from edflow_torch.iterator import TemplateIterator

        if isinstance(iterator, TemplateIterator):
            import torch

            self.device = iterator.device
            dtype = torch_settings(iterator.config)["float_dtype"]
            self.float_dtype = None if dtype == "keep" else getattr(torch, dtype)

    @hookimpl(tryfirst=True)
    def edflow_before_step(self, feeds):
        """Turn the feeds into tensors on the iterator's device; tensors already there are not copied."""
        if self.device is not None:
            to_device(feeds, self.device, self.float_dtype)

    @hookimpl
    def edflow_after_training(self, iterator, status):
        self.device = None
        if self.distributed is not None:
            self.distributed.release_signals()
            if status != "failed":
                # The other ranks finish only once rank 0 has published the final checkpoint.
                self.distributed.barrier()
            self.distributed.close()
            self.distributed = None


def to_device(feeds: Any, device: Any, float_dtype: Any) -> None:
    """Convert numpy arrays and tensors in a (nested) dict in place."""
    import numpy as np
    import torch

    for key, value in feeds.items():
        if isinstance(value, torch.Tensor):
            if value.device != device or (float_dtype is not None and value.dtype == torch.float64):
                feeds[key] = value.to(device=device, dtype=float_dtype if value.dtype == torch.float64 else None,
                                      non_blocking=True)
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            tensor = torch.from_numpy(value)
            if float_dtype is not None and tensor.dtype == torch.float64:
                tensor = tensor.to(float_dtype)
            feeds[key] = tensor.to(device, non_blocking=True)
        elif isinstance(value, dict):
            to_device(value, device, float_dtype)
