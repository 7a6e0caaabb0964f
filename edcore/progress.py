"""edflow's progress bars (tqdm), and clearing them cheaply for a console line.

Imported only when a bar is made or a line is written while bars exist: tqdm is not part of ``edflow --help``.
"""
from __future__ import annotations

import math
import sys
from typing import Any

from tqdm import tqdm
from tqdm.utils import disp_len


class ProgressBar(tqdm):
    """A tqdm bar that remembers the width of the line it drew last, so a console line can blank it with one write.

    ``tqdm.clear`` moves the cursor, redraws the bar as an empty line and moves back: four writes and three
    flushes through tqdm's stream wrapper, about 20 µs, a third of what a logged step cost (benchmarks/README.md).
    """

    drawn = 0

    def display(self, msg: str | None = None, pos: int | None = None) -> Any:
        if msg is None:
            msg = self.__str__()
        self.drawn = disp_len(msg)
        return super().display(msg, pos)


def make_progress(total: float, initial: int, desc: str, position: int) -> ProgressBar:
    return ProgressBar(total=None if math.isinf(total) else int(total), initial=initial, desc=desc,
                       position=position, dynamic_ncols=True, leave=True, file=sys.stderr, smoothing=0.1, unit="step")


def write_line(line: str) -> None:
    """Write ``line`` (ending in a newline) to stderr above this process's bars; each bar redraws itself at its
    next update (within its ``mininterval``, 0.1 s).

    ``tqdm.write`` would redraw every bar at once, formatting each (about 100 µs).
    """
    bars = [bar for bar in getattr(tqdm, "_instances", ()) if not bar.disable]
    if not bars:
        sys.stderr.write(line)
        sys.stderr.flush()
        return
    with tqdm.get_lock():
        if len(bars) == 1 and type(bars[0]) is ProgressBar and bars[0].pos == 0:
            # The common case, one edflow bar on the cursor's line: blank it and write the line in one go.
            bar = bars[0]
            bar.fp.write("\r" + " " * bar.drawn + "\r")
            bar.drawn = 0
        else:
            for bar in bars:
                bar.clear(nolock=True)
        sys.stderr.write(line)
        sys.stderr.flush()
