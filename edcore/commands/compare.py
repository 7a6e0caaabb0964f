"""``edflow compare RUN ... | LOGDIR``: one table of many runs: the config keys that differ between them, the last
and the best value of every logged metric, and their status."""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edcore.commands import emit
from edcore.errors import UsageError

#: What "best" means, per ``--mode``: nothing is inferred from a metric's name (an "accuracy" is not assumed to grow).
BEST = {"min": min, "max": max}


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow compare``."""
    parser = argparse.ArgumentParser(prog="edflow compare", description=__doc__.split(": ", 1)[1])
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders, names of runs in --logdir, or one log folder (all of its runs)")
    parser.add_argument("--logdir", default="logs", help="where run names are looked up (default: logs)")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="only runs whose effective config has this value (typed as YAML), e.g. "
                             "--where lr=0.01 or --where optimizer/name=adam; repeatable, all must hold")
    parser.add_argument("--sort", metavar="METRIC",
                        help="order the runs by the best value of this metric (ascending; runs without it last)")
    parser.add_argument("--desc", action="store_true", help="with --sort: descending")
    parser.add_argument("--mode", default="min", choices=sorted(BEST),
                        help="the best value of a metric is its smallest (min, default) or its largest (max) one")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON for scripts")
    output.add_argument("--csv", action="store_true", help="print CSV (one row per run) for spreadsheets")
    return parser


@dataclass
class RunSummary:
    """What ``edflow compare`` knows about one run."""

    run: Path
    status: str
    config: dict[str, Any]  # flattened effective training config
    metrics: dict[str, dict] = field(default_factory=dict)  # name -> {last, last_step, best, best_step}


def resolve_runs(texts: list[str], logdir: str) -> list[Path]:
    """The run folders named by ``texts``: folders, run names in ``logdir``, or one log folder (all its runs)."""
    from edcore.commands.runinfo import find_run, is_run_folder, list_runs

    if len(texts) == 1 and Path(texts[0]).is_dir() and not is_run_folder(Path(texts[0])):
        runs = list_runs(Path(texts[0]))
        if not runs:
            raise UsageError(f"'{texts[0]}' holds no run folders (folders with configs/ and train/); give run "
                             f"folders or the log folder that holds them (see 'edflow runs').")
        return runs
    runs = []
    for text in texts:
        run = find_run(text, logdir)
        if run not in runs:
            runs.append(run)
    return runs


def metric_name(source: str, metric: str) -> str:
    """Training metrics by their own name, evaluation metrics as ``eval/<evaluation>/<metric>``."""
    return metric if source == "train" else f"{source}/{metric}"


def summarize(run: Path, mode: str) -> RunSummary:
    """Status, flattened config and the last and best value of every logged metric of ``run``."""
    from edcore.commands.diff import effective_config, flatten
    from edcore.commands.runinfo import metric_series
    from edcore.commands.runs import run_status

    data, _origins, _path = effective_config(run, "train")
    summary = RunSummary(run, run_status(run)[0], flatten(data) if data else {})
    choose = BEST[mode]
    for series in metric_series(run):
        # nan never counts as best (it compares false with everything); a metric that is only nan has no best
        finite = [(value, step) for step, value in zip(series.steps, series.values) if not math.isnan(value)]
        best = choose(finite, key=lambda pair: pair[0]) if finite else (math.nan, None)
        summary.metrics[metric_name(series.source, series.metric)] = {
            "last": series.values[-1], "last_step": series.steps[-1], "best": best[0], "best_step": best[1],
        }
    return summary


def parse_where(texts: list[str]) -> list[tuple[str, Any]]:
    """``["lr=0.01"]`` -> ``[("lr", 0.01)]``; keys as flattened keypaths (``a/b``; ``a.b`` also works)."""
    conditions = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"--where '{text}': expected KEY=VALUE, e.g. --where lr=0.01 or --where model/depth=3.")
        try:
            parsed = yaml.safe_load(value) if value else None
        except yaml.YAMLError as err:
            raise UsageError(f"--where '{text}': the value '{value}' is not valid YAML ({err}).") from err
        conditions.append((key.strip().replace(".", "/"), parsed))
    return conditions


def select(summaries: list[RunSummary], conditions: list[tuple[str, Any]]) -> list[RunSummary]:
    """The runs whose config has every ``(key, value)``; a key no run has is a usage error (a typo)."""
    for key, _value in conditions:
        if not any(key in s.config for s in summaries):
            known = sorted({k for s in summaries for k in s.config})
            import difflib

            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"--where: no run's effective config has the key '{key}'{hint}")
    return [s for s in summaries if all(key in s.config and matches(s.config[key], value) for key, value in conditions)]


def matches(actual: Any, wanted: Any) -> bool:
    """Equal values, 1 and 1.0 alike, but never true and 1 (YAML's and Python's bool is an int)."""
    return isinstance(actual, bool) == isinstance(wanted, bool) and actual == wanted


def differing_keys(summaries: list[RunSummary]) -> list[str]:
    """The flattened config keys whose value is not the same in every run (or missing in some)."""
    keys = sorted({key for s in summaries for key in s.config})
    missing = object()
    differ = []
    for key in keys:
        values = [s.config.get(key, missing) for s in summaries]
        first = values[0]
        if any(v is missing for v in values) or any(v != first or type(v) is not type(first) for v in values):
            differ.append(key)
    return differ


def metric_names(summaries: list[RunSummary]) -> list[str]:
    """Every metric of any run: training metrics first, then the evaluations', each group by name."""
    names = {name for s in summaries for name in s.metrics}
    return sorted(names, key=lambda name: (name.startswith("eval/"), name))


