"""The ``edflow`` command: arguments, configs, plugins, the run folder, then the processes.

Nothing here imports a framework, and ``edflow --help`` imports nothing beyond argparse (kept fast on purpose:
benchmarks/ measures it).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from edcore.errors import EXIT_USAGE, EdflowError, UsageError

#: Set to "1" in the environment by ``-d`` before plugins are loaded; backends read it to unmute their frameworks.
DEBUG_ENVIRONMENT = "EDFLOW_DEBUG"

#: ``edflow <command> ...``: everyday commands, each a module with ``main(argv) -> int``.
SUBCOMMANDS = {
    "plugins": "edcore.commands.plugins",
    "new": "edcore.commands.new",
    "runs": "edcore.commands.runs",
    "diff": "edcore.commands.diff",
    "plot": "edcore.commands.plot",
    "compare": "edcore.commands.compare",
    "reproduce": "edcore.commands.reproduce",
    "report": "edcore.commands.report",
    "completion": "edcore.commands.completion",
    "eval-outputs": "edcore.commands.eval_outputs",
    "explore": "edcore.commands.explore",
    "sweep": "edcore.commands.sweep",
}

DESCRIPTION = """\
Train and evaluate models with reproducible, resumable runs.

  edflow -t train.yaml                      train; creates logs/<timestamp>_<name>/
  edflow -b base.yaml -t train.yaml -e eval.yaml
                                            train and evaluate every checkpoint as it appears
  edflow -p logs/<run>                      continue an unfinished training from its latest checkpoint
  edflow -e eval.yaml -p logs/<run>         evaluate the latest checkpoint of a run (--all: every one)
  edflow -t train.yaml --lr 0.01 --optimizer/betas [0.9,0.99] --torch.device=cpu
                                            override config values (typed as YAML)
"""

EPILOG = """\
config overrides:
  Any '--key value', '--a/b/c value' or '--a.b.c=value' not listed above sets a config value after all files are
  merged; values are typed as YAML ('3', '1e-4', 'true', '[1,2]', 'null'). Merge order: each -b file left to right,
  then the -t (or -e) file, then the overrides.
  A key that no config file sets and no schema declares is refused as a likely typo; '--+key value' adds it.

commands:
  edflow plugins        list the plugins, their hooks and the order in which they are called
  edflow new NAME       create a project skeleton that trains out of the box (--backend torch|tf)
  edflow runs [LOGDIR]  list the runs: start time, status, latest checkpoint, last metrics (--json)
  edflow diff A B       compare two runs: effective configs (with origins) and code snapshots
  edflow plot RUN ...   plot the logged metrics of one or more runs into a PNG (needs matplotlib)
  edflow compare RUN ... | LOGDIR
                        one table of many runs: the config keys that differ, last and best metrics, status
  edflow reproduce RUN  train RUN again from its code snapshot and config; compare the logged scalars (--steps N)
  edflow report RUN ... one self-contained HTML page: curves, config differences, images, evaluations (needs plotly)
  edflow completion bash
                        print a bash completion script: eval "$(edflow completion bash)"
  edflow eval-outputs   re-run evaluation callbacks on stored outputs, without the model code
  edflow explore DATASET_OR_CONFIG
                        an HTML page with examples of a dataset (images, labels, values); works offline
  edflow sweep SWEEP.yaml
                        train one run per combination of config values (grid, random, optuna); -p SWEEP_DIR
                        continues an interrupted sweep

