"""``edflow report RUN ... | LOGDIR``: one self-contained HTML file with the runs' metric curves, their config
differences, their latest logged images and their evaluation results, readable offline."""
from __future__ import annotations

import argparse
import base64
import datetime
import html
from pathlib import Path
from typing import Any

from edcore.commands import emit
from edcore.errors import EdflowError, UsageError

#: Each chart's size in pixels (plotly's layout width and height).
CHART_SIZE = (640, 360)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 0.25em 0.75em; border: 1px solid #ddd; }
th { background: #f4f4f4; text-align: left; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; } .images { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; }
img { min-width: 128px; image-rendering: pixelated; }  /* small grids scaled up, pixel by pixel */
"""


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow report``."""
    parser = argparse.ArgumentParser(prog="edflow report", description=__doc__.split(": ", 1)[1])
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders, names of runs in --logdir, or one log folder (all of its runs)")
    parser.add_argument("-o", "--output", default="report.html", metavar="FILE.html",
                        help="where to write the page (default: report.html)")
    parser.add_argument("--logdir", default="logs", help="where run names are looked up (default: logs)")
    parser.add_argument("--mode", default="min", choices=("max", "min"),
                        help="the best value of a metric is its smallest (min, default) or its largest (max) one")
    return parser


def import_plotly() -> Any:
    """plotly's graph objects, its HTML writer and its JavaScript, or an error saying how to install the extra."""
    try:
        import plotly.graph_objects as graph_objects
        import plotly.io as plotly_io
        from plotly.offline import get_plotlyjs
    except ImportError as err:
        raise EdflowError(
            f"edflow report needs plotly, which is not installed ({err}). Install the optional extra with "
            f"pip install 'edcore[report]' (or pip install plotly)."
        ) from err
    return graph_objects, plotly_io, get_plotlyjs


def charts(series: list, graph_objects: Any, plotly_io: Any) -> list[str]:
    """One chart (an HTML div with its data inline) per metric, one line per run; training metrics first."""
    from edcore.commands.compare import metric_name

    panels: dict[str, list] = {}
    for item in series:
        panels.setdefault(metric_name(item.source, item.metric), []).append(item)
    divs = []
    for index, name in enumerate(sorted(panels, key=lambda name: (name.startswith("eval/"), name))):
        figure = graph_objects.Figure()
        for item in panels[name]:
            mode = "lines+markers" if len(item.steps) < 30 else "lines"  # few points (evaluations): show each
            figure.add_trace(graph_objects.Scatter(x=item.steps, y=item.values, name=item.run, mode=mode))
        figure.update_layout(title=name, width=CHART_SIZE[0], height=CHART_SIZE[1], xaxis_title="global step",
                             yaxis_title=name.rsplit("/", 1)[-1], margin={"l": 60, "r": 20, "t": 50, "b": 50},
                             showlegend=True)
        # plotly.js once for the page (below), not once per chart; a fixed div id keeps the file reproducible
        divs.append(plotly_io.to_html(figure, full_html=False, include_plotlyjs=False, div_id=f"metric-{index}",
                                      config={"displaylogo": False}))
    return divs


def latest_images(run: Path) -> list[tuple[str, Path]]:
    """The newest PNG of each image key in ``train/images/<key>/<global_step>.png``."""
    root = run / "train" / "images"
    if not root.is_dir():
        return []
    newest: dict[str, Path] = {}
    for path in sorted(root.rglob("*.png")):  # zero-padded steps: the name order is the step order
        newest[str(path.parent.relative_to(root))] = path
    return sorted(newest.items())


def table(header: list[str], rows: list[list[str]], numeric_from: int) -> str:
    """An HTML table; the cells from column ``numeric_from`` on are right-aligned numbers."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td{' class=number' if i >= numeric_from else ''}>{html.escape(cell)}</td>"
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def evaluation_rows(series: list) -> list[list[str]]:
    """run, evaluation, global step, metric, value: every evaluated checkpoint."""
    from edcore.commands.runinfo import format_number

    rows = []
    for item in sorted((s for s in series if s.source != "train"), key=lambda s: (s.run, s.source, s.metric)):
        rows += [[item.run, item.source.split("/", 1)[1], str(step), item.metric, format_number(value)]
                 for step, value in zip(item.steps, item.values)]
    return rows


def page(runs: list[Path], mode: str) -> str:
    """The whole report as one HTML document."""
    from edcore.commands.compare import check_common_metric, differing_keys, metric_names, rows, show, summarize
    from edcore.commands.runinfo import metric_series

    graph_objects, plotly_io, get_plotlyjs = import_plotly()
    summaries = [summarize(run, mode) for run in runs]
    check_common_metric(summaries)
    series = [s for run in runs for s in metric_series(run)]
    if not series:
        raise UsageError(f"no logged metrics in {', '.join(str(r) for r in runs)}: nothing to report "
                         f"(train/metrics.jsonl is written every log_freq steps).")
    keys = differing_keys(summaries)
    header, cells = rows(summaries, [], metric_names(summaries))
    best = "smallest" if mode == "min" else "largest"
    parts = [f"<h1>edflow report: {len(runs)} run{'s' if len(runs) != 1 else ''}</h1>",
             f"<p>written {html.escape(datetime.datetime.now().isoformat(timespec='seconds'))}; best = the {best} "
             f"logged value</p>",
             "<h2>Runs</h2>", table(header, cells, 2),
             "<h2>Metrics</h2>", '<div class="charts">', *charts(series, graph_objects, plotly_io), "</div>",
             "<h2>Config differences</h2>"]
    if keys:
        parts.append(table(["key", *(s.run.name for s in summaries)],
                           [[key, *(show(s.config[key]) if key in s.config else "(not set)" for s in summaries)]
                            for key in keys], 1))
    else:
        parts.append("<p>The effective training configs are the same.</p>")
    parts.append("<h2>Latest images</h2>")
    figures = []
    for run in runs:
        for key, path in latest_images(run):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            caption = f"{run.name}: {key} at global step {int(path.stem) if path.stem.isdigit() else path.stem}"
            figures.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append(f'<div class="images">{"".join(figures)}</div>' if figures else "<p>No images were logged.</p>")
    parts.append("<h2>Evaluations</h2>")
    evaluations = evaluation_rows(series)
    parts.append(table(["run", "evaluation", "global step", "metric", "value"], evaluations, 2) if evaluations
                 else "<p>No evaluation results.</p>")
    # plotly.js inline in the head, before the charts' scripts: the page needs no server and no network.
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(', '.join(r.name for r in runs))}</title><style>{STYLE}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script>"
            f"</head><body>{''.join(parts)}</body></html>\n")


def main(argv: list[str]) -> int:
    """Write the HTML report of the given runs."""
    args = build_parser().parse_args(argv)
    from edcore.commands.compare import resolve_runs
    from edcore.project import write_text_atomic

    output = Path(args.output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o/--output '{output}': edflow report writes one HTML file; use a name ending in .html.")
    runs = resolve_runs(args.runs, args.logdir)
    inside = [run for run in runs if output.resolve().is_relative_to(run.resolve())]
    if inside:
        raise UsageError(f"-o/--output '{output}' is inside the run folder '{inside[0]}'; a report never writes into "
                         f"a run. Write it next to the runs, e.g. -o report.html.")
    text = page(runs, args.mode)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, text)
    emit(f"wrote {output} ({len(runs)} run{'s' if len(runs) != 1 else ''}, {len(text) // 1024} KiB, "
         f"plotly.js inline: opens offline)")
    return 0
