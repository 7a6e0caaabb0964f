"""``edflow plot RUN [RUN ...]``: PNG plots of the logged training and evaluation metrics against the global
step, one panel per metric, several runs overlaid."""
from __future__ import annotations

import argparse
import fnmatch
import math
from pathlib import Path
from typing import Any

from edcore.commands import emit
from edcore.errors import EdflowError, UsageError

#: Size of one panel in inches at :data:`DPI`; the PNG is ``columns * 6 * DPI`` by ``rows * 4 * DPI`` pixels.
PANEL_INCHES = (6.0, 4.0)
DPI = 100
MAX_COLUMNS = 2


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow plot``."""
    parser = argparse.ArgumentParser(prog="edflow plot", description=__doc__.split(": ", 1)[1])
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders, names of runs in --logdir, or sweep folders (every trial's run)")
    parser.add_argument("-o", "--output", default="metrics.png", metavar="FILE.png",
                        help="where to write the PNG (default: metrics.png)")
    parser.add_argument("-m", "--metric", action="append", default=[], metavar="PATTERN",
                        help="plot only metrics matching this glob, e.g. -m 'loss*'; repeatable")
    parser.add_argument("--logdir", default="logs", help="where run names are looked up (default: logs)")
    return parser


def import_matplotlib() -> Any:
    """matplotlib's Agg canvas and Figure, or an error saying how to install the optional extra."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise EdflowError(
            f"edflow plot needs matplotlib, which is not installed ({err}). Install the optional extra with "
            f"pip install 'edcore[plot]' (or pip install matplotlib)."
        ) from err
    return FigureCanvasAgg, Figure


def panel_layout(count: int) -> tuple[int, int]:
    """(rows, columns) of the panel grid for ``count`` metrics."""
    columns = min(MAX_COLUMNS, max(count, 1))
    return math.ceil(max(count, 1) / columns), columns


def make_figure(series: list) -> Any:
    """A matplotlib Figure with one panel per (source, metric), each run a line; no global pyplot state."""
    _canvas, Figure = import_matplotlib()
    panels: dict[tuple[str, str], list] = {}
    for item in series:
        panels.setdefault((item.source, item.metric), []).append(item)
    keys = sorted(panels, key=lambda key: (key[0] != "train", key))  # training metrics first
    rows, columns = panel_layout(len(keys))
    figure = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), dpi=DPI, layout="constrained")
    runs = sorted({item.run for item in series})
    for index, key in enumerate(keys):
        axes = figure.add_subplot(rows, columns, index + 1)
        source, metric = key
        for item in sorted(panels[key], key=lambda s: runs.index(s.run)):
            marker = "o" if len(item.steps) < 30 else None  # few points (evaluations): show each
            axes.plot(item.steps, item.values, label=item.run, marker=marker, markersize=3)
        axes.set_title(f"{source}: {metric}")
        axes.set_xlabel("global step")
        axes.set_ylabel(metric)
        axes.grid(True, alpha=0.3)
        if len(runs) > 1:
            axes.legend(fontsize="small")
    return figure


def runs_named(text: str, logdir: str) -> list[Path]:
    """The run folder ``text`` names, or the run folders of the trials of the sweep folder ``text``."""
    from edcore.commands.runinfo import find_run
    from edcore.sweep import is_sweep_folder, read_state, trial_run

    folder = Path(text)
    if is_sweep_folder(folder):
        runs = [trial_run(folder, trial) for trial in read_state(folder)["trials"] if trial.get("run")]
        if not runs:
            raise UsageError(f"sweep '{text}' has no trial with a run folder yet: nothing to plot.")
        return runs
    return [find_run(text, logdir)]


def main(argv: list[str]) -> int:
    """Plot the metrics of the given runs into one PNG."""
    args = build_parser().parse_args(argv)
    from edcore.commands.runinfo import find_run, metric_series

    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise UsageError(f"-o/--output '{output}': edflow plot writes PNG files; use a name ending in .png.")
    runs = [run for text in args.runs for run in runs_named(text, args.logdir)]
    canvas_class, _figure = import_matplotlib()
    series = [s for run in runs for s in metric_series(run)]
    if args.metric:
        series = [s for s in series if any(fnmatch.fnmatch(s.metric, p) for p in args.metric)]
    if not series:
        which = f" matching {', '.join(args.metric)}" if args.metric else ""
        raise UsageError(f"no logged metrics{which} in {', '.join(str(r) for r in runs)}: nothing to plot "
                         f"(train/metrics.jsonl is written every log_freq steps).")
    figure = make_figure(series)
    output.parent.mkdir(parents=True, exist_ok=True)
    canvas_class(figure).print_png(str(output))
    panels = len({(s.source, s.metric) for s in series})
    emit(f"wrote {output} ({panels} metric{'s' if panels != 1 else ''}, {len(runs)} run{'s' if len(runs) != 1 else ''})")
    return 0
