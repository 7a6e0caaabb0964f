"""``edflow reproduce RUN``: train again from RUN's code snapshot and effective config into a new run folder, then
compare the logged scalars step by step with RUN's: exit 0 when they are identical, 1 at the first difference."""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from edcore.commands import emit
from edcore.errors import EdflowError, UsageError

#: Config keys naming code that the snapshot must provide (the same keys ``edflow -t`` imports before it starts).
CODE_KEYS = ("dataset", "model", "iterator")

#: Run before the child's usual launcher: the working directory goes to the *end* of sys.path, so that a module of
#: the snapshot is never shadowed by the working tree's copy (edcore.references would otherwise put the working
#: directory first), while a module that the snapshot never held is found where the original run found it.
CWD_LAST = "import os, sys\nsys.path.append(os.getcwd())\n"


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow reproduce``."""
    parser = argparse.ArgumentParser(prog="edflow reproduce", description=__doc__.split(": ", 1)[1])
    parser.add_argument("run", metavar="RUN", help="a run folder, or the name of a run in --logdir")
    parser.add_argument("--steps", type=int, metavar="N",
                        help="train and compare only the first N steps (default: as many as the run trained)")
    parser.add_argument("--logdir", default="logs", help="where run names are looked up (default: logs)")
    return parser


# ---------------------------------------------------------------------------------------------------------------
# What the run needs


def import_roots(code: Path, config: dict, run: Path) -> list[Path]:
    """The folders of the snapshot ``code`` that make the config's dotted names importable, in the order of
    :data:`CODE_KEYS`; a snapshot that lacks the iterator's package is an error."""
    roots: list[Path] = []
    candidates = [code] + sorted(p for p in code.iterdir() if p.is_dir())
    for key in CODE_KEYS:
        value = config.get(key)
        if not isinstance(value, str):
            continue
        top = value.split(":")[0].split(".")[0]
        found = next((folder for folder in candidates
                      if (folder / top).is_dir() or (folder / f"{top}.py").is_file()), None)
        if found is None:
            if key == "iterator":
                held = ", ".join(p.name for p in code.iterdir()) or "nothing"
                raise UsageError(
                    f"the code snapshot of run '{run}' has no module '{top}' for the config key iterator "
                    f"('{value}'); the snapshot in {code} holds {held}. Only runs whose code was snapshotted "
                    f"(code_root) can be reproduced.")
            continue  # an installed package (a dataset from a library): not part of the user's code
        if found not in roots:
            roots.append(found)
    return roots


def check_run(run: Path) -> tuple[Path, dict, list[dict]]:
    """The effective training config file of ``run``, its values, and its logged records; usage errors for a run
    that cannot be reproduced."""
    from edcore.commands.runinfo import read_jsonl
    from edcore.config import load_file
    from edcore.project import ProjectManager

    code = run / "code"
    if not code.is_dir() or not any(p.is_file() for p in code.rglob("*")):
        raise UsageError(
            f"run '{run}' has no code snapshot ({code} is missing or empty), so there is no code to train it with "
            f"again; it was trained with code_root: null or before snapshots existed. Train it again with "
            f"'edflow -t' from its config instead.")
    config_path = ProjectManager(run).latest_config("train")
    if config_path is None:
        raise UsageError(f"run '{run}' has no effective training config (configs/train_*.yaml) to train it again with.")
    records = read_jsonl(run / "train" / "metrics.jsonl")
    if not records:
        raise UsageError(f"run '{run}' logged no scalars ({run / 'train' / 'metrics.jsonl'} is missing or empty): "
                         f"there is nothing to compare a reproduction with.")
    return config_path, load_file(config_path).data, records


# ---------------------------------------------------------------------------------------------------------------
# The environment then and now


def original_invocation(run: Path) -> dict:
    """The first training invocation recorded in ``run.json`` (empty when there is none)."""
    try:
        record = json.loads((run / "run.json").read_text())
        return next(entry for entry in record.get("invocations", []) if entry.get("mode") == "train")
    except (OSError, ValueError, StopIteration, AttributeError):
        return {}


