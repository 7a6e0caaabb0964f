"""Console lines written while edflow's progress bar is drawn: the bar is blanked first, so no remnant of it is
left on the line (checked on what a terminal shows: every carriage return overwrites from the first column)."""
from __future__ import annotations

import io
import sys

from edcore.progress import ProgressBar, make_progress, write_line


def screen(output: str) -> list[str]:
    """The lines a terminal shows for ``output``: ``\\r`` returns to the first column and overwrites."""
    lines = []
    for raw in output.split("\n"):
        cells: list[str] = []
        column = 0
        for part in raw.split("\r"):
            cells[column:column + len(part)] = part
            column = 0
        lines.append("".join(cells).rstrip())
    return lines


def test_a_line_written_under_one_bar_leaves_no_remnant_and_the_bar_draws_again(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    bar = make_progress(1000, 0, "train epoch 1", 0)
    try:
        assert type(bar) is ProgressBar
        bar.update(10)
        bar.refresh()
        assert bar.drawn > len("[edflow] step 10  loss 0.5")  # longer than the line: a remnant would show
        write_line("[edflow] step 10  loss 0.5\n")
        bar.update(10)
        bar.refresh()
    finally:
        bar.close()
    shown = screen(stream.getvalue())
    assert "[edflow] step 10  loss 0.5" in shown
    assert shown[shown.index("[edflow] step 10  loss 0.5") + 1].startswith("train epoch 1:")
    assert "20/1000" in stream.getvalue()


def test_with_two_bars_each_is_cleared_through_tqdm(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    bars = [make_progress(100, 0, "train", 0), make_progress(100, 0, "eval", 1)]
    try:
        for bar in bars:
            bar.update(5)
            bar.refresh()
        write_line("[edflow] a line\n")
    finally:
        for bar in reversed(bars):
            bar.close()
    output = stream.getvalue()
    assert "[edflow] a line\n" in output  # after tqdm has cleared each bar
