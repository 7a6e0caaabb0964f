"""edcore: the framework-agnostic core of edflow.

Public names only; everything else is internal. Importing edcore builds no plugin manager and imports no
framework.
"""
from edcore.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DottedNameError,
    EdflowError,
    PluginError,
    UsageError,
    UserCodeError,
)
from edcore.hookspecs import hookimpl
from edcore.iterator import DummyModel, Iterator, TemplateIterator

__all__ = [
    "hookimpl",
    "Iterator",
    "TemplateIterator",
    "DummyModel",
    "EdflowError",
    "UsageError",
    "ConfigError",
    "DottedNameError",
    "UserCodeError",
    "PluginError",
    "DataError",
    "CheckpointError",
]

try:
    from importlib.metadata import version as _version

    __version__ = _version("edcore")
except Exception:  # running from a checkout without installing
    __version__ = "0+unknown"
