"""``edflow sweep SWEEP.yaml``: train one config many times with different values of some of its keys (grid,
random or optuna), each trial an ordinary run folder; with -p SWEEP_DIR, continue an interrupted sweep."""
from __future__ import annotations

import argparse

from edcore.errors import UsageError

EXAMPLE = """\
sweep file:
  train: train.yaml          # relative to the sweep file; base: [base.yaml] as with -b
  name: lr-sweep
  method: grid               # grid (every combination), random or optuna (with trials: N)
  parameters:
    lr: [0.01, 0.1]          # config keypath -> values; '+key' adds a key no config has
    model/width: [32, 64]    # random/optuna also take {distribution: uniform|loguniform|int|choice, ...}
  metric: loss               # a logged scalar (or eval/<evaluation>/<metric>), read when each trial ends
  mode: min
  launcher: local            # local (default), ray or slurm
  max_parallel: 2
"""


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow sweep``."""
    parser = argparse.ArgumentParser(prog="edflow sweep", description=__doc__.split(": ", 1)[1], epilog=EXAMPLE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_file", nargs="?", metavar="SWEEP.yaml", help="the sweep file to start")
    parser.add_argument("-p", "--project", metavar="SWEEP_DIR",
                        help="continue this sweep: finished trials are kept, interrupted ones resume from their "
                             "latest checkpoint, missing ones start")
    parser.add_argument("-d", "--debug", action="store_true", help="full tracebacks and debug logging")
    return parser


def main(argv: list[str]) -> int:
    """Start or continue a sweep; the exit code is 0, 1 (a trial failed), 2 (bad input) or 128+N (signal N)."""
    args = build_parser().parse_args(argv)
    from edcore.references import ensure_cwd_importable
    from edcore import sweep

    if bool(args.sweep_file) == bool(args.project):
        raise UsageError("edflow sweep takes a sweep file to start (edflow sweep SWEEP.yaml) or a sweep folder to "
                         "continue (edflow sweep -p SWEEP_DIR), not both and not neither.")
    ensure_cwd_importable()
    if args.project:
        return sweep.resume(args.project, args.debug)
    return sweep.start(args.sweep_file, args.debug)
