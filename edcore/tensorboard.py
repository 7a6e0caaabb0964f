"""A minimal TensorBoard event-file writer: scalars, images and histograms.

tensorboardX and tensorboard's own writer import torch or tensorflow when they are installed (1 to 5 s of start-up
here, and edcore must not import a framework), so edcore frames the records itself: the TFRecord framing with
masked CRC-32C is a few lines, and the ``Event`` messages come from the ``tensorboard`` package's protobuf classes,
which import nothing heavy. Files are readable by TensorBoard and by its ``EventAccumulator``.
"""
from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path


def available() -> bool:
    """Whether the protobuf classes for event files are installed (the ``tensorboard`` package)."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorboard.compat.proto.event_pb2") is not None
    except ImportError:
        return False


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class EventWriter:
    """Appends summaries to one ``events.out.tfevents.*`` file in ``logdir``; safe to use from several threads (the
    media writer adds images from its own thread while the loop adds scalars)."""

    def __init__(self, logdir: str | os.PathLike) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        self._lock = threading.Lock()
        self.logdir = Path(logdir)
        self.users = 0  # counted by acquire()/release()
        Path(logdir).mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.edflow"
        self.path = Path(logdir) / name
        self._file = open(self.path, "ab")
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def _write(self, event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        record = header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))
        with self._lock:  # one write per record: a reader never sees two records interleaved
            if not self._file.closed:
                self._file.write(record)

    def _summary(self, values: list, step: int, wall_time: float | None) -> None:
        summary = self._summary_pb2.Summary(value=values)
        self._write(self._event_pb2.Event(wall_time=wall_time or time.time(), step=int(step), summary=summary))

    def add_scalars(self, scalars: dict, step: int, wall_time: float | None = None) -> None:
        """Write ``{tag: number}`` at ``step`` as one event."""
        values = [self._summary_pb2.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in scalars.items()]
        if values:
            self._summary(values, step, wall_time)

    def add_image(self, tag: str, png: bytes, height: int, width: int, channels: int, step: int,
                  wall_time: float | None = None) -> None:
        """Write one PNG-encoded image (TensorBoard's IMAGES tab; ``EventAccumulator.Images(tag)``)."""
        image = self._summary_pb2.Summary.Image(height=int(height), width=int(width), colorspace=int(channels),
                                                encoded_image_string=png)
        self._summary([self._summary_pb2.Summary.Value(tag=tag, image=image)], step, wall_time)

    def add_histogram(self, tag: str, values, step: int, bins: int = 30, wall_time: float | None = None) -> None:
        """Write the histogram of the finite entries of ``values`` (an array), binned by ``numpy.histogram``."""
        import numpy as np

        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        counts, edges = np.histogram(values, bins=bins)
        proto = self._summary_pb2.HistogramProto(
            min=float(values.min()), max=float(values.max()), num=float(values.size), sum=float(values.sum()),
            sum_squares=float(np.dot(values, values)), bucket_limit=[float(e) for e in edges[1:]],
            bucket=[float(c) for c in counts])
        self._summary([self._summary_pb2.Summary.Value(tag=tag, histo=proto)], step, wall_time)

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                self._file.close()


_shared: dict[Path, EventWriter] = {}
_shared_lock = threading.Lock()


def acquire(logdir: str | os.PathLike) -> EventWriter:
    """The one writer of ``logdir`` in this process, made at the first call: the scalars of the loop and the images
    of the media writer go into one event file. Pair every call with :func:`release`."""
    key = Path(logdir).resolve()
    with _shared_lock:
        writer = _shared.get(key)
        if writer is None:
            writer = _shared[key] = EventWriter(key)
        writer.users += 1
        return writer


def release(writer: EventWriter) -> None:
    """Give back a writer of :func:`acquire`; the last user closes it."""
    with _shared_lock:
        writer.users -= 1
        if writer.users > 0:
            return
        if _shared.get(writer.logdir) is writer:
            del _shared[writer.logdir]
    writer.close()
