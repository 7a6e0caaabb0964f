"""Everyday ``edflow <command>`` subcommands, each a module with ``build_parser()`` and ``main(argv) -> int``."""
from __future__ import annotations

import os
import sys


def emit(text: str) -> None:
    """Print a command's output; a reader that stops early (``edflow runs | head``) is not an error."""
    try:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so the flush at exit does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
