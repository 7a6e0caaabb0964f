"""Run every benchmark, one after another, and collect their tables into ``results/RESULTS.md``.

    .venv/bin/python benchmarks/run_all.py            # installs benchmarks/requirements.txt first
    .venv/bin/python benchmarks/run_all.py --quick    # a smoke run in a minute or two; the numbers mean nothing

Each benchmark is a separate process (so one framework's threads and caches never meet another's) and runs alone:
running two at once on a small machine would measure their contention.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
#: (result name, script, extra arguments) in the order of the README's workloads.
BENCHMARKS = (
    ("loop_overhead_torch", "loop_overhead.py", []),
    ("loop_overhead_tf", "loop_overhead.py", ["--tf"]),
    ("data_throughput", "data_throughput.py", []),
    ("startup", "startup.py", []),
    ("resume", "resume.py", []),
    ("checkpoint_cost", "checkpoint_cost.py", []),
    ("hook_dispatch", "hook_dispatch.py", []),
    ("media_cost", "media_cost.py", []),
    ("user_path", "user_path.py", []),
    ("user_path_tf", "user_path.py", ["--tf"]),
    ("sweep_overhead", "sweep_overhead.py", []),
)

#: Scripts run by hand (README), whose results RESULTS.md shows too when they are in the folder.
RUN_ALONE = ("loop_ablation", "loop_defaults", "loop_ablation_tf", "step_anatomy", "step_anatomy_wide", "log_period")


def write_results(folder: Path) -> None:
    """``RESULTS.md`` from every result in ``folder``, in the workloads' order (a rerun of one script updates
    its part only)."""
    from common import render

    parts = []
    for name in [name for name, _script, _extra in BENCHMARKS] + list(RUN_ALONE):
        path = folder / f"{name}.json"
        if path.exists():
            parts.append(render(json.loads(path.read_text())))
    (folder / "RESULTS.md").write_text("# Benchmark results\n\n" + "\n".join(parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one trial: checks that everything runs")
    parser.add_argument("--no-install", action="store_true", help="skip pip install -r benchmarks/requirements.txt")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON files and RESULTS.md")
    parser.add_argument("--only", nargs="*", default=None, help="script names to run (default: all)")
    args = parser.parse_args()
    if not args.no_install:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")],
                       cwd=HERE.parent, check=True)  # the dev requirements name paths from the root
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, script, extra in BENCHMARKS:
        if args.only is not None and script not in args.only:
            continue
        command = [sys.executable, str(HERE / script), *extra, "--out", str(args.out / f"{name}.json")]
        if args.quick:
            command.append("--quick")
        print(f"--- {' '.join([script, *extra])}", flush=True)
        start = time.time()
        result = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=3600)
        print(result.stdout, flush=True)
        if result.returncode != 0:
            failed.append(script)
            print(result.stderr[-3000:], file=sys.stderr, flush=True)
        print(f"({time.time() - start:.0f} s)\n", flush=True)
    write_results(args.out)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
