"""What every benchmark shares: interleaved trials, medians with their range, ratios, the machine state, output."""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def arguments(description: str, **extra: Any) -> argparse.ArgumentParser:
    """The options every benchmark script takes: ``--quick``, ``--trials`` and ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (numbers mean nothing)")
    parser.add_argument("--trials", type=int, default=None, help="rounds of all variants (default 7, quick 1)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here (default: results/)")
    return parser


def machine_state() -> dict:
    """Load, cores and versions: absolute times only mean something next to these."""
    state: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        state["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as stream:
            info = dict(line.split(":", 1) for line in stream)
        state["mem_available_gib"] = round(int(info["MemAvailable"].split()[0]) / 2**20, 1)
    except (OSError, KeyError, ValueError):
        pass
    return state


class Stopwatch:
    """Wall time and this process's CPU time between ``start()`` and ``stop()``.

    On a machine shared with other people's jobs the wall time of a step also counts the time the process waited
    for a core; its CPU time does not, so CPU-time ratios stay stable under load (every variant here runs on one
    thread, where CPU time is the work done).
    """

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.result: dict = {}

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> dict:
        self.result = {"seconds": time.perf_counter() - self.wall, "cpu_seconds": time.process_time() - self.cpu}
        return self.result


def interleave(variants: dict[str, Callable[[], dict]], trials: int, warmup: int = 1) -> dict[str, list[dict]]:
    """Run the variants round-robin (A B C A B C ...), ``warmup`` uncounted rounds first.

    Each variant returns a dict with at least ``seconds``. Load from other processes then hits every variant
    alike, and the per-round ratios to the first variant cancel most of it.
    """
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(warmup + trials):
        # Each round starts one variant later (A B C, B C A, C A B, ...): no variant always runs first, or always
        # right after the same one, so what a run leaves behind (caches, allocator, a peer's threads) hits all alike.
        shift = round_index % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            run = variants[name]
            sample = run()
            if round_index >= warmup:
                samples[name].append(sample)
    return samples


def summarize(samples: dict[str, list[dict]], key: str = "seconds", per: str | None = None,
              scale: float = 1.0, baseline: str | None = None, higher_is_better: bool = False) -> list[dict]:
    """One row per variant: median, min and max of ``key`` (divided by ``sample[per]``, times ``scale``) and the
    ratio to ``baseline`` (the median of the per-round ratios, so the rounds pair up)."""
    def values(name: str) -> list[float]:
        return [s[key] / (s[per] if per else 1) * scale for s in samples[name]]

    baseline = baseline or next(iter(samples))
    base = values(baseline)
    rows = []
    for name in samples:
        vals = values(name)
        row = {"variant": name, "median": statistics.median(vals), "min": min(vals), "max": max(vals),
               "trials": len(vals)}
        if name != baseline and len(vals) == len(base):
            ratios = [v / b for v, b in zip(vals, base)]
            row["ratio"] = statistics.median(ratios)
            interval = median_interval(ratios)
            if interval is not None:
                row["ratio_ci"] = interval
            row["ratio_of_minimums"] = round(min(vals) / min(base), 3)  # the least disturbed trials
        elif name == baseline:
            row["ratio"] = 1.0
            row["ratio_of_minimums"] = 1.0
        extra = {k: v for k, v in samples[name][-1].items() if k not in (key, per, "seconds", "cpu_seconds")}
        row.update(extra)
        rows.append(row)
    return rows


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval for the median of ``values`` (order statistics of the binomial
    distribution: no assumption about how the rounds scatter); ``None`` below 6 values, where none reaches 95%."""
    n = len(values)
    ordered = sorted(values)
    below = 0.0  # P(X < k) for X ~ Binomial(n, 1/2)
    k = 0
    while True:
        below_next = below + math.comb(n, k) / 2 ** n
        if 2 * below_next > 1 - level:
            break
        below, k = below_next, k + 1
    if k == 0:
        return None
    return ordered[k - 1], ordered[n - k]


def fmt(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, without scientific notation for the usual ranges."""
    if value == 0:
        return "0"
    if abs(value) >= 10 ** digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def table(rows: list[dict], unit: str, columns: tuple[str, ...] = (), ratio_label: str | None = "ratio") -> str:
    """A markdown table: variant, median, min-max, the ratio (unless ``ratio_label`` is None) and ``columns``."""
    head = ["variant", f"median {unit}", "min-max", *([ratio_label] if ratio_label else []), *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["variant"], fmt(row["median"]), f"{fmt(row['min'])}-{fmt(row['max'])}"]
        if ratio_label:
            ratio = f"{row['ratio']:.3f}x" if "ratio" in row else "-"
            if "ratio_ci" in row:
                ratio += f" ({row['ratio_ci'][0]:.3f}-{row['ratio_ci'][1]:.3f})"
            cells.append(ratio)
        for column in columns:
            value = row.get(column, "-")
            cells.append(f"{value:.6g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(result: dict) -> str:
    """A result (as ``report`` writes it) as markdown: the title, the machine state and the tables."""
    start, end = result["machine_start"], result["machine_end"]
    lines = [f"## {result['title']}\n",
             f"machine: {start['cpus']} CPUs, load average {start.get('loadavg')} at start, {end.get('loadavg')} at "
             f"the end, {start['time']}; Python {start['python']}\n"]
    for heading, text in result["sections"]:
        if heading:
            lines.append(f"{heading}\n")
        lines.append(text + "\n")
    return "\n".join(lines)


def report(name: str, title: str, sections: list[tuple[str, str]], data: dict, out: Path | None,
           started_state: dict) -> None:
    """Print the tables with the machine state and write everything as JSON (``results/<name>.json``)."""
    result = {"name": name, "title": title, "machine_start": started_state, "machine_end": machine_state(),
              "sections": sections, **data}
    print(render(result))
    out = out or RESULTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    sys.stdout.flush()


class quiet_output:
    """Send file descriptors 1 and 2 (progress bars, log lines) to a file while a variant runs, for every variant
    alike: a bar drawn on a terminal costs more than one drawn into a file, and the report stays readable."""

    def __init__(self, path: str = os.devnull) -> None:
        self.path = path

    def __enter__(self) -> "quiet_output":
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        target = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(target, 1)
        os.dup2(target, 2)
        os.close(target)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)
