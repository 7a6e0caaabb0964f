"""A minimal TensorBoard event-file writer: scalars, images and histograms.

tensorboardX and tensorboard's own writer import torch or tensorflow when they are installed (1 to 5 s of start-up
here, and edcore must not import a framework), so edcore frames the records itself: the TFRecord framing with
masked CRC-32C is a few lines (the CRC computed by ``google-crc32c`` when installed), and the ``Event`` messages
come from the ``tensorboard`` package's protobuf classes, which import nothing heavy. Files are readable by TensorBoard and by its ``EventAccumulator``.
"""
from __future__ import annotations

import math
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


def python_crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) in Python, about 2 µs for a scalar event's 26 bytes; used without google-crc32c."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # Google's C implementation (the tensorboard extra installs it): 0.1 µs per event
    from google_crc32c import value as crc32c
except ImportError:  # pragma: no cover - depends on the environment
    crc32c = python_crc32c


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
        self._headers: dict[int, bytes] = {}  # length -> the record's first 12 bytes
        self._values: dict[str, bytes] = {}  # tag -> its encoded Summary.Value up to the float (scalar_event)
        self.logdir = Path(logdir)
        self.users = 0  # counted by acquire()/release()
        Path(logdir).mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.edflow"
        self.path = Path(logdir) / name
        self._file = open(self.path, "ab")
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def _write(self, event) -> None:
        self._write_record(event.SerializeToString())

    def _write_record(self, data: bytes) -> None:
        framed = self._headers.get(len(data))
        if framed is None:  # the events of one run have a handful of sizes: their framed headers are reused
            header = struct.pack("<Q", len(data))
            framed = self._headers[len(data)] = header + struct.pack("<I", masked_crc32c(header))
        record = framed + data + struct.pack("<I", masked_crc32c(data))
        with self._lock:  # one write per record: a reader never sees two records interleaved
            if not self._file.closed:
                self._file.write(record)

    def _summary(self, values: list, step: int, wall_time: float | None) -> None:
        summary = self._summary_pb2.Summary(value=values)
        self._write(self._event_pb2.Event(wall_time=wall_time or time.time(), step=int(step), summary=summary))

    def add_scalars(self, scalars: dict, step: int, wall_time: float | None = None) -> None:
        """Write ``{tag: number}`` at ``step`` as one event."""
        if not scalars:
            return
        data = scalar_event(scalars, step, wall_time or time.time(), self._values)
        if data is not None:
            self._write_record(data)
            return
        values = [self._summary_pb2.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in scalars.items()]
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


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def scalar_event(scalars: dict, step: int, wall_time: float, values: dict[str, bytes]) -> bytes | None:
    """The serialized ``Event`` of a step's scalars, encoded here rather than through the protobuf classes.

    Building the messages cost about 5 µs of the 50 µs a logged step may cost (benchmarks/README.md); the bytes are
    the ones ``SerializeToString`` writes (tests/test_tensorboard.py), the ``Summary.Value`` of each tag is encoded
    once (in ``values``). ``None`` for what this does not encode (an empty tag, a negative step): the caller then
    uses the protobuf classes.
    """
    summary = bytearray()
    for tag, value in scalars.items():
        prefix = values.get(tag)
        if prefix is None:
            name = tag.encode("utf-8")
            if not name:
                return None
            # Value {tag = 1 (string), simple_value = 2 (float, 4 bytes)}, inside Summary.value = 1
            encoded = b"\x0a" + _varint(len(name)) + name + b"\x15"
            prefix = values[tag] = b"\x0a" + _varint(len(encoded) + 4) + encoded
        try:
            number = struct.pack("<f", value)
        except OverflowError:  # beyond float32: protobuf stores it as infinity, so does this
            number = struct.pack("<f", math.copysign(math.inf, value))
        summary += prefix
        summary += number
    step = int(step)
    if step < 0:
        return None
    # Event {wall_time = 1 (double), step = 2 (varint), summary = 5}; proto3 leaves out fields that are zero
    head = b"\x09" + struct.pack("<d", wall_time) if wall_time != 0.0 else b""
    if step:
        head += b"\x10" + _varint(step)
    return head + b"\x2a" + _varint(len(summary)) + bytes(summary)


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
