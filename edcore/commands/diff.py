"""``edflow diff RUN_A RUN_B``: how two runs differ: their effective configs (with where each value came from)
and their code snapshots."""
from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import Any

import yaml

from edcore.commands import emit

MISSING = object()


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow diff``."""
    parser = argparse.ArgumentParser(prog="edflow diff", description=__doc__.split(": ", 1)[1],
                                     epilog="exit status, as diff(1): 0 when the runs are the same, 1 when they "
                                            "differ, 2 on an error.")
    parser.add_argument("run_a", metavar="RUN_A", help="a run folder, or the name of a run in --logdir")
    parser.add_argument("run_b", metavar="RUN_B", help="the run to compare it with")
    parser.add_argument("--logdir", default="logs", help="where run names are looked up (default: logs)")
    parser.add_argument("--mode", default="train", choices=("train", "eval"),
                        help="which effective config to compare: the newest train_*.yaml (default) or eval_*.yaml")
    parser.add_argument("--no-code", action="store_true", help="compare the configs only")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def effective_config(run: Path, mode: str) -> tuple[dict, dict, Path | None]:
    """The newest effective config of ``mode`` in ``run``, its origins table and its file."""
    from edcore.config import load_file
    from edcore.project import ProjectManager

    path = ProjectManager(run).latest_config(mode)
    if path is None:
        return {}, {}, None

    data = load_file(path).data
    try:
        origins = yaml.safe_load(path.with_suffix(".origins.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        origins = {}
    return data, {str(k): str(v) for k, v in origins.items()}, path


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; lists stay whole values (they replace, they never merge)."""
    if isinstance(node, dict) and (node or not prefix):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(flatten(value, f"{prefix}{key}" if not prefix else f"{prefix}/{key}"))
        return flat
    return {prefix: node}


def origin_of(origins: dict, keypath: str) -> str:
    """Where the value at ``keypath`` came from: its own entry, its first element's (lists), or an ancestor's."""
    if keypath in origins:
        return origins[keypath]
    for key, origin in origins.items():
        if key.startswith(keypath + "/"):
            return origin
    while "/" in keypath:
        keypath = keypath.rsplit("/", 1)[0]
        if keypath in origins:
            return origins[keypath]
    return "unknown"


def config_differences(run_a: Path, run_b: Path, mode: str) -> list[dict]:
    """One entry per key whose value differs, is missing on one side, with both origins."""
    data_a, origins_a, _ = effective_config(run_a, mode)
    data_b, origins_b, _ = effective_config(run_b, mode)
    flat_a, flat_b = flatten(data_a), flatten(data_b)
    differences = []
    for key in sorted(set(flat_a) | set(flat_b)):
        value_a, value_b = flat_a.get(key, MISSING), flat_b.get(key, MISSING)
        if value_a == value_b and type(value_a) is type(value_b):
            continue
        differences.append({
            "key": key,
            "a": None if value_a is MISSING else value_a, "a_missing": value_a is MISSING,
            "a_origin": None if value_a is MISSING else origin_of(origins_a, key),
            "b": None if value_b is MISSING else value_b, "b_missing": value_b is MISSING,
            "b_origin": None if value_b is MISSING else origin_of(origins_b, key),
        })
    return differences


def snapshot_files(run: Path) -> dict[str, Path]:
    """The files of ``run``'s code snapshot by their path inside ``code/``."""
    code = run / "code"
    if not code.is_dir():
        return {}
    return {str(p.relative_to(code)): p for p in sorted(code.rglob("*")) if p.is_file()}


def code_differences(run_a: Path, run_b: Path) -> dict:
    """Files only in A, only in B, and the unified diff of each file that changed."""
    files_a, files_b = snapshot_files(run_a), snapshot_files(run_b)
    changed = {}
    for name in sorted(set(files_a) & set(files_b)):
        bytes_a, bytes_b = files_a[name].read_bytes(), files_b[name].read_bytes()
        if bytes_a == bytes_b:
            continue
        try:
            lines_a = bytes_a.decode("utf-8").splitlines(keepends=True)
            lines_b = bytes_b.decode("utf-8").splitlines(keepends=True)
        except UnicodeDecodeError:
            changed[name] = f"binary file code/{name} differs ({len(bytes_a)} and {len(bytes_b)} bytes)\n"
            continue
        diff = difflib.unified_diff(lines_a, lines_b, f"{run_a.name}/code/{name}", f"{run_b.name}/code/{name}")
        changed[name] = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                                for line in diff)
    return {
        "removed": sorted(set(files_a) - set(files_b)),
        "added": sorted(set(files_b) - set(files_a)),
        "changed": changed,
    }


def show(value: Any) -> str:
    """A config value as it reads in YAML/JSON (strings without quotes)."""
    return json.dumps(value) if not isinstance(value, str) else value


def format_report(run_a: Path, run_b: Path, configs: list[dict], code: dict | None, mode: str) -> str:
    """The human-readable report of ``edflow diff``."""
    lines = [f"A: {run_a}", f"B: {run_b}", "", f"config ({mode}):"]
    if not configs:
        lines.append("  identical")
    for entry in configs:
        lines.append(f"  {entry['key']}:")
        for side in ("a", "b"):
            if entry[f"{side}_missing"]:
                lines.append(f"    {side.upper()}: (not set)")
            else:
                lines.append(f"    {side.upper()}: {show(entry[side])}    ({entry[side + '_origin']})")
    if code is not None:
        lines += ["", "code:"]
        if not (code["added"] or code["removed"] or code["changed"]):
            lines.append("  identical")
        lines += [f"  only in A: {name}" for name in code["removed"]]
        lines += [f"  only in B: {name}" for name in code["added"]]
        lines += [f"  changed:   {name}" for name in code["changed"]]
        for text in code["changed"].values():
            lines += ["", text.rstrip("\n")]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Compare two runs and print the differences."""
    args = build_parser().parse_args(argv)
    from edcore.commands.runinfo import find_run

    run_a, run_b = find_run(args.run_a, args.logdir), find_run(args.run_b, args.logdir)
    configs = config_differences(run_a, run_b, args.mode)
    code = None if args.no_code else code_differences(run_a, run_b)
    if args.json:
        emit(json.dumps({"a": str(run_a), "b": str(run_b), "config": configs, "code": code}, indent=2, default=str))
    else:
        emit(format_report(run_a, run_b, configs, code, args.mode))
    differ = bool(configs) or bool(code and (code["added"] or code["removed"] or code["changed"]))
    return 1 if differ else 0  # as diff(1), so that scripts can test 'edflow diff A B'
