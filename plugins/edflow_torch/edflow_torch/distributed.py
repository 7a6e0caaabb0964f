"""Data-parallel training on torch.distributed: the process group, DDP, and what rank 0 shares with the others."""
from __future__ import annotations

import contextlib
import datetime
import os
import signal
from typing import Any, Iterator, Mapping

import torch
import torch.distributed as dist
from edcore.process import HANDLED_SIGNALS as edcore_signals

from edflow_torch.settings import launched_by_torchrun  # noqa: F401  (re-exported)

#: The signals edcore turns into "checkpoint, then stop".
HANDLED_SIGNALS = set(edcore_signals)


class TorchDistributed:
    """The process group of a torchrun launch (edcore's ``edflow_distributed`` contract)."""

    def __init__(self, settings: Mapping) -> None:
        backend = settings["ddp"]["backend"]
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        with signals_blocked():
            if not dist.is_initialized():
                if backend == "nccl":
                    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
                dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
            # Stop flags travel on the CPU: a flag through NCCL would force a device sync every step.
            self.cpu_group = dist.new_group(backend="gloo") if backend == "nccl" else None
        self.backend = backend
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def all_reduce_mean(self, scalars: Mapping[str, float]) -> dict:
        if not scalars:
            return dict(scalars)
        names = sorted(scalars)
        device = torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")
        values = torch.tensor([float(scalars[n]) for n in names], dtype=torch.float64, device=device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= self.world_size
        return dict(zip(names, values.tolist()))

    def stop_together(self, runtime: Any, after_step: Any) -> Any:
        """Wrap the loop's ``after_step`` so that every rank stops after the same step when any rank got a signal.

        Without it the rank that saw SIGTERM first stops while the others block in the next step's all-reduce
        (until torchrun kills them). A signal handled asynchronously could still land between the all-reduce and
        the loop's check, so the signals are blocked during the loop and taken here, before the all-reduce, by the
        core's own handler; once the ranks agree to stop they are unblocked, and a second signal aborts at once.
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        flag = torch.zeros(1, dtype=torch.int32)
        group = self.cpu_group

        def after_step_on_every_rank(*args: Any) -> None:
            if after_step is not None:
                after_step(*args)
            pending = signal.sigpending() & HANDLED_SIGNALS
            if pending and not runtime.stop_signal:
                taken = signal.sigtimedwait(pending, 0)
                handler = signal.getsignal(taken.si_signo) if taken is not None else None
                if callable(handler):
                    handler(taken.si_signo, None)
            flag[0] = runtime.stop_signal
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
            runtime.stop_signal = int(flag[0])
            if runtime.stop_signal:
                self.release_signals()

        return after_step_on_every_rank

    def release_signals(self) -> None:
        """Deliver the signals blocked during the loop again (a pending one is handled now)."""
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Block SIGINT/SIGTERM/SIGUSR1 while torch.distributed starts its threads, which inherit the mask.

    Measured under load: a SIGTERM that landed on one of gloo's threads left both ranks in an all-reduce that never
    completed. Blocked there, the signals reach the main thread only, whose handler just sets the stop flag.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wrap_model(model: torch.nn.Module, device: torch.device, settings: Mapping) -> torch.nn.Module:
    """DistributedDataParallel around the model when the process group has more than one process."""
    _rank, world_size = world()
    if world_size == 1 or not any(p.requires_grad for p in model.parameters()):
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    with signals_blocked():  # DDP's reducer may start threads of its own
        return DistributedDataParallel(model, device_ids=device_ids,
                                       find_unused_parameters=settings["ddp"]["find_unused_parameters"])