exit codes: 0 success, 1 failure at run time, 2 usage or config error, 128+N interrupted by signal N (130 for
Ctrl-C, 143 for SIGTERM) after writing a checkpoint.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edflow", description=DESCRIPTION, epilog=EPILOG, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-t", "--train", metavar="TRAIN.yaml",
                        help="train with this config, e.g. -t examples/digits_torch/train.yaml")
    parser.add_argument("-e", "--eval", metavar="EVAL.yaml", action="extend", nargs="+", default=[],
                        help="evaluate with this config; repeatable. Next to -t: one evaluation process per config "
                             "follows the training's checkpoints. Merged on the -b files and, with -p, on the run's training "
                             "config, not on the -t file.")
    parser.add_argument("-b", "--base", metavar="BASE.yaml", action="extend", nargs="+", default=[],
                        help="base config(s) merged under every -t and -e config, left to right, e.g. -b base.yaml")
    parser.add_argument("-p", "--project", metavar="RUN_DIR",
                        help="an existing run folder: continue its training from the latest checkpoint, or evaluate "
                             "it with -e, e.g. -p logs/2026-01-01T12-00-00_mnist. RUN_DIR/configs/x.yaml also works "
                             "and adds that config as a base.")
    parser.add_argument("-c", "--checkpoint", metavar="CKPT",
                        help="start from (train) or evaluate (-e) exactly this checkpoint, e.g. "
                             "-c logs/<run>/train/checkpoints/0000001000")
    parser.add_argument("-r", "--retrain", action="store_true",
                        help="after loading the checkpoint, reset the global step to 0 (fine-tune from its weights)")
    parser.add_argument("-n", "--name", metavar="NAME",
                        help="name of the run folder (default: experiment_name, else the config file's name)")
    parser.add_argument("-d", "--debug", action="store_true",
                        help="full tracebacks and debug logging; trains a few steps on a few examples into "
                             "logs/debug/ (debug: {max_steps: 10, max_examples: 5*batch_size})")
    parser.add_argument("--all", action="store_true", dest="eval_all",
                        help="with -e -p: evaluate every checkpoint not evaluated yet (config: eval_all: true)")
    parser.add_argument("--disable-plugin", metavar="NAME", action="append", default=[],
                        help="switch off one plugin for this run (see 'edflow plugins'); repeatable")
    parser.add_argument("--profile-hooks", action="store_true",
                        help="time every plugin's hooks; report each plugin's time per hook at the end of the run and "
                             "warn when one takes more than hook_warn_share (default 0.1) of the loop's time "
                             "(config: profile_hooks: true)")
    parser.add_argument("--version", action="store_true", help="print the versions of edcore and every backend")
    # Set by the supervisor for the evaluation processes it starts next to a training (edcore.evaluation).
    parser.add_argument("--follow-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--progress-position", type=int, default=0, help=argparse.SUPPRESS)
    # Set by 'edflow sweep' for its trials: {override keypath: the sweep file's place}, recorded as their origins.
    parser.add_argument("--sweep-origins", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edflow`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        debug = "-d" in argv or "--debug" in argv
        return _guarded(lambda: importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]), debug)
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if args.version:
        print(version_text())
        return 0
    if args.debug:
        # Before any plugin is loaded, so backends can decide what their frameworks print (and children inherit it).
        os.environ[DEBUG_ENVIRONMENT] = "1"
    return _guarded(lambda: run(args, extras, argv), args.debug)


def _guarded(function: Any, debug: bool) -> int:
    try:
        return function()
    except EdflowError as err:
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"edflow: error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("edflow: interrupted\n")
        return 130


def version_text() -> str:
    """edcore's version and the distributions that provide ``edflow`` entry points (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from edcore.plugins import entry_points

    try:
        lines = [f"edcore {version('edcore')}"]
    except PackageNotFoundError:
        lines = ["edcore (not installed)"]
    for entry_point in entry_points():
        dist = getattr(entry_point, "dist", None)
        owner = f"{dist.name} {dist.version}" if dist else "unknown distribution"
        lines.append(f"{owner} (plugin '{entry_point.name}' = {entry_point.value})")
    lines.append(f"Python {sys.version.split()[0]}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# A run


def run(args: argparse.Namespace, extras: list[str], argv: list[str]) -> int:
    """Validate everything, then create or reopen the run folder, then start the processes."""
    from edcore import config as configs
    from edcore.checkpoint import find_checkpoint
    from edcore.errors import CheckpointError
    from edcore.project import ProjectManager
    from edcore.references import ensure_cwd_importable

    ensure_cwd_importable()
    overrides = configs.parse_overrides(extras)
    if not args.train and not args.eval and not args.project:
        raise UsageError("nothing to do: give -t TRAIN.yaml to train, -e EVAL.yaml to evaluate, or -p RUN_DIR to "
                         "continue a training. See 'edflow --help'.")
    bases = list(args.base)
    project_path = args.project
    if project_path and project_path.endswith((".yaml", ".yml")) and Path(project_path).parent.name == "configs":
        bases.insert(0, project_path)  # EDFlow's shortcut -p RUN/configs/x.yaml
        project_path = str(Path(project_path).parent.parent)
    if project_path and not Path(project_path).exists():
        from edcore.commands.runinfo import find_run

        project_path = str(find_run(project_path))  # the shorthands of 'edflow runs', 'diff' and 'plot'
    project = ProjectManager.open(project_path) if project_path else None
    explicit = None
    if args.checkpoint:
        try:
            explicit = find_checkpoint(args.checkpoint)
        except CheckpointError as err:
            raise UsageError(f"-c: {err}") from err
    if args.eval and not args.train and project is None and explicit is not None:
        project = _run_of_checkpoint(explicit)  # -e EVAL.yaml -c RUN/train/checkpoints/N: evaluate into RUN
    if args.retrain and not (explicit or project):
        raise UsageError("-r/--retrain resets the global step of a loaded checkpoint: give -c CKPT or -p RUN_DIR.")

    training = bool(args.train) or (project is not None and not args.eval)
    train_config = None
    if args.train:
        train_config = configs.apply_overrides(configs.load_configs(bases + [args.train]), overrides)
        if args.sweep_origins:
            from edcore.sweep import record_sweep_origins

            record_sweep_origins(train_config, args.sweep_origins)
    elif training:
        saved = project.latest_config("train")
        if saved is None:
            raise UsageError(f"run folder '{project.root}' has no saved training config (configs/train_*.yaml).")
        train_config = configs.apply_overrides(configs.merge(configs.load_configs(bases), configs.load_saved(saved)),
                                               overrides)
    if args.eval:
        from edcore.evaluation import check_names

        check_names(args.eval, None if training else args.name)
    if args.eval and project is not None and not args.train:
        from edcore.evaluation import load_eval_config_of_run

        eval_configs = [(path, configs.apply_overrides(load_eval_config_of_run(project, bases, path), overrides))
                        for path in args.eval]
    else:
        eval_configs = [(path, configs.apply_overrides(configs.load_configs(bases + [path]), overrides))
                        for path in args.eval]
    for _path, eval_config in eval_configs:
        eval_config.set("test_mode", True, configs.Origin(file="set by edflow for evaluation"))
        if args.eval_all:
            eval_config.set("eval_all", True, configs.Origin(override="--all"))

    all_configs = ([train_config] if train_config else []) + [c for _, c in eval_configs]
    if args.profile_hooks:
        for config in all_configs:
            config.set("profile_hooks", True, configs.Origin(override="--profile-hooks"))
    disabled = list(args.disable_plugin)
    plugin_names: list[str] = []
    for config in all_configs:
        disabled += [n for n in config.get("disable_plugins", []) or [] if n not in disabled]
        plugin_names += [n for n in config.get("plugins", []) or [] if n not in plugin_names]

    from edcore.plugins import make_plugin_manager

    manager = make_plugin_manager(disabled=disabled)
    # Validate with the installed plugins' schema fragments before any user code (config plugins) is imported,
    # then again once the config plugins have added theirs.
    validate_all(manager, train_config, eval_configs, final=not plugin_names, follower=args.follow_fd is not None)
    if plugin_names:
        from edcore.plugins import PluginInfo, config_plugin_place, instantiate
        from edcore.references import resolve

        for name in plugin_names:
            plugin = resolve(name, where="config key 'plugins'", allow_module=True)
            named_at = config_plugin_place(all_configs, name)
            manager.register_plugin(instantiate(plugin, name), PluginInfo(name, "config", named_at=named_at))
        manager.check()
        validate_all(manager, train_config, eval_configs, final=True, follower=args.follow_fd is not None)
    manager.check_disabled(args.disable_plugin)

    now = datetime.datetime.now()
    if train_config is not None:
        prepare(train_config, "train", args, now)
    for _path, eval_config in eval_configs:
        prepare(eval_config, "eval", args, now)
    for config in all_configs:
        resolve_references(config)
    check_with_plugins(manager, train_config, eval_configs)

    from edcore.process import SingleProcess
    from edcore.runlog import setup_logging
    from edcore.project import writing_run_folder

    dist = manager.hook.edflow_distributed(config=(train_config or eval_configs[0][1]).data) or SingleProcess()
    if dist.world_size > 1 and train_config is not None:
        # Each process drew its own seed in prepare(); the data order must be rank 0's on every rank.
        train_config.set("seed", dist.broadcast(train_config.get("seed")), train_config.origin(("seed",)))
    if training:
        assert train_config is not None
        if project is None:
            project = create_project(train_config, args, now, dist, manager, argv)
        elif dist.rank == 0:
            from edcore.runlock import lock_training

            lock_training(project.root)  # before anything is written into the run
            with writing_run_folder(project.root):
                project.write_config("train", train_config, now)
                project.record_invocation(argv, "train", _plugin_rows(manager))
        if dist.rank == 0:
            with writing_run_folder(project.root):
                setup_logging(project.train / "log.txt", args.debug, "train")
        elif not args.debug:  # rank 0 reports for all; the others only warn
            setup_logging(None, args.debug, f"train rank {dist.rank}").setLevel("WARNING")
        else:
            setup_logging(None, args.debug, f"train rank {dist.rank}")
        for warning in getattr(train_config, "warnings", []):
            import logging

            logging.getLogger("edflow").warning(warning)
        from edcore.process import run_training

        evaluators = None
        if eval_configs and dist.rank == 0:
            from edcore.evaluation import start_followers

            evaluators = start_followers(project, [p for p, _ in eval_configs], bases, extras, args)
        resume = args.project is not None and explicit is None
        try:
            code = run_training(config=train_config, manager=manager, project=project, dist=dist,
                                checkpoint=explicit, resume=resume, retrain=args.retrain, debug=args.debug,
                                on_runtime=(evaluators.attach if evaluators else None))
        except BaseException as err:
            if evaluators is not None:
                if isinstance(err, (KeyboardInterrupt, SystemExit)):
                    import signal

                    evaluators.supervisor.forward(signal.SIGINT)
                evaluators.finish(None)  # the evaluators finish the checkpoints that exist, then the error is shown
            raise
        if evaluators is not None:
            code = evaluators.finish(code)
        return code

    if project is None:
        raise UsageError("-e without -t evaluates an existing run: give its folder with -p RUN_DIR (or one of its "
                         "checkpoints with -c RUN_DIR/train/checkpoints/N).")
    from edcore.evaluation import run_evaluations

    return run_evaluations(project, eval_configs, manager, explicit, args, argv, now)


def _run_of_checkpoint(checkpoint: Any) -> Any:
    """The run folder a checkpoint belongs to (RUN/train/checkpoints/N), or a usage error."""
    from edcore.project import ProjectManager

    root = checkpoint.path.parent.parent.parent
    if checkpoint.path.parent.name != "checkpoints" or not (root / "configs").is_dir():
        raise UsageError(f"-c {checkpoint.path} is not inside a run folder; give the run to evaluate with -p RUN_DIR.")
    return ProjectManager.open(root)


def validate_all(manager: Any, train_config: Any, eval_configs: list, final: bool, follower: bool = False) -> None:
    from edcore.schema import build_schema, check_override_keys, validate

    schema = build_schema(manager.hook.edflow_config_schema())
    if train_config is not None:
        warnings = validate(train_config, schema, "train")
        if final:
            train_config.warnings = warnings
    for _path, eval_config in eval_configs:
        warnings = validate(eval_config, schema, "eval")
        if final:
            eval_config.warnings = warnings
    if final and not follower:  # a follower's overrides were judged by the training that started it
        check_override_keys(([train_config] if train_config is not None else []) + [c for _, c in eval_configs], schema)


def prepare(config: Any, mode: str, args: argparse.Namespace, now: datetime.datetime) -> None:
    """Fill in the defaults that make a run reproducible (recorded in the effective config)."""
    from edcore.config import Origin

    default = Origin(file="default")
    config.setdefault("test_mode", mode == "eval", default)
    if config.get("seed") is None:
        config.set("seed", int.from_bytes(os.urandom(4), "little") % 2**31, Origin(file="drawn at random"))
    config.setdefault("log_freq", 100, default)
    if args.debug:
        debug = config.get("debug") or {}
        max_steps = debug.get("max_steps", 10)
        origin = Origin(override="-d")
        if mode == "train":
            config.set("num_steps", min(config.get("num_steps") or max_steps, max_steps), origin)
            config.set("log_freq", min(config.get("log_freq") or 1, 2), origin)
        config.set("debug/max_examples", debug.get("max_examples", 5 * config.get("batch_size", 1)), origin)


def resolve_references(config: Any) -> None:
    """Import what the config names now, so a wrong name fails before a run folder exists."""
    from edcore.iterator import check_iterator_class
    from edcore.references import resolve

    for key in ("dataset", "model", "iterator"):
        value = config.get(key)
        if isinstance(value, str):
            obj = resolve(value, where=config.where((key,)))
            if key == "iterator":
                check_iterator_class(obj, value, config.where((key,)))
    for name, value in (config.get("eval_callbacks") or {}).items():
        resolve(value, where=config.where(("eval_callbacks", name)))


def check_with_plugins(manager: Any, train_config: Any, eval_configs: list) -> None:
    """Let the backends judge what only their frameworks can (devices, precision), before any run folder exists."""
    from edcore.builtin.providers import check_signatures
    from edcore.config import split_keypath
    from edcore.plugins import call_hook

    modes = ([(train_config, "train")] if train_config is not None else []) + [(c, "eval") for _, c in eval_configs]
    for config, mode in modes:
        def where(keypath: Any, config: Any = config) -> str:
            return config.where(split_keypath(keypath) if isinstance(keypath, str) else keypath)

        check_signatures(config, manager, where)
        call_hook(manager, "edflow_check_config", config=config.data, mode=mode, where=where)


def run_name(config: Any, args: argparse.Namespace) -> str:
    if args.name:
        return args.name
    if config.get("experiment_name"):
        return str(config.get("experiment_name"))
    source = args.train or (args.eval[0] if args.eval else "run")
    return Path(source).stem


def create_project(config: Any, args: argparse.Namespace, now: datetime.datetime, dist: Any, manager: Any,
                   argv: list[str]) -> Any:
    """Rank 0 creates the run folder, writes the configs and snapshots the code; other ranks open it."""
    from edcore.project import DEFAULT_MAX_FILE_SIZE, ProjectManager, default_code_root, writing_run_folder

    logdir = Path(config.get("logdir") or "logs")
    if args.debug:
        logdir = logdir / "debug"
    if dist.rank != 0:
        return ProjectManager.open(dist.broadcast(None))
    project = ProjectManager.create(logdir, run_name(config, args), now)
    from edcore.runlock import lock_training

    lock_training(project.root)
    dist.broadcast(str(project.root))
    with writing_run_folder(project.root):
        project.write_config("train", config, now)
        snapshot = None
        code_root = default_code_root(config.data)
        if code_root:
            settings = config.get("snapshot") or {}
            snapshot = project.snapshot_code(code_root, settings.get("max_file_size", DEFAULT_MAX_FILE_SIZE),
                                             settings.get("exclude", []), logdir)
        project.record_invocation(argv, "train", _plugin_rows(manager), {"snapshot": snapshot})
    return project


def _plugin_rows(manager: Any) -> list[dict]:
    from edcore.plugins import plugin_table

    return plugin_table(manager)