def current_environment() -> dict:
    """What :func:`environment_differences` compares, as it is now (nothing is imported)."""
    from edcore.project import git_state, package_versions, visible_devices

    return {"python": sys.version.split()[0], "platform": platform.platform(), "host": socket.gethostname(),
            "packages": package_versions(), "git": git_state(Path.cwd()), "devices": visible_devices()}


def environment_differences(then: dict, now: dict) -> list[str]:
    """One line per difference between the original invocation and now: Python, platform, host, package
    versions, git state of the code, devices."""
    lines = []
    for key in ("python", "platform", "host"):
        if then.get(key) != now[key]:
            lines.append(f"{key}: {then.get(key, '(not recorded)')} -> {now[key]}")
    old_packages, new_packages = then.get("packages") or {}, now["packages"]
    for name in sorted(set(old_packages) | set(new_packages)):
        if old_packages.get(name) != new_packages.get(name):
            lines.append(f"package {name}: {old_packages.get(name, '(not installed)')} -> "
                         f"{new_packages.get(name, '(not installed)')}")
    old_git = ((then.get("snapshot") or {}).get("git")) or {}
    new_git = now["git"] or {}
    for key in ("commit", "branch", "dirty"):
        if old_git.get(key) != new_git.get(key):
            lines.append(f"git {key} (working tree; the snapshot is used): {old_git.get(key, '(none)')} -> "
                         f"{new_git.get(key, '(none)')}")
    if "devices" in then:  # recorded since edflow reproduce exists
        old_devices, new_devices = then["devices"] or {}, now["devices"]
        for key in sorted(set(old_devices) | set(new_devices)):
            if old_devices.get(key) != new_devices.get(key):
                lines.append(f"devices {key}: {old_devices.get(key, '(not set)')} -> "
                             f"{new_devices.get(key, '(not set)')}")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# Training again


def train_again(run: Path, config_path: Path, roots: list[Path], steps: int | None) -> tuple[int, str | None]:
    """``edflow -t`` of the run's effective config in a child whose sys.path starts with the snapshot; returns its
    exit code and its last ``edflow: error:`` line."""
    from edcore.project import ProjectManager
    from edcore.supervisor import LAUNCHER

    argv = ["-t", str(config_path), "-n", f"{ProjectManager(run).name}-reproduce", "--logdir", str(run.parent),
            # the snapshot is copied from the original below: a snapshot of the snapshot (inside logdir) is empty
            "--code_root", "null", "--+reproduces", str(run)]
    if steps is not None:
        argv += ["--num_steps", str(steps)]
    paths = [str(root.resolve()) for root in roots]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p]),
           "PYTHONDONTWRITEBYTECODE": "1"}  # no __pycache__ written into the original run's code/
    command = [sys.executable, "-c", CWD_LAST + LAUNCHER, sys.argv[0] or "edflow", *argv]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    last_error = None
    assert process.stderr is not None
    try:
        for line in process.stderr:  # shown as it comes (the training's progress); the error goes into ours instead
            if line.startswith("edflow: error:"):
                last_error = line[len("edflow: error:"):].strip()
            else:
                sys.stderr.write(line)
    except KeyboardInterrupt:
        process.wait()  # Ctrl-C reached the child too: it writes its checkpoint and ends before we do
        raise
    return process.wait(), last_error


def new_run_folder(logdir: Path, before: set[Path]) -> Path | None:
    """The run folder the child created."""
    from edcore.commands.runinfo import list_runs

    created = [run for run in list_runs(logdir) if run not in before]
    return created[-1] if created else None


def record_reproduction(original: Path, new: Path, steps: int | None, result: dict) -> None:
    """The new run holds the original's snapshot and says in run.json what it reproduces and how that went."""
    from edcore.project import write_text_atomic

    shutil.copytree(original / "code", new / "code", dirs_exist_ok=True)
    if (original / "git.diff").exists():
        shutil.copyfile(original / "git.diff", new / "git.diff")
    path = new / "run.json"
    record = json.loads(path.read_text()) if path.exists() else {"invocations": []}
    record["reproduction"] = {"of": str(original), "snapshot": f"copied from {original / 'code'}", "steps": steps,
                              **result}
    write_text_atomic(path, json.dumps(record, indent=2, default=str))


