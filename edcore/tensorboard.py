"""A minimal TensorBoard event-file writer for scalars.

tensorboardX and tensorboard's own writer import torch or tensorflow when they are installed (1 to 5 s of start-up
here, and edcore must not import a framework), so edcore frames the records itself: the TFRecord framing with
masked CRC-32C is a few lines, and the ``Event`` messages come from the ``tensorboard`` package's protobuf classes,
which import nothing heavy. Files are readable by TensorBoard and by its ``EventAccumulator``.
"""
from __future__ import annotations

import os
import socket
import struct
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
    """Appends scalar summaries to one ``events.out.tfevents.*`` file in ``logdir``."""

    def __init__(self, logdir: str | os.PathLike) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        Path(logdir).mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.edflow"
        self.path = Path(logdir) / name
        self._file = open(self.path, "ab")
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def _write(self, event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data)))

    def add_scalars(self, scalars: dict, step: int, wall_time: float | None = None) -> None:
        """Write ``{tag: number}`` at ``step`` as one event."""
        values = [self._summary_pb2.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in scalars.items()]
        if values:
            summary = self._summary_pb2.Summary(value=values)
            self._write(self._event_pb2.Event(wall_time=wall_time or time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()
