"""The event-file writer's CRC-32C: Google's C implementation and the Python fallback give the same checksums, and
TensorBoard's reader (which checks every record's CRCs) reads files written with either."""
from __future__ import annotations

import random

import pytest

from edcore import tensorboard


def test_the_python_crc32c_has_the_castagnoli_check_value_and_agrees_with_google_crc32c():
    google_crc32c = pytest.importorskip("google_crc32c")
    assert tensorboard.python_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    rng = random.Random(0)
    for length in (0, 1, 7, 8, 26, 255, 4096):
        data = bytes(rng.randrange(256) for _ in range(length))
        assert tensorboard.python_crc32c(data) == google_crc32c.value(data)
    assert tensorboard.crc32c is google_crc32c.value  # installed with the tensorboard extra: the fast one is used


@pytest.mark.parametrize("implementation", ["google", "python"])
def test_tensorboard_reads_every_record_written_with_either_crc(tmp_path, monkeypatch, implementation):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if implementation == "python":
        monkeypatch.setattr(tensorboard, "crc32c", tensorboard.python_crc32c)
    writer = tensorboard.EventWriter(tmp_path)
    for step in range(1, 51):
        writer.add_scalars({"loss": 1.0 / step, "train/accuracy": step / 50}, step)
    writer.add_histogram("weights", [0.1, 0.2, 0.2, 0.9], 50)
    writer.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    assert [event.step for event in events.Scalars("loss")] == list(range(1, 51))
    assert [event.value for event in events.Scalars("loss")] == pytest.approx([1.0 / step for step in range(1, 51)])
    assert events.Histograms("weights")[0].histogram_value.num == 4


def test_scalar_events_are_the_bytes_protobuf_writes():
    from tensorboard.compat.proto import event_pb2, summary_pb2

    rng = random.Random(1)
    special = [0.0, -0.0, 1e39, -1e39, float("nan"), float("inf"), 1e-45, 3.4028235e38, 3.4028236e38, -2.25]
    tags = ["loss", "eval/accuracy", "ü/😀", "x" * 200]  # 200 bytes: a two-byte length
    cache: dict = {}
    for _ in range(500):
        scalars = {rng.choice(tags): rng.choice(special + [rng.uniform(-1e5, 1e5)]) for _ in range(rng.randrange(1, 4))}
        step = rng.choice([0, 1, 127, 128, 2**40, rng.randrange(10**6)])
        wall_time = rng.choice([0.0, rng.random() * 2e9])
        expected = event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()]))
        assert tensorboard.scalar_event(scalars, step, wall_time, cache) == expected.SerializeToString()
    assert tensorboard.scalar_event({"": 1.0}, 5, 1.0, cache) is None  # left to the protobuf classes
    assert tensorboard.scalar_event({"loss": 1.0}, -1, 1.0, cache) is None
