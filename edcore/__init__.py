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



def __getattr__(name: str) -> object:
    """``hookimpl`` and ``__version__`` on first use: pluggy and importlib.metadata together are most of the time
    ``import edcore`` takes, and ``edflow --help`` needs neither (benchmarks/startup.py)."""
    if name == "hookimpl":
        from edcore.hookspecs import hookimpl

        globals()["hookimpl"] = hookimpl
        return hookimpl
    if name == "__version__":
        try:
            from importlib.metadata import version

            value = version("edcore")
        except Exception:  # running from a checkout without installing
            value = "0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'edcore' has no attribute '{name}'")
