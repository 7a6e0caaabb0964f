"""edflow-csv-metrics: the logged training scalars as a CSV file, for spreadsheets and pandas.

Installed, it is found through its entry point ``csv_metrics`` of group ``edflow``. It acts only in runs whose
config has a ``csv_metrics:`` section (``csv_metrics: {}`` for the defaults)::

    csv_metrics:
      file: metrics.csv      # inside the run's train/ folder
      every: 1               # write every Nth logged step (log_freq still decides which steps are logged)

A metric that appears after the first row adds a column: the file is rewritten once with the wider header.
Reopening a run with ``edflow -p`` appends to the file it already has.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from edcore import hookimpl

__all__ = ["CsvMetrics", "SCHEMA"]

#: The ``csv_metrics:`` config section; edcore validates it (with "did you mean" for typos) before a run starts.
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "pattern": r"^[^/\\]+\.csv$", "description": "file name inside train/"},
        "every": {"type": "integer", "minimum": 1, "description": "write every Nth logged step"},
    },
}


class CsvMetrics:
    """Writes one CSV row per logged training step: ``global_step`` and every scalar of the log op."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.every = 1
        self.columns: list[str] = []
        self.logged = 0

    @hookimpl
    def edflow_config_schema(self):
        return {"csv_metrics": SCHEMA}

    @hookimpl
    def edflow_project_init(self, project, config, mode):
        settings = config.get("csv_metrics")
        if mode != "train" or settings is None:
            return
        self.path = Path(project.train) / settings.get("file", "metrics.csv")
        self.every = settings.get("every", 1)
        self.logged = 0
        self.columns = read_header(self.path)

    @hookimpl
    def edflow_log(self, global_step, logs, mode):
        if self.path is None or mode != "train":
            return
        self.logged += 1
        if (self.logged - 1) % self.every:
            return
        row = {"global_step": global_step, **(logs.get("scalars") or {})}
        new = [name for name in row if name not in self.columns]
        if new:
            self.columns = (self.columns or ["global_step"]) + [n for n in new if n != "global_step"]
            rewrite(self.path, self.columns)
        with open(self.path, "a", newline="", encoding="utf-8") as stream:
            csv.DictWriter(stream, self.columns, restval="").writerow(row)

    @hookimpl
    def edflow_after_training(self, iterator, status):
        self.path = None


def read_header(path: Path) -> list[str]:
    """The columns of an existing CSV file (a reopened run), or none."""
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            return next(csv.reader(stream), [])
    except OSError:
        return []


def rewrite(path: Path, columns: list[str]) -> None:
    """Rewrite ``path`` with the header ``columns``, keeping its rows; atomic, so a crash leaves the old file."""
    rows = []
    if path.exists():
        with open(path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
