"""Dotted names (``pkg.mod.Class`` or ``pkg.mod:Class``) resolved to objects, with errors that say what is wrong."""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import pkgutil
import sys
from typing import Any, Mapping

from edcore.errors import DottedNameError, EdflowError, UserCodeError, describe_exception


def ensure_cwd_importable() -> None:
    """Make the current directory importable, as EDFlow did: users run edflow next to their package."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def resolve(name: str, *, where: str = "", allow_module: bool = False) -> Any:
    """Import the object ``name`` refers to.

    ``where`` says where the name was written (``train.yaml:3, key 'model'``) and is put in front of every error.
    Three failures are told apart: the module does not exist, the module exists but raised while importing (the
    user's file and line and the original error are shown), and the attribute is missing (close names listed).
    """
    ensure_cwd_importable()
    prefix = f"{where}: " if where else ""
    if not isinstance(name, str) or not name:
        raise DottedNameError(f"{prefix}expected a dotted name like mypkg.module.Class, found {name!r}.")
    if ":" in name:
        module_name, _, attribute_path = name.partition(":")
        module = _import(module_name, name, prefix)
        attributes = attribute_path.split(".") if attribute_path else []
    else:
        parts = name.split(".")
        found = _longest_module(parts, name, prefix)
        module = _import(".".join(parts[:found]), name, prefix)
        attributes = parts[found:]
    obj: Any = module
    for depth, attribute in enumerate(attributes):
        try:
            obj = getattr(obj, attribute)
        except AttributeError:
            owner = ".".join([module.__name__] + attributes[:depth])
            raise DottedNameError(f"{prefix}'{name}': {_missing_attribute(obj, owner, attribute)}") from None
    if obj is module and not allow_module:
        raise DottedNameError(
            f"{prefix}'{name}' names a module; expected a class or function inside it, like '{name}.ClassName'."
        )
    return obj


def _longest_module(parts: list[str], name: str, prefix: str) -> int:
    """How many leading parts of ``name`` form an importable module."""
    found = 0
    for length in range(1, len(parts) + 1):
        candidate = ".".join(parts[:length])
        try:
            spec = importlib.util.find_spec(candidate)
        except ModuleNotFoundError as err:
            if err.name == candidate:
                break  # the parent is a module, not a package: the rest are attributes
            parent = ".".join(parts[: length - 1])
            raise UserCodeError(
                f"{prefix}'{name}': module '{parent}' was found but raised while importing: "
                f"{describe_exception(err)}. Install the missing package or fix the import."
            ) from err
        except Exception as err:  # importing a parent package ran user code that raised
            parent = ".".join(parts[: length - 1])
            raise UserCodeError(
                f"{prefix}'{name}': module '{parent}' was found but raised while importing: {describe_exception(err)}"
            ) from err
        if spec is None:
            break
        found = length
    if found == 0:
        raise DottedNameError(
            f"{prefix}'{name}': no module named '{parts[0]}' can be imported from the current directory "
            f"({os.getcwd()}) or the installed packages. Run edflow from the folder that contains '{parts[0]}', "
            f"or install it."
        )
    return found


def _import(module_name: str, name: str, prefix: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            parent, _, child = module_name.rpartition(".")
            if parent:
                raise DottedNameError(f"{prefix}'{name}': {_missing_attribute(importlib.import_module(parent), parent, child)}") from None
            raise DottedNameError(f"{prefix}'{name}': no module named '{module_name}'.") from None
        raise UserCodeError(
            f"{prefix}'{name}': module '{module_name}' was found but raised while importing: "
            f"{describe_exception(err)}. Install the missing package or fix the import."
        ) from err
    except Exception as err:
        raise UserCodeError(
            f"{prefix}'{name}': module '{module_name}' was found but raised while importing: {describe_exception(err)}"
        ) from err


def _missing_attribute(owner: Any, owner_name: str, attribute: str) -> str:
    names = [n for n in dir(owner) if not n.startswith("_")]
    if hasattr(owner, "__path__"):
        names += [info.name for info in pkgutil.iter_modules(owner.__path__)]
    close = difflib.get_close_matches(attribute, sorted(set(names)), n=3, cutoff=0.5)
    hint = f" Close names: {', '.join(close)}." if close else ""
    kind = "package" if hasattr(owner, "__path__") else "module" if type(owner).__name__ == "module" else "object"
    return f"{kind} '{owner_name}' has no attribute or submodule '{attribute}'.{hint}"


def iterator_derives_from(config: Mapping, module_name: str, class_name: str) -> bool:
    """Whether ``config["iterator"]`` names a subclass of ``module_name.class_name``.

    A backend asks this in every run; when nothing has imported ``module_name`` yet (the CLI imports the
    config's iterator before any backend hook runs), no iterator can derive from it, and the answer is False
    without importing the module and its framework.
    """
    module = sys.modules.get(module_name)
    name = config.get("iterator")
    if module is None or not isinstance(name, str):
        return False
    try:
        cls = resolve(name)
    except EdflowError:  # a wrong name is reported by the core's own check, with its place
        return False
    return isinstance(cls, type) and issubclass(cls, getattr(module, class_name))


def dotted_name(obj: Any) -> str:
    """The inverse of :func:`resolve` for classes and functions."""
    return f"{obj.__module__}.{obj.__qualname__}"
