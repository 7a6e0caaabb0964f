"""``edflow runs [LOGDIR]``: the runs in a log folder with their status, latest checkpoint and last metrics."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edcore.commands import emit
from edcore.errors import UsageError


#: The status a checkpoint's ``reason`` implies, for run folders without ``status.json``.
REASON_STATUS = {"final": "finished", "interrupt": "interrupted", "exception": "failed"}


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow runs``."""
    parser = argparse.ArgumentParser(prog="edflow runs", description=__doc__.split(": ", 1)[1])
    parser.add_argument("logdir", nargs="?", default="logs", metavar="LOGDIR",
                        help="the folder holding the run folders (default: logs), or a sweep folder "
                             "(logs/sweeps/<time>_<name>): its trials, best metric first")
    parser.add_argument("--json", action="store_true", help="print a JSON list for scripts")
    return parser


def run_status(run: Path) -> tuple[str, dict, object]:
    """The status of one run folder (``status.json``, else its last checkpoint's reason), the status record and
    the latest checkpoint (or None)."""
    from edcore.builtin.status import read_status
    from edcore.checkpoint import CheckpointStore

    status = read_status(run)
    latest = CheckpointStore(run / "train" / "checkpoints").latest()
    state = status.get("status", "unknown")
    if state == "unknown" and latest is not None:
        # Runs from before status.json existed: the reason of the last checkpoint tells how the training ended.
        state = REASON_STATUS.get(latest.manifest.get("reason"), "unknown")
    return state, status, latest


def describe_run(run: Path, logdir: Path) -> dict:
    """What ``edflow runs`` shows about one run folder."""
    from edcore.commands.runinfo import last_metrics, start_time

    state, status, latest = run_status(run)
    return {
        "name": str(run.relative_to(logdir)),
        "path": str(run),
        "started": start_time(run),
        "status": state,
        "pid": status.get("pid") if status.get("status") == "running" else None,
        "host": status.get("host"),
        "checkpoint_step": latest.step if latest else None,
        "metrics": last_metrics(run),
    }


def status_text(row: dict) -> str:
    """The status column: ``running (PID n)`` or how the run ended."""
    if row["status"] == "running":
        return f"running (PID {row['pid']})"
    return row["status"]


def format_table(rows: list[dict]) -> str:
    """The rows as aligned columns; metrics as ``name value`` pairs in the last column."""
    from edcore.commands.runinfo import format_number

    header = ("RUN", "STARTED", "STATUS", "CHECKPOINT", "LAST METRICS")
    cells = [header] + [
        (row["name"], (row["started"] or "?").replace("T", " "), status_text(row),
         "-" if row["checkpoint_step"] is None else str(row["checkpoint_step"]),
         "  ".join(f"{k} {format_number(v)}" for k, v in row["metrics"].items()) or "-")
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in cells)


def describe_trials(folder: Path) -> list[dict]:
    """The trials of a sweep folder, best first by the sweep's metric (``mode`` min or max)."""
    from edcore.sweep import read_state, sort_trials

    state = read_state(folder)
    sweep = state.get("sweep") or {}
    rows = []
    for trial in sort_trials(state["trials"], sweep.get("mode", "min")):
        rows.append({"trial": trial["id"], "status": trial["status"], "metric_name": sweep.get("metric"),
                     "metric": trial.get("metric"), "parameters": trial["parameters"],
                     "run": str(folder / trial["run"]) if trial.get("run") else None})
    return rows


def format_trials(rows: list[dict]) -> str:
    """The trials as aligned columns; the parameters as ``key=value`` pairs in the last column."""
    from edcore.commands.runinfo import format_number
    from edcore.sweep import describe_parameters

    metric = next((row["metric_name"] for row in rows if row["metric_name"]), None) or "METRIC"
    header = ("TRIAL", "STATUS", metric.upper(), "RUN", "PARAMETERS")
    cells = [header] + [
        (str(row["trial"]), row["status"], "-" if row["metric"] is None else format_number(row["metric"]),
         Path(row["run"]).name if row["run"] else "-", describe_parameters(row["parameters"]))
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in cells)


def main(argv: list[str]) -> int:
    """Print the runs of a log folder (or the trials of a sweep folder) as a table or JSON."""
    args = build_parser().parse_args(argv)
    from edcore.commands.runinfo import list_runs
    from edcore.sweep import is_sweep_folder

    logdir = Path(args.logdir)
    if is_sweep_folder(logdir):
        trials = describe_trials(logdir)
        emit(json.dumps(trials, indent=2) if args.json else format_trials(trials))
        return 0
    if not logdir.is_dir():
        raise UsageError(f"log folder '{logdir}' does not exist; give the folder that holds your run folders "
                         f"(the config key logdir, default logs).")
    rows = [describe_run(run, logdir) for run in list_runs(logdir)]
    if args.json:
        emit(json.dumps(rows, indent=2))
    elif rows:
        emit(format_table(rows))
    else:
        emit(f"no runs in '{logdir}'")
    return 0
