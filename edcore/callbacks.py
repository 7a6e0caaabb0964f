"""Evaluation callbacks: ``eval_callbacks: {name: dotted.function}``, each called on the stored outputs of a pass.

A callback is called as ``fn(eval_dir, dataset, outputs, config)``: the folder of the pass
(``eval/<timestamp>_<name>/<global_step>/``, where it may write files of its own), the evaluation dataset, the
stored outputs (:class:`edcore.outputs.EvalOutputs`, read back from disk, so a re-run with ``edflow eval-outputs``
sees exactly the same input) and the config (a dict). It returns a dict of scalars (nested dicts are joined with
``/``), a single number, or ``None``. Metric names are ``<callback name>/<key>``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from edcore.errors import EdflowError, UsageError, UserCodeError, describe_exception, format_user_traceback


def parse_callback_args(tokens: Iterable[str]) -> dict[str, str]:
    """``["acc:pkg.metrics.accuracy", ...]`` -> ``{"acc": "pkg.metrics.accuracy"}``; bad tokens are usage errors."""
    callbacks: dict[str, str] = {}
    for token in tokens:
        name, separator, dotted = token.partition(":")
        if not separator or not name or not dotted:
            raise UsageError(f"-c '{token}': expected NAME:dotted.function, e.g. -c accuracy:mypkg.metrics.accuracy.")
        if name in callbacks:
            raise UsageError(f"-c '{token}': the callback name '{name}' is given twice; names must be unique.")
        callbacks[name] = dotted
    return callbacks


def resolve_callbacks(callbacks: Mapping[str, str], where: Callable[[str], str]) -> dict[str, Callable]:
    """Import every callback; ``where(name)`` says where a name came from (for the error message)."""
    from edcore.references import resolve

    resolved = {}
    for name, dotted in callbacks.items():
        function = resolve(dotted, where=where(name))
        if not callable(function):
            raise UsageError(f"{where(name)}: eval callback '{dotted}' is a {type(function).__name__}, not a function.")
        resolved[name] = function
    return resolved


def run_callbacks(callbacks: Mapping[str, Callable], eval_dir: str, dataset: Any, outputs: Any,
                  config: Mapping) -> dict[str, float]:
    """Call each callback in order and collect their scalars as ``{"<name>/<key>": float}``."""
    metrics: dict[str, float] = {}
    for name, function in callbacks.items():
        try:
            returned = function(eval_dir, dataset, outputs, config)
        except EdflowError:
            raise
        except Exception as err:
            raise UserCodeError(f"eval callback '{name}' ({_dotted(function)}) raised {describe_exception(err)}\n"
                                f"{format_user_traceback(err)}") from err
        metrics.update(_scalars(name, returned, function))
    return metrics


def _scalars(name: str, returned: Any, function: Callable) -> dict[str, float]:
    if returned is None:
        return {}
    if not isinstance(returned, Mapping):
        returned = {"": returned}
    flat: dict[str, float] = {}
    for key, value in returned.items():
        metric = f"{name}/{key}" if key != "" else name
        if isinstance(value, Mapping):
            flat.update(_scalars(metric, value, function))
            continue
        try:
            item = getattr(value, "item", None)  # numpy and framework scalars
            number = float(item() if item is not None else value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise UserCodeError(
                f"eval callback '{name}' ({_dotted(function)}) returned {type(value).__name__} for '{metric}'; "
                f"callbacks return a dict of numbers (scalars).") from err
        flat[metric] = number
    return flat


def _dotted(function: Callable) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
