"""The logged steps' lines (``log_info``): the lean path writes exactly what Python's logging writes, and gives the
line to logging whenever anything else could see it."""
from __future__ import annotations

import io
import logging
import re

import pytest

from edcore import runlog

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


class Console:
    def __init__(self, capsys):
        self.capsys = capsys
        self.text = ""

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


@pytest.fixture
def console(capsys):
    yield Console(capsys)
    for handler in list(runlog.log.handlers):
        runlog.log.removeHandler(handler)
        handler.close()


def through_logging(message: str) -> None:
    runlog.log.info("%s", message)


@pytest.mark.parametrize("label", ["train", "eval 100% done"])
def test_the_lean_path_writes_the_bytes_logging_writes(tmp_path, console, label):
    runlog.setup_logging(tmp_path / "log.txt", False, label)
    assert runlog._own.in_sole_use()
    runlog.log_info("step 100  loss 0.1235")
    through_logging("step 100  loss 0.1235")
    assert console.getvalue() == f"[{label}] step 100  loss 0.1235\n" * 2
    lines = (tmp_path / "log.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert all(re.fullmatch(f"{STAMP} INFO step 100  loss 0.1235", line) for line in lines), lines


def test_the_time_stamp_is_formatted_as_logging_formats_it_and_follows_the_clock(tmp_path, console, monkeypatch):
    runlog.setup_logging(tmp_path / "log.txt", False, "train")
    formatter = logging.Formatter(runlog.FILE_FORMAT)
    expected = []
    for now in (1_700_000_000_123_456_789, 1_700_000_000_999_000_000, 1_700_000_001_000_500_000):
        monkeypatch.setattr(runlog.time, "time_ns", lambda now=now: now)
        runlog.log_info("step 7  loss 0.7")
        record = logging.LogRecord("edflow", logging.INFO, __file__, 0, "step 7  loss 0.7", None, None)
        record.created, record.msecs = now / 1e9, (now % 1_000_000_000) // 1_000_000
        expected.append(formatter.format(record))
    monkeypatch.undo()
    assert (tmp_path / "log.txt").read_text(encoding="utf-8").splitlines() == expected


def test_another_handler_a_filter_or_a_level_sends_the_line_through_logging(tmp_path, console):
    runlog.setup_logging(tmp_path / "log.txt", False, "train")
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    collect = Collect()
    runlog.log.addHandler(collect)
    runlog.log_info("step 1  loss 1")
    runlog.log.removeHandler(collect)
    assert seen == ["step 1  loss 1"]

    file_handler = runlog.log.handlers[1]
    file_handler.addFilter(lambda record: "secret" not in record.getMessage())
    runlog.log_info("step 2  secret 1")
    file_handler.filters.clear()

    runlog.log.handlers[0].setLevel(logging.WARNING)
    runlog.log_info("step 3  loss 3")
    runlog.log.handlers[0].setLevel(logging.NOTSET)

    runlog.log.setLevel(logging.WARNING)
    runlog.log_info("step 4  loss 4")
    runlog.log.setLevel(logging.INFO)

    assert console.getvalue() == "[train] step 1  loss 1\n[train] step 2  secret 1\n"
    text = (tmp_path / "log.txt").read_text(encoding="utf-8")
    assert "step 1  loss 1" in text and "step 3  loss 3" in text
    assert "secret" not in text and "step 4" not in text
    assert runlog._own.in_sole_use()


def test_without_a_log_file_only_the_console_gets_the_line(console):
    runlog.setup_logging(None, False, "train rank 1")
    runlog.log_info("step 5  loss 0.5")
    assert console.getvalue() == "[train rank 1] step 5  loss 0.5\n"


def test_a_file_that_cannot_be_written_is_reported_and_the_run_goes_on(tmp_path, console, monkeypatch):
    runlog.setup_logging(tmp_path / "log.txt", False, "train")
    monkeypatch.setattr(logging, "raiseExceptions", True)
    file_handler = runlog.log.handlers[1]

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_handler, "stream", Full())
    runlog.log_info("step 6  loss 0.6")  # does not raise
    output = console.getvalue()
    assert output.startswith("[train] step 6  loss 0.6\n")
    assert "--- Logging error ---" in output and "No space left on device" in output
