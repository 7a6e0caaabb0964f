"""The ``edflow`` logger of a process: console lines that do not break the progress bars, and its ``log.txt``.

``log_info`` writes the one line every logged step adds (``step 100  loss 0.12``) straight to these two places when
nothing but the handlers :func:`setup_logging` made would see it: the same bytes as Python's logging, in a fraction
of its code.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("edflow")

FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def write_console(line: str) -> None:
    """Write ``line`` (ending in a newline) to stderr, above the progress bars if there are any."""
    if "tqdm" not in sys.modules:  # no bar can exist: tqdm need not be imported
        sys.stderr.write(line)
        sys.stderr.flush()
        return
    from edcore.progress import write_line

    write_line(line)


class TqdmHandler(logging.Handler):
    """Console log lines that do not break the progress bars (:func:`edcore.progress.write_line`)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_console(self.format(record) + "\n")
        except Exception:  # logging must never take the run down
            self.handleError(record)


class OwnHandlers:
    """The handlers :func:`setup_logging` attached, and the lean path for ``log_info``'s lines through them.

    Between real training steps a logged step runs cold, and its console and ``log.txt`` line through Python's
    logging (a ``LogRecord``, two handlers, two formatters, ``time.strftime``) took about 170 µs of the 440 µs its
    log call cost; this path made the log call about 90 µs shorter (benchmarks/README.md). Here the line is one
    f-string per place, with the date and time formatted once per second, as ``logging.Formatter`` formats them.
    Whenever anything else could see the record (another handler, a filter, a formatter or level changed, logging
    disabled) the line goes through logging as before.
    """

    def __init__(self, console: logging.Handler, console_prefix: str, file: logging.FileHandler | None) -> None:
        self.console = console
        self.console_prefix = console_prefix
        self.file = file
        self.handlers = [console] if file is None else [console, file]
        self.formatters = [handler.formatter for handler in self.handlers]
        self.second = -1  # the second self.stamp shows
        self.stamp = ""
        self.info_name = logging.getLevelName(logging.INFO)

    def in_sole_use(self) -> bool:
        """Whether the handlers are the logger's only ones, as made: then the lean path writes what logging would."""
        return (log.handlers == self.handlers and not log.filters and log.isEnabledFor(logging.INFO)
                and all(not handler.filters and handler.level <= logging.INFO and handler.formatter is formatter
                        for handler, formatter in zip(self.handlers, self.formatters))
                and (self.file is None or self.file.stream is not None))

    def write_info(self, message: str) -> None:
        self.console_write(message)
        if self.file is None:
            return
        now = time.time_ns()
        second, nanoseconds = divmod(now, 1_000_000_000)
        formatter = self.file.formatter
        if second != self.second:
            self.stamp = time.strftime(formatter.default_time_format, formatter.converter(second))
            self.second = second
        asctime = formatter.default_msec_format % (self.stamp, nanoseconds // 1_000_000)
        line = f"{asctime} {self.info_name} {message}\n"
        try:
            with self.file.lock:  # a thread of this process (the media writer) may log at the same moment
                self.file.stream.write(line)
                self.file.stream.flush()
        except Exception:
            self.file.handleError(_record(logging.INFO, message))

    def console_write(self, message: str) -> None:
        try:
            with self.console.lock:
                write_console(f"{self.console_prefix}{message}\n")
        except Exception:
            self.console.handleError(_record(logging.INFO, message))


_own: OwnHandlers | None = None


def setup_logging(log_file: Path | None, debug: bool, label: str = "edflow") -> logging.Logger:
    """The ``edflow`` logger: console through tqdm, and ``log_file`` when given."""
    global _own
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False
    console = TqdmHandler()
    console_prefix = f"[{label}] "
    console.setFormatter(logging.Formatter(console_prefix.replace("%", "%%") + "%(message)s"))
    log.addHandler(console)
    file_handler = None
    if log_file is not None:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
        log.addHandler(file_handler)
    _own = OwnHandlers(console, console_prefix, file_handler)
    return log


def log_info(message: str) -> None:
    """``log.info(message)`` for lines written often (every logged step): the lean path of :class:`OwnHandlers`."""
    own = _own
    if own is not None and own.in_sole_use():
        own.write_info(message)
    elif log.isEnabledFor(logging.INFO):
        # log.info would look up its caller first (walking the stack: 7 µs a line); the record names this module.
        log.handle(_record(logging.INFO, message))


def log_to_file(level: int, message: str) -> None:
    """Write ``message`` into this process's log file only, not onto the console."""
    record = _record(level, message)
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _record(level: int, message: str) -> logging.LogRecord:
    return log.makeRecord(log.name, level, __file__, 0, "%s", (message,), None)
