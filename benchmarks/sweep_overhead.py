"""Workload 9: what ``edflow sweep`` adds per trial. A grid of the numpy toy training run by ``edflow sweep`` (local
launcher, one trial at a time) next to the same trainings started by hand, one ``edflow -t ... --lr=X`` after the
other, as a shell loop would.

Both variants train the same runs in fresh processes; the sweep's extra work is validating every trial up front,
writing sweep.json after every change and reading each trial's metric. One trial at a time, so the figure is the
overhead and not the parallelism (``max_parallel`` runs trials side by side on a machine with the cores for it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml
from common import arguments, interleave, machine_state, report, summarize, table


def write_project(root: Path, values: list[float]) -> None:
    from edcore.testing import TOY_CONFIG, TOY_PACKAGE

    for relative, text in TOY_PACKAGE.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(textwrap.dedent(text).lstrip("\n"))
    (root / "train.yaml").write_text(yaml.safe_dump({**TOY_CONFIG, "lr": 0.1}, sort_keys=False))
    (root / "sweep.yaml").write_text(yaml.safe_dump({"train": "train.yaml", "name": "bench",
                                                     "parameters": {"lr": values}, "metric": "loss"}))


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    trials = args.trials or (1 if args.quick else 5)
    count = 2 if args.quick else 8
    values = [round(0.01 * (index + 1), 2) for index in range(count)]
    state = machine_state()
    edflow = str(Path(sys.executable).with_name("edflow"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="edflow-bench-sweep-") as tmp:
        root = Path(tmp)
        write_project(root, values)

        def run(command: list) -> None:
            result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
            if result.returncode != 0:
                raise SystemExit(f"{command} failed:\n{result.stderr[-2000:]}")

        def by_hand() -> dict:
            start = time.perf_counter()
            for value in values:
                run([edflow, "-t", "train.yaml", f"--lr={value}", "--logdir=logs/by-hand"])
            return {"seconds": time.perf_counter() - start, "trials": count}

        def sweep() -> dict:
            start = time.perf_counter()
            run([edflow, "sweep", "sweep.yaml"])
            return {"seconds": time.perf_counter() - start, "trials": count}

        samples = interleave({"by hand: one edflow -t per trial": by_hand,
                              "edflow sweep, local launcher, max_parallel 1": sweep}, trials,
                             warmup=0 if args.quick else 1)
        folders = sorted((root / "logs" / "sweeps").iterdir())
        metrics = [trial["metric"] for trial in json.loads((folders[-1] / "sweep.json").read_text())["trials"]]
    rows = summarize(samples, per="trials")
    text = table(rows, "s per trial")
    overhead = rows[1]["median"] - rows[0]["median"]
    summary = (f"{count} trials of 10 steps each; edflow sweep adds {overhead * 1000:.0f} ms per trial over starting "
               f"the same trainings by hand (median of {trials} rounds).")
    report("sweep_overhead", "Sweep overhead per trial", [("", text), ("", summary)],
           {"rows": rows, "trials_per_sweep": count, "metrics": metrics}, args.out, state)


if __name__ == "__main__":
    main()
