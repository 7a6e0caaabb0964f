"""Errors meant for people: each prints as one paragraph and maps to an exit code."""
from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import sysconfig
import traceback
from types import TracebackType

#: Exit codes of the ``edflow`` command (documented in the README).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
#: An interrupted run exits with 128 + the signal number, as a shell reports it (130 for SIGINT, 143 for SIGTERM).
EXIT_SIGNAL_BASE = 128


class EdflowError(Exception):
    """Base class of every error edflow reports to the user as one paragraph without a traceback."""

    exit_code = EXIT_FAILURE


class UsageError(EdflowError):
    """The command line is wrong (unknown flag, malformed override, a path that does not exist)."""

    exit_code = EXIT_USAGE


class ConfigError(EdflowError):
    """The configuration is wrong; the message names file:line (or the override) and the key path."""

    exit_code = EXIT_USAGE


class DottedNameError(ConfigError):
    """A dotted name in the config does not name an importable object."""


class UserCodeError(EdflowError):
    """User code (a dataset, model, iterator, callback or module import) raised; the message shows where."""


class PluginError(EdflowError):
    """A plugin failed to load or one of its hooks raised; the message names the plugin."""


class PluginContractError(PluginError):
    """A plugin does not fit the hook contract (an unknown hook, an argument the hook does not pass): fixed in the
    plugin's code or by disabling it, before anything runs."""

    exit_code = EXIT_USAGE


class DataError(EdflowError):
    """The dataset is empty or its examples cannot be batched (not dicts, inconsistent keys or shapes)."""


class RunFolderError(EdflowError):
    """The run folder cannot be written (disk full, file too large, no permission, a path through a file)."""


class CheckpointError(EdflowError):
    """A checkpoint cannot be found, read or restored."""


#: Packages whose frames a user's traceback leaves out: edflow itself, pluggy and the frameworks' internals (found
#: without importing them; one that is not installed has no frames anyway).
FRAMEWORK_PACKAGES = ("edcore", "edflow_torch", "edflow_tf", "pluggy", "torch", "tensorflow", "keras", "tf_keras",
                      "numpy")


@functools.lru_cache(maxsize=None)
def _framework_dirs() -> tuple[str, ...]:
    dirs = []
    for name in FRAMEWORK_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            dirs.append(os.path.abspath(location) + os.sep)
    return tuple(dirs)


@functools.lru_cache(maxsize=None)
def _standard_library() -> str:
    return os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep


def _is_framework_frame(filename: str) -> bool:
    if filename.startswith(("<frozen ", "<string>")):
        return True
    filename = os.path.abspath(filename)
    if filename.startswith(_framework_dirs()):
        return True
    # The standard library (contextlib, threading, importlib) holds no user code, but packages installed under it do.
    return filename.startswith(_standard_library()) and not any(
        part in ("site-packages", "dist-packages") for part in filename.split(os.sep))


def user_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    """The frames of a traceback that belong to user code (not edflow, pluggy, the frameworks or the standard
    library)."""
    return [frame for frame in traceback.extract_tb(tb) if not _is_framework_frame(frame.filename)]


def describe_exception(err: BaseException) -> str:
    """One line: the original error and the innermost user-code place it came from."""
    text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    frames = user_frames(err.__traceback__)
    if isinstance(err, SyntaxError) and err.filename:
        return f"{text} ({err.filename}:{err.lineno})"
    if frames:
        frame = frames[-1]
        return f"{text} (at {frame.filename}:{frame.lineno}, in {frame.name})"
    return text


def format_user_traceback(err: BaseException) -> str:
    """The traceback of an error in user code, trimmed of framework frames."""
    frames = user_frames(err.__traceback__)
    lines = traceback.format_list(frames) if frames else []
    lines += traceback.format_exception_only(type(err), err)
    return "Traceback (user code only):\n" + "".join(lines)


def source_place(obj: object) -> str | None:
    """``toy/model.py:12``: the file (relative to the working directory when inside it) and the line of the ``def``
    or ``class`` statement of a function, method or class; None where the source cannot be found."""
    obj = inspect.unwrap(getattr(obj, "__func__", obj))  # type: ignore[arg-type]
    try:
        filename = inspect.getsourcefile(obj)  # type: ignore[arg-type]
        lines, start = inspect.getsourcelines(obj)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return None
    if filename is None:
        return None
    for offset, line in enumerate(lines):  # skip the decorators: the place is the def line
        if line.lstrip().startswith(("def ", "async def ", "class ")):
            start += offset
            break
    relative = os.path.relpath(filename)
    return f"{relative if not relative.startswith('..') else filename}:{start}"


def call_mismatch(function: object, args: tuple, kwargs: dict) -> str | None:
    """Why ``function(*args, **kwargs)`` cannot be called (inspect's words, e.g. "missing a required argument:
    'config'"), or None when it can, or when its signature cannot be read."""
    try:
        signature = inspect.signature(function)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        return str(err)
    return None


def describe_callable(function: object) -> str:
    """``Model.__init__(self, config, depth) at pkg/model.py:12``: what a signature error names."""
    target = function
    if isinstance(function, type):
        init = function.__init__  # type: ignore[misc]
        target = init if init is not object.__init__ else function
    name = getattr(target, "__qualname__", repr(target))
    try:
        text = f"{name}{inspect.signature(target)}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        text = name
    place = source_place(target)
    return f"{text} at {place}" if place else text