def check_common_metric(summaries: list[RunSummary]) -> None:
    """Runs that all logged metrics but share none cannot be compared by them: say which run logged what."""
    with_metrics = [s for s in summaries if s.metrics]
    if len(with_metrics) < 2:
        return
    common = set.intersection(*(set(s.metrics) for s in with_metrics))
    if not common:
        listed = "; ".join(f"{s.run.name}: {', '.join(sorted(s.metrics))}" for s in with_metrics)
        raise UsageError(f"the runs have no metric in common ({listed}); compare runs of the same kind of training, "
                         f"or fewer runs.")


def sort_runs(summaries: list[RunSummary], metric: str, descending: bool) -> list[RunSummary]:
    """By the best value of ``metric``; runs without it (or with only nan) last, in their given order."""
    known = metric_names(summaries)
    if metric not in known:
        raise UsageError(f"--sort '{metric}': no run logged this metric; the metrics are {', '.join(known) or 'none'}.")
    having = [s for s in summaries if metric in s.metrics and not math.isnan(s.metrics[metric]["best"])]
    rest = [s for s in summaries if s not in having]
    having.sort(key=lambda s: s.metrics[metric]["best"], reverse=descending)
    return having + rest


_NOT_SET = object()


def show(value: Any) -> str:
    """A config value in a table cell."""
    from edcore.commands.diff import show as show_value

    return "(not set)" if value is _NOT_SET else show_value(value)


def rows(summaries: list[RunSummary], keys: list[str], metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the table (and of the CSV)."""
    from edcore.commands.runinfo import format_number

    header = ["RUN", "STATUS", *keys]
    for metric in metrics:
        header += [f"{metric} last", f"{metric} best"]
    cells = []
    for s in summaries:
        line = [s.run.name, s.status, *(show(s.config.get(key, _NOT_SET)) for key in keys)]
        for metric in metrics:
            entry = s.metrics.get(metric)
            line += ["-", "-"] if entry is None else [format_number(entry["last"]), format_number(entry["best"])]
        cells.append(line)
    return header, cells


def format_table(summaries: list[RunSummary], keys: list[str], metrics: list[str], mode: str) -> str:
    """The aligned table, with a line saying what "best" means."""
    header, cells = rows(summaries, keys, metrics)
    table = [header] + cells
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    best = "smallest" if mode == "min" else "largest"
    lines += ["", f"{len(summaries)} run{'s' if len(summaries) != 1 else ''}; best = the {best} logged value "
                  f"(--mode {mode}); config keys shown: those that differ"
                  + ("" if keys else " (none: the effective configs are the same)")]
    return "\n".join(lines)


def as_json(summaries: list[RunSummary], keys: list[str], metrics: list[str], mode: str) -> str:
    """The comparison for scripts; nan and inf as strings, as in metrics.jsonl."""
    def number(value: Any) -> Any:
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)

    return json.dumps({
        "best": mode,
        "config_keys": keys,
        "metrics": metrics,
        "runs": [{
            "name": s.run.name, "path": str(s.run), "status": s.status,
            "config": {key: s.config[key] for key in keys if key in s.config},
            "metrics": {name: {k: number(v) for k, v in entry.items()} for name, entry in s.metrics.items()},
        } for s in summaries],
    }, indent=2, default=str)


def as_csv(summaries: list[RunSummary], keys: list[str], metrics: list[str]) -> str:
    """One row per run; empty cells where a run has no such key or metric."""
    header, _cells = rows(summaries, keys, metrics)
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([h.lower() if i < 2 else h for i, h in enumerate(header)])
    for s in summaries:
        line: list[Any] = [s.run.name, s.status]
        line += [json.dumps(s.config[key]) if key in s.config and not isinstance(s.config[key], str)
                 else s.config.get(key, "") for key in keys]
        for metric in metrics:
            entry = s.metrics.get(metric)
            line += ["", ""] if entry is None else [repr(entry["last"]), repr(entry["best"])]
        writer.writerow(line)
    return stream.getvalue()


def main(argv: list[str]) -> int:
    """Print one table of the given runs."""
    args = build_parser().parse_args(argv)
    if args.desc and not args.sort:
        raise UsageError("--desc orders the runs of --sort METRIC; give the metric, e.g. --sort loss --desc.")
    conditions = parse_where(args.where)
    summaries = [summarize(run, args.mode) for run in resolve_runs(args.runs, args.logdir)]
    summaries = select(summaries, conditions)
    if not summaries:
        wanted = " and ".join(args.where)
        raise UsageError(f"no run matches --where {wanted}; 'edflow compare' without --where lists them all.")
    check_common_metric(summaries)
    if args.sort:
        summaries = sort_runs(summaries, args.sort, args.desc)
    keys, metrics = differing_keys(summaries), metric_names(summaries)
    if args.json:
        emit(as_json(summaries, keys, metrics, args.mode))
    elif args.csv:
        emit(as_csv(summaries, keys, metrics))
    else:
        emit(format_table(summaries, keys, metrics, args.mode))
    return 0
