"""Reading run folders for the everyday commands (``runs``, ``diff``, ``plot``); nothing here writes."""
from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from edcore.errors import UsageError

#: Keys of a metrics.jsonl record that are bookkeeping, not metrics (evaluations add ``num_examples``).
NON_METRIC_KEYS = ("global_step", "time", "step", "epoch", "num_examples")


def is_run_folder(path: Path) -> bool:
    """A folder that ``edflow -t`` created: it has ``configs/`` and ``train/``."""
    return (path / "configs").is_dir() and (path / "train").is_dir()


def find_run(text: str, logdir: str = "logs") -> Path:
    """The run folder named by ``text``: a path, or a folder name (or its unique end, like ``_baseline``) in
    ``logdir``."""
    path = Path(text)
    if path.is_dir() and is_run_folder(path):
        return path
    if path.exists():
        raise UsageError(f"'{text}' is not an edflow run folder: it has no configs/ and train/ folders. Pass a folder "
                         f"that 'edflow -t' created, like logs/2026-01-01T12-00-00_name (see 'edflow runs').")
    candidates = [p for p in list_runs(Path(logdir)) if p.name == text or p.name.endswith(text)]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates[:5])
        raise UsageError(f"'{text}' matches {len(candidates)} runs in '{logdir}' ({names}); give the full folder name.")
    raise UsageError(f"run folder '{text}' does not exist (nor a run of that name in '{logdir}'); "
                     f"'edflow runs {logdir}' lists the runs.")


def list_runs(logdir: Path) -> list[Path]:
    """The run folders in ``logdir`` (and in ``logdir/debug``), oldest first by folder name."""
    if not logdir.is_dir():
        return []
    folders = [p for p in logdir.iterdir() if p.is_dir() and is_run_folder(p)]
    debug = logdir / "debug"
    if debug.is_dir():
        folders += [p for p in debug.iterdir() if p.is_dir() and is_run_folder(p)]
    return sorted(folders, key=lambda p: (p.name, str(p)))


def start_time(run: Path) -> str | None:
    """When the run was created: its folder name's timestamp, else the time of its first recorded invocation."""
    from edcore.project import TIMESTAMP_FORMAT

    try:
        return datetime.datetime.strptime(run.name[:19], TIMESTAMP_FORMAT).isoformat(timespec="seconds")
    except ValueError:
        pass
    try:
        invocations = json.loads((run / "run.json").read_text()).get("invocations") or []
        return str(invocations[0]["time"]) if invocations and invocations[0].get("time") else None
    except (OSError, ValueError, AttributeError):
        return None


def read_jsonl(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file; a torn last line (a run writing right now) is left out."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def metric_values(record: dict) -> dict[str, float]:
    """The numeric metrics of one record (non-finite values were written as strings like "nan")."""
    values = {}
    for key, value in record.items():
        if key in NON_METRIC_KEYS or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            values[key] = float(value)
        elif value in ("nan", "inf", "-inf"):
            values[key] = float(value)
    return values


@dataclass
class Series:
    """One metric of one run against the global step."""

    run: str
    source: str  # "train" or "eval/<name>"
    metric: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def metric_series(run: Path) -> list[Series]:
    """Every logged metric of ``run``: ``train/metrics.jsonl`` and the evaluations' ``metrics.jsonl`` files."""
    files = [("train", run / "train" / "metrics.jsonl")]
    eval_root = run / "eval"
    if eval_root.is_dir():
        for path in sorted(eval_root.glob("*/metrics.jsonl")) + sorted(eval_root.glob("*/*/metrics.jsonl")):
            evaluation = path.relative_to(eval_root).parts[0]
            name = evaluation.split("_", 1)[1] if "_" in evaluation else evaluation
            files.append((f"eval/{name}", path))
    found: dict[tuple[str, str], dict[int, float]] = {}
    for source, path in files:
        for record in read_jsonl(path):
            step = record.get("global_step", record.get("step"))
            if step is None and path.parent.name.isdigit():
                step = int(path.parent.name)  # a metrics.jsonl inside eval/<evaluation>/<global_step>/
            if not isinstance(step, (int, float)):
                continue
            for metric, value in metric_values(record).items():
                # The last record of a step wins: a resumed training or a repeated evaluation logs it again.
                found.setdefault((source, metric), {})[int(step)] = value
    return [Series(run.name, source, metric, sorted(values), [values[s] for s in sorted(values)])
            for (source, metric), values in found.items()]


def last_metrics(run: Path) -> dict[str, float]:
    """The metrics of the last record of ``train/metrics.jsonl``."""
    records = read_jsonl(run / "train" / "metrics.jsonl")
    return metric_values(records[-1]) if records else {}


def format_number(value: float) -> str:
    """Four significant digits, or nan/inf as they are."""
    return f"{value:.4g}" if math.isfinite(value) else str(value)
