"""Batches through torch.utils.data.DataLoader with a sampler that resumes at the exact next example."""
from __future__ import annotations

import contextlib
import logging
import random
import re
import signal
import threading
from collections import abc
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from edcore.batching import (
    announce_epoch,
    batches_per_epoch,
    check_dataset,
    collate,
    epoch_indices,
    example_error,
    get_example,
    rank_indices,
)
from edcore.errors import DataError, EdflowError
from torch.utils.data import BatchSampler, DataLoader, Sampler, default_collate, get_worker_info

from edflow_torch.settings import default_num_workers

log = logging.getLogger("edflow")

#: The signals edcore's training and evaluation processes stop on (edcore.process.HANDLED_SIGNALS).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


class EpochSampler(Sampler):
    """Yields one epoch of example indices from a start position; the order depends on ``(seed, epoch)`` only
    (``edcore.batching.epoch_indices``), and each rank takes its slice of the same order."""

    def __init__(self, num_examples: int, seed: int, shuffle: bool, batch_size: int, drop_last: bool,
                 rank: int = 0, world_size: int = 1) -> None:
        self.num_examples = num_examples
        self.seed = seed
        self.shuffle = shuffle
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start = start_batch

    def indices(self) -> np.ndarray:
        order = epoch_indices(self.num_examples, self.seed, self.epoch, self.shuffle)
        return rank_indices(order, self.rank, self.world_size, self.drop_last)[self.start * self.batch_size:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return len(self.indices())


class SeededBatch(list):
    """The example indices of one batch and what the seed of the random numbers its examples draw in a worker is
    made from, ``(seed, rank, epoch, batch in epoch)``."""

    def __init__(self, indices: list, entropy: tuple) -> None:
        super().__init__(indices)
        self.entropy = entropy

    @property
    def epoch(self) -> int:
        return self.entropy[2]

    @property
    def seed(self) -> int:
        # Derived in the worker, not in the loop's process: a Generator costs ~16 us per batch there (benchmarks/).
        return int(np.random.default_rng(list(self.entropy)).integers(2**32))


class SeededBatchSampler(BatchSampler):
    """Batches of the epoch sampler, each with a seed that depends on ``(seed, rank, epoch, batch in epoch)`` only:
    so random augmentation in DataLoader workers does not depend on which worker loads a batch, how many workers
    there are, or whether the epoch was resumed in the middle."""

    def __iter__(self) -> Iterator[SeededBatch]:
        sampler = self.sampler
        seed, rank, epoch = int(sampler.seed), sampler.rank, sampler.epoch
        for number, batch in enumerate(super().__iter__(), start=sampler.start):
            yield SeededBatch(batch, (seed, rank, epoch, number, 2))


class CheckedDataset(torch.utils.data.Dataset):
    """The user's dataset, with every example checked to be a dict (the error names the index)."""

    def __init__(self, dataset: Any, name: str) -> None:
        self.dataset = dataset
        self.name = name
        self.epoch: int | None = None  # the epoch this process last told the dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Mapping:
        return get_example(self.dataset, index, self.name)

    def __getitems__(self, indices: list) -> list:
        # The batch tells its epoch: persistent workers hold their own copy of the dataset, which the main process
        # cannot reach, and with num_workers 0 this is the main process's dataset.
        if isinstance(indices, SeededBatch) and indices.epoch != self.epoch:
            announce_epoch(self.dataset, indices.epoch, self.name)
            self.epoch = indices.epoch
        # In a worker, reseed per batch: a worker's own RNG stream would depend on the batches it was dealt before,
        # and a resumed run deals them anew. The main process keeps its RNG, which every checkpoint stores.
        if isinstance(indices, SeededBatch) and get_worker_info() is not None:
            seed = indices.seed
            # The CPU generator only: torch.manual_seed also seeds every accelerator's and costs ~100 us per batch
            # (benchmarks/); a worker draws on the CPU (CUDA in DataLoader workers is unsupported).
            torch.default_generator.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
        # get_example's work inlined: with num_workers 0 this runs in the loop's process for every example.
        dataset, examples = self.dataset, []
        for index in indices:
            try:
                example = dataset[index]
            except Exception as err:
                raise example_error(self.name, index, err) from err
            if type(example) is not dict and not isinstance(example, abc.Mapping):
                get_example(dataset, index, self.name)  # raises the DataError naming the index
            examples.append(example)
        return examples


class CheckedCollate:
    """torch's default_collate; when it fails, edcore's collate explains which key and shapes disagree."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, examples: list) -> Any:
        try:
            return default_collate(examples)
        except Exception as err:
            collate(examples, name=self.name)  # raises a DataError naming the key and shapes
            raise DataError(f"{self.name}: the examples cannot be batched: {err}") from err


class TorchBatches:
    """``edflow_batches`` for torch iterators: a DataLoader whose sampler resumes mid-epoch without replay."""

    def __init__(self, dataset: Any, batch_size: int, *, seed: int, shuffle: bool, drop_last: bool,
                 settings: Mapping, device: torch.device, rank: int = 0, world_size: int = 1,
                 name: str = "dataset") -> None:
        num_examples = check_dataset(dataset, name, batch_size, drop_last)
        self.length = batches_per_epoch(num_examples, batch_size, drop_last, world_size)
        self.seed = seed
        self.sampler = EpochSampler(num_examples, seed, shuffle, batch_size, drop_last, rank, world_size)
        workers = settings["num_workers"]
        workers = default_num_workers() if workers == "auto" else workers
        workers = min(workers, self.length)  # more workers than batches only costs start-up
        pin = settings["pin_memory"]
        pin = device.type == "cuda" if pin == "auto" else pin
        self.generator = torch.Generator()
        options: dict[str, Any] = {}
        if workers > 0:
            options["persistent_workers"] = settings["persistent_workers"]
            if settings["prefetch_factor"]:
                options["prefetch_factor"] = settings["prefetch_factor"]
        self.loader = DataLoader(
            CheckedDataset(dataset, name), batch_sampler=SeededBatchSampler(self.sampler, batch_size, drop_last),
            num_workers=workers, pin_memory=pin, collate_fn=CheckedCollate(name), generator=self.generator,
            worker_init_fn=ignore_stop_signals if workers > 0 else None, **options,
        )
        self.num_workers = workers

    def __len__(self) -> int:
        return self.length

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]:
        self.sampler.set_epoch(epoch, start)
        # Worker seeds come from this generator: seeding it per epoch makes them a function of (seed, epoch).
        self.generator.manual_seed(int(np.random.default_rng([int(self.seed), int(epoch), 1]).integers(2**62)))
        try:
            with stop_signals_blocked(self.num_workers > 0):  # workers start here (or at the first epoch)
                batches = iter(self.loader)
            yield from batches
        except EdflowError as err:
            raise type(err)(_strip_worker_traceback(str(err))) from None
        except RuntimeError as err:
            from edcore.process import stop_requested

            if not (stop_requested() and _is_worker_death(err)):
                raise
            # A worker that got the signal anyway (a custom DataLoader start, a signal sent to it alone): the step
            # stopped at is complete, so this is the interrupt, not a failure; the loop sees the stop signal.
            log.debug("a DataLoader worker ended after the stop signal: %s", err)

    def close(self) -> None:
        """Stop the workers; never raises (it runs in ``finally`` blocks, where it would hide the real outcome)."""
        iterator = getattr(self.loader, "_iterator", None)
        self.loader._iterator = None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            try:
                iterator._shutdown_workers()
            except RuntimeError as err:  # a worker already dead: there is nothing left to stop
                log.debug("stopping the DataLoader workers: %s", err)


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of the DataLoader workers: SIGINT/SIGTERM/SIGUSR1 to the process group (Ctrl-C, ``kill
    -TERM -PGID``, ``timeout``, SLURM) reach the workers too; only the main process acts on them, finishing its step
    and checkpointing, then stops the workers itself. A worker that died of the signal would make the main process
    fail with "DataLoader worker exited unexpectedly", and one that ran edcore's inherited handler would announce
    the signal once more. The signals were blocked while the worker was forked (:func:`stop_signals_blocked`), so
    none is lost or handled before this point; a pending one is discarded once ignored."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def stop_signals_blocked(enabled: bool = True) -> Iterator[None]:
    """Block the stop signals in this thread while DataLoader workers are started: the forked workers inherit the
    mask and unblock them once they ignore them; a signal that arrives meanwhile is delivered here on exit."""
    if not enabled or not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _is_worker_death(err: RuntimeError) -> bool:
    """torch's errors for a worker that died: "DataLoader worker (pid X) is killed by signal: ..." and
    "DataLoader worker (pid(s) ...) exited unexpectedly"."""
    return str(err).startswith("DataLoader worker")


def _strip_worker_traceback(message: str) -> str:
    """A DataLoader worker's error message carries the worker traceback; keep the original message only."""
    if "Original Traceback" not in message:
        return message
    last = message.strip().splitlines()[-1]
    return re.sub(r"^[\w.]+Error: ", "", last)