# ---------------------------------------------------------------------------------------------------------------
# Comparing


def by_step(records: list[dict], steps: int | None) -> dict[int, dict[str, float]]:
    """The metrics of each logged global step (the last record of a step wins, as in ``edflow plot``)."""
    from edcore.commands.runinfo import metric_values

    found: dict[int, dict[str, float]] = {}
    for record in records:
        step = record.get("global_step")
        if isinstance(step, int) and (steps is None or step <= steps):
            found[step] = metric_values(record)
    return found


def same(a: float, b: float) -> bool:
    """Equal floats; nan equals nan (a run that diverged the same way reproduced)."""
    return a == b or (math.isnan(a) and math.isnan(b))


def first_difference(original: dict[int, dict], again: dict[int, dict]) -> dict | None:
    """The first global step (and key) where the reproduction logged something else, or None."""
    for step in sorted(original):
        if step not in again:
            return {"global_step": step, "key": None, "original": None, "reproduction": None,
                    "what": f"global step {step} was not logged by the reproduction"}
        for key in sorted(set(original[step]) | set(again[step])):
            a, b = original[step].get(key), again[step].get(key)
            if a is None or b is None or not same(a, b):
                return {"global_step": step, "key": key, "original": a, "reproduction": b,
                        "what": f"global step {step}, key '{key}': original {a!r}, reproduction {b!r}"}
    return None


def main(argv: list[str]) -> int:
    """Train RUN again from its snapshot and compare the logged scalars."""
    args = build_parser().parse_args(argv)
    from edcore.commands.runinfo import find_run, list_runs, read_jsonl

    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps {args.steps}: give a number of steps >= 1.")
    run = find_run(args.run, args.logdir)
    config_path, config, records = check_run(run)
    roots = import_roots(run / "code", config, run)
    steps = args.steps
    if steps is None:
        from edcore.commands.runs import run_status

        state = run_status(run)[0]
        if state != "finished":  # an interrupted or crashed run: train as far as it logged, not to its num_steps
            steps = max(by_step(records, None), default=None)
            if steps is not None:
                emit(f"run {run} is {state}: training again up to its last logged global step, {steps}")
    original = by_step(records, steps)
    if not original:
        raise UsageError(f"run '{run}' logged nothing in its first {args.steps} steps (log_freq "
                         f"{config.get('log_freq')}); give a larger --steps.")

    differences = environment_differences(original_invocation(run), current_environment())
    emit(f"reproducing {run} from its code snapshot ({', '.join(str(r) for r in roots)}) and {config_path.name}"
         + (f", first {steps} steps" if steps else ""))
    emit("environment: " + ("as recorded" if not differences else "differs from the original run:\n  "
                            + "\n  ".join(differences)))
    before = set(list_runs(run.parent))
    code, error = train_again(run, config_path, roots, steps)
    new = new_run_folder(run.parent, before)
    if new is None:
        raise EdflowError(
            f"the code snapshot of run '{run}' could not be trained again: {error or f'edflow exited with {code}.'} "
            f"The snapshot's code ({run / 'code'}) is imported instead of the working tree's, so a module it needs "
            f"that was never snapshotted, or a package that changed since, fails here. Nothing was written into "
            f"'{run}'.")
    again = by_step(read_jsonl(new / "train" / "metrics.jsonl"), steps)
    difference = first_difference(original, again)
    if code != 0 and difference is None:
        difference = {"global_step": None, "key": None, "what": f"the reproduction failed (exit {code}): {error}"}
    record_reproduction(run, new, steps, {"identical": difference is None, "first_difference": difference,
                                               "compared_steps": sorted(original)})
    if difference is None:
        emit(f"identical: {len(original)} logged steps (up to global step {max(original)}) of {run.name} and "
             f"{new.name} have the same scalars")
        return 0
    emit(f"differs: {difference['what']}; the reproduction is in {new}")
    return 1
