"""``edflow eval-outputs``: run evaluation callbacks again on stored outputs, without the model or iterator code.

Each PATH is the folder of one evaluated checkpoint (``RUN/eval/<timestamp>_<name>/<global_step>``) or an
evaluation folder (then every checkpoint in it). The callbacks are ``-c name:dotted.function`` (repeatable), else
the ``eval_callbacks`` of the evaluation's stored config. The dataset is made from that config (its code is
needed, the model's is not). The metrics are printed and merged into each checkpoint's ``metrics.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edcore.errors import UsageError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="edflow eval-outputs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: edflow eval-outputs logs/<run>/eval/<timestamp>_eval/0000000100 -c acc:mypkg.metrics.accuracy",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a checkpoint's output folder or an evaluation folder")
    parser.add_argument("-c", "--callback", action="append", default=[], metavar="NAME:DOTTED",
                        help="a callback to run, e.g. -c accuracy:mypkg.metrics.accuracy (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per checkpoint")
    parser.add_argument("-d", "--debug", action="store_true", help="full tracebacks")
    args = parser.parse_args(argv)

    from edcore.callbacks import parse_callback_args, resolve_callbacks, run_callbacks
    from edcore.config import load_saved
    from edcore.evaluation import CONFIG_FILE
    from edcore.outputs import METRICS, load_outputs, write_json
    from edcore.references import ensure_cwd_importable

    ensure_cwd_importable()
    requested = parse_callback_args(args.callback)
    datasets: dict[Path, object] = {}
    for step_dir in _step_folders(args.paths):
        outputs = load_outputs(step_dir)  # checked first: a wrong path fails before any user code runs
        config_path = step_dir.parent / CONFIG_FILE
        if not config_path.exists():
            raise UsageError(f"'{step_dir.parent}' has no {CONFIG_FILE}; it is not an evaluation folder written by "
                             f"edflow.")
        config = load_saved(config_path)
        if requested:
            callbacks = resolve_callbacks(requested, lambda name: f"-c {name}:{requested[name]}")
        else:
            declared = config.get("eval_callbacks") or {}
            if not declared:
                raise UsageError(f"{config_path} declares no eval_callbacks; name the callbacks with -c "
                                 f"NAME:dotted.function.")
            callbacks = resolve_callbacks(declared, lambda name: f"{config_path}, key 'eval_callbacks/{name}'")
        if step_dir.parent not in datasets:
            datasets[step_dir.parent] = _dataset(config.data)
        metrics = run_callbacks(callbacks, str(step_dir), datasets[step_dir.parent], outputs, config.data)
        write_json(step_dir / METRICS, {**outputs.metrics, **metrics})
        if args.json:
            print(json.dumps({"path": str(step_dir), "global_step": outputs.global_step, "metrics": metrics}))
        else:
            print(f"{step_dir} (global step {outputs.global_step})")
            for name, value in metrics.items():
                print(f"  {name:<32} {value:.6g}")
    return 0


def _step_folders(paths: list[str]) -> list[Path]:
    from edcore.outputs import INDEX

    folders = []
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            raise UsageError(f"'{text}' is not a folder; pass RUN/eval/<timestamp>_<name>/<global_step> or the "
                             f"evaluation folder above it.")
        if (path / INDEX).exists():
            folders.append(path)
            continue
        steps = sorted(p for p in path.iterdir() if p.name.isdigit() and (p / INDEX).exists())
        if not steps:
            raise UsageError(f"'{text}' holds no evaluation outputs ({INDEX}); pass "
                             f"RUN/eval/<timestamp>_<name>/<global_step> or the evaluation folder above it.")
        folders.extend(steps)
    return folders


def _dataset(config: dict) -> object:
    """The evaluation dataset, made the way the evaluation process made it (through the plugins)."""
    from edcore.plugins import make_plugin_manager
    from edcore.process import provide

    if not config.get("dataset"):
        return None
    manager = make_plugin_manager(disabled=config.get("disable_plugins") or [])
    return provide(manager, "edflow_dataset", "dataset", config=config, mode="eval")
