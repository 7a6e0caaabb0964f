"""Workload 4: ``edflow -p RUN`` from process start to its first step, for runs interrupted at step 100 and at step
100,000 (``--quick``: 300). The data position is stored as (epoch, index in epoch), so the resumed sampler starts
at the next batch without loading the ones before it: the time must not grow with the step.

Each run is trained once to its step (one checkpoint at the end), then resumed in turn, one step per resume.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

from common import arguments, interleave, machine_state, report, summarize, table
from startup import PROJECT


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    import sys

    trials = args.trials or (1 if args.quick else 7)
    long_step = 300 if args.quick else 100_000
    state = machine_state()
    edflow = str(Path(sys.executable).with_name("edflow"))
    with tempfile.TemporaryDirectory(prefix="edflow-bench-resume-") as tmp:
        root = Path(tmp)
        for relative, text in PROJECT.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(textwrap.dedent(text).lstrip("\n"))
        marker = root / "first-step"
        # One thread per process, like every other benchmark: on a loaded machine torch's thread pool spends
        # most of a tiny step waiting at barriers (measured: 70 ms per step instead of 1 ms with 2 threads).
        env = {**os.environ, "PYTHONPATH": str(root), "BENCH_FIRST_STEP_FILE": str(marker), "OMP_NUM_THREADS": "1"}
        runs = {}
        build_seconds = {}
        for steps in (100, long_step):
            start = time.time()
            # Training to the step quickly: no bar, no logging, one checkpoint at the end.
            result = subprocess.run([edflow, "-t", "train.yaml", "-n", f"to-{steps}", "--num_steps", str(steps),
                                     "--ckpt_freq", str(10 * long_step), "--log_freq", "null", "--progress", "false",
                                     "--tensorboard", "false"],
                                    cwd=root, env=env, capture_output=True, text=True, timeout=3600)
            if result.returncode != 0:
                raise SystemExit(f"training to step {steps} failed:\n{result.stderr[-2000:]}")
            build_seconds[steps] = time.time() - start
            (runs[steps],) = [p for p in (root / "logs").iterdir() if p.name.endswith(f"to-{steps}")]
        next_step = dict.fromkeys(runs, 0)

        def resume(steps: int):
            def run() -> dict:
                next_step[steps] = next_step[steps] or steps
                next_step[steps] += 1
                marker.unlink(missing_ok=True)
                start = time.time()
                result = subprocess.run([edflow, "-p", str(runs[steps]), "--num_steps", str(next_step[steps])],
                                        cwd=root, env=env, capture_output=True, text=True, timeout=600)
                if result.returncode != 0 or not marker.exists():
                    raise SystemExit(f"resuming at step {steps} failed:\n{result.stderr[-2000:]}")
                return {"seconds": float(marker.read_text()) - start}

            return run

        samples = interleave({f"resume at step {steps:,}": resume(steps) for steps in runs}, trials,
                             warmup=0 if args.quick else 1)
    rows = summarize(samples)
    sections = [("Process start to the first step after `edflow -p RUN` (ratio to the run at step 100):",
                 table(rows, "s", ratio_label="ratio"))]
    report("resume", f"Resume ({trials} trials)", sections,
           {"rows": rows, "trials": trials, "build_seconds": build_seconds}, args.out, state)


if __name__ == "__main__":
    main()
