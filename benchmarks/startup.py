"""Workload 3: start-up. ``edflow --help`` and ``import edcore`` wall time, and process start to the first training
step of ``edflow -t`` next to a raw script doing the same work; each with 0 and with 20 installed no-op plugins.

Every measurement is a fresh process, timed from just before it is started; the first step is marked by the step
itself writing the time into a file (no plugin involved).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import arguments, interleave, machine_state, report, summarize, table

PROJECT = {
    "startup_project/__init__.py": "",
    "startup_project/data.py": '''
        import numpy as np


        class Data:
            """4096 examples of 32 features and a label."""

            def __init__(self, config=None):
                rng = np.random.default_rng(0)
                self.x = rng.normal(size=(4096, 32)).astype("float32")
                self.y = rng.integers(0, 10, size=4096)

            def __len__(self):
                return len(self.x)

            def __getitem__(self, index):
                return {"x": self.x[index], "y": self.y[index]}
    ''',
    "startup_project/model.py": '''
        import torch


        class Model(torch.nn.Sequential):
            def __init__(self, config=None):
                super().__init__(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    ''',
    "startup_project/first_step.py": '''
        import os
        import time

        _done = []


        def mark():
            """Write the wall time of the first step into $BENCH_FIRST_STEP_FILE."""
            if not _done:
                _done.append(True)
                with open(os.environ["BENCH_FIRST_STEP_FILE"], "w") as stream:
                    stream.write(repr(time.time()))
    ''',
    "startup_project/iterator.py": '''
        import torch
        import torch.nn.functional as F

        import edflow_torch
        from startup_project.first_step import mark


        class Iterator(edflow_torch.TemplateIterator):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

            def step_op(self, model, x, y):
                losses = []

                def train_op():
                    self.optimizer.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(model(x), y)
                    loss.backward()
                    self.optimizer.step()
                    losses.append(loss.detach())
                    mark()

                def log_op():
                    return {"scalars": {"loss": losses[-1]}}

                return {"train_op": train_op, "log_op": log_op}
    ''',
    "raw.py": '''
        """The same work without edflow: dataset, DataLoader, model, optimizer, the first step."""
        import torch
        import torch.nn.functional as F
        from torch.utils.data import DataLoader

        from startup_project.data import Data
        from startup_project.first_step import mark
        from startup_project.model import Model

        torch.manual_seed(0)
        model = Model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for batch in DataLoader(Data(), batch_size=32, shuffle=True, num_workers=0):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(batch["x"]), batch["y"])
            loss.backward()
            optimizer.step()
            mark()
            break
    ''',
    "train.yaml": '''
        dataset: startup_project.data.Data
        model: startup_project.model.Model
        iterator: startup_project.iterator.Iterator
        batch_size: 32
        num_steps: 1
        torch: {device: cpu, num_workers: 0}
    ''',
}


def write_plugins(site: Path, count: int) -> None:
    """``count`` installed distributions, each with an ``edflow`` entry point to a plugin that does nothing."""
    for index in range(count):
        name = f"edflow_noop_{index:02d}"
        (site / f"{name}.py").write_text(textwrap.dedent('''
            from edcore import hookimpl


            class Plugin:
                @hookimpl
                def edflow_before_training(self, iterator):
                    pass
        '''))
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[edflow]\nnoop{index:02d} = {name}:Plugin\n")
        (info / "RECORD").write_text("")


def compile_like_pip(root: Path) -> None:
    """Bytecode for edflow's packages and the project, as an installed package has it.

    pip compiles every module when it installs a package, so a user's ``edflow -t`` reads bytecode. An editable
    checkout run with ``PYTHONDONTWRITEBYTECODE`` set (as on the development machine) compiles edcore's modules on
    every start instead: about 50 ms of the first step that no installed edcore pays, and the raw script's torch
    has its bytecode from pip. Compiled once here, and the variants' processes may write what else they import.
    """
    import compileall
    import importlib.util

    folders = [root]
    for name in ("edcore", "edflow_torch", "edflow_tf", "edflow_csv_metrics"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            folders.extend(Path(location) for location in spec.submodule_search_locations)
    for folder in folders:
        compileall.compile_dir(str(folder), quiet=1)


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    trials = args.trials or (1 if args.quick else 7)
    state = machine_state()
    edflow = str(Path(sys.executable).with_name("edflow"))
    with tempfile.TemporaryDirectory(prefix="edflow-bench-start-") as tmp:
        root = Path(tmp)
        for relative, text in PROJECT.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(textwrap.dedent(text).lstrip("\n"))
        site = root / "site-20-plugins"
        site.mkdir()
        write_plugins(site, 20)
        marker = root / "first-step"
        # One thread per process, like every other benchmark (a loaded machine makes torch's thread pool wait).
        base_env = {**os.environ, "PYTHONPATH": str(root), "BENCH_FIRST_STEP_FILE": str(marker),
                    "OMP_NUM_THREADS": "1"}
        base_env.pop("EDFLOW_DISABLE_PLUGIN_AUTOLOAD", None)
        compile_like_pip(root)
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        plugin_env = {**base_env, "PYTHONPATH": f"{root}{os.pathsep}{site}"}
        # The control: the same extra sys.path entry, empty. Every later import (torch's are thousands) searches it.
        empty = root / "site-empty"
        empty.mkdir()
        empty_env = {**base_env, "PYTHONPATH": f"{root}{os.pathsep}{empty}"}

        def process(command: list, env: dict, first_step: bool = False):
            def run() -> dict:
                marker.unlink(missing_ok=True)
                start = time.time()
                result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
                end = time.time()
                if result.returncode != 0:
                    raise SystemExit(f"{command} failed:\n{result.stderr[-2000:]}")
                if first_step:
                    return {"seconds": float(marker.read_text()) - start}
                return {"seconds": end - start}

            return run

        python = sys.executable
        small = {
            "python -c pass": process([python, "-c", "pass"], base_env),
            "python -c 'import edcore'": process([python, "-c", "import edcore"], base_env),
            "edflow --help": process([edflow, "--help"], base_env),
            "edflow --help, 20 plugins installed": process([edflow, "--help"], plugin_env),
            "edflow plugins, 20 plugins installed": process([edflow, "plugins"], plugin_env),
        }
        small_rows = summarize(interleave(small, trials if args.quick else 2 * trials, warmup=0 if args.quick else 1))
        first = {
            "raw script": process([python, "raw.py"], base_env, first_step=True),
            "edflow -t": process([edflow, "-t", "train.yaml"], base_env, first_step=True),
            "edflow -t, 20 plugins installed": process([edflow, "-t", "train.yaml"], plugin_env, first_step=True),
            "edflow -t, an empty folder on PYTHONPATH": process([edflow, "-t", "train.yaml"], empty_env,
                                                                first_step=True),
        }
        first_samples = interleave(first, trials, warmup=0 if args.quick else 1)

        def manager_build(env: dict):
            """Entry-point discovery, plugin imports and registration, timed inside a fresh process."""
            code = ("import time; start = time.perf_counter(); from edcore.plugins import make_plugin_manager; "
                    "make_plugin_manager(); print(time.perf_counter() - start)")

            def run() -> dict:
                result = subprocess.run([python, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                                        timeout=300)
                if result.returncode != 0:
                    raise SystemExit(f"building the plugin manager failed:\n{result.stderr[-2000:]}")
                return {"seconds": float(result.stdout.split()[-1])}

            return run

        build_rows = summarize(interleave({"plugin manager, installed plugins only": manager_build(base_env),
                                           "plugin manager, 20 more installed": manager_build(plugin_env)},
                                          trials if args.quick else 2 * trials, warmup=0 if args.quick else 1))
    first_rows = summarize(first_samples)
    names = list(first)

    def more(name: str, than: str) -> tuple[float, float]:
        """Seconds ``name`` takes more than ``than``: the median of the per-round differences, and the difference
        of the minimums (the least disturbed rounds)."""
        pairs = [a["seconds"] - b["seconds"] for a, b in zip(first_samples[name], first_samples[than])]
        fastest = min(s["seconds"] for s in first_samples[name]) - min(s["seconds"] for s in first_samples[than])
        return statistics.median(pairs), fastest

    for row in first_rows:
        row["more_than_raw_s"], row["min_more_than_raw_s"] = (round(x, 3) for x in more(row["variant"], names[0]))
    with_plugins, with_plugins_min = more(names[2], names[1])
    path_alone, path_alone_min = more(names[3], names[1])
    beyond_path, beyond_path_min = more(names[2], names[3])
    sections = [
        ("Wall time of short commands (ratio to `python -c pass`):", table(small_rows, "s", ratio_label="ratio")),
        ("Process start to the first training step (torch, 4096 examples, batch 32, num_workers 0):",
         table(first_rows, "s", columns=("more_than_raw_s", "min_more_than_raw_s"), ratio_label="ratio to raw")),
        ("", f"20 installed plugins add {1e3 * with_plugins:.0f} ms to the first step (median of the per-round "
             f"differences; {1e3 * with_plugins_min:.0f} ms between the fastest rounds). The folder they are "
             f"installed in, empty, adds {1e3 * path_alone:.0f} ms ({1e3 * path_alone_min:.0f} ms between the fastest "
             f"rounds); the plugins themselves add {1e3 * beyond_path:.0f} ms ({1e3 * beyond_path_min:.0f} ms) to "
             f"that."),
        ("Building the plugin manager (entry points found, imported and registered), timed inside the process:",
         table(build_rows, "s", ratio_label="ratio")),
    ]
    report("startup", f"Start-up ({trials} trials)", sections,
           {"commands": small_rows, "first_step": first_rows, "manager": build_rows, "plugins_add_s": with_plugins,
            "plugins_add_min_s": with_plugins_min, "path_alone_s": path_alone, "plugins_beyond_path_s": beyond_path,
            "trials": trials},
           args.out, state)


if __name__ == "__main__":
    main()
