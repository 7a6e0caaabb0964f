"""Built-in providers: the dataset, model and iterator named in the config by dotted strings."""
from __future__ import annotations

from typing import Any

from edcore.errors import (
    ConfigError,
    EdflowError,
    UserCodeError,
    call_mismatch,
    describe_callable,
    describe_exception,
    format_user_traceback,
)
from edcore.hookspecs import hookimpl
from edcore.iterator import DummyModel, check_iterator_class
from edcore.references import resolve


#: How the built-in providers call the class or factory each config key names.
CALLS = {"dataset": ("config",), "model": ("config",), "iterator": ("config", "root", "model")}


def construct(key: str, name: str, *args: Any) -> Any:
    """Call the class or factory named by config key ``key``; errors in it are reported as the user's."""
    factory = resolve(name, where=f"config key '{key}'")
    try:
        return factory(*args)
    except EdflowError:
        raise
    except Exception as err:
        # A TypeError raised by the call itself (no frame of the factory in the traceback) is a signature mismatch.
        mismatch = call_mismatch(factory, args, {}) if isinstance(err, TypeError) and not _went_inside(err) else None
        if mismatch:
            raise UserCodeError(f"{key} '{name}': {signature_problem(key, name, factory, str(err))}") from err
        raise UserCodeError(
            f"{key} '{name}' raised while being created: {describe_exception(err)}\n{format_user_traceback(err)}"
        ) from err


def _went_inside(err: BaseException) -> bool:
    return err.__traceback__ is not None and err.__traceback__.tb_next is not None


def signature_problem(key: str, name: str, factory: Any, mismatch: str) -> str:
    """The sentence for a dataset, model or iterator that cannot be called as edflow calls it."""
    call = f"{getattr(factory, '__name__', name)}({', '.join(CALLS[key])})"
    params = ", ".join(CALLS[key]) + (", **kwargs" if key == "iterator" else "")
    define = f"def __init__(self, {params})" if isinstance(factory, type) else f"def {call.split('(')[0]}({params})"
    return (f"edflow creates the {key} as {call}, but {describe_callable(factory)} cannot be called that way "
            f"({mismatch}). Define it as {define}.")


def check_signatures(config: Any, manager: Any, where: Any, keys: tuple = tuple(CALLS)) -> None:
    """Before any run folder exists: a dataset, model or iterator that the built-in providers would call with
    arguments it does not take is a config error naming its ``__init__`` and file:line; so is a config section of
    an ``edcore.data`` dataset that lacks an argument or has an unknown one. ``keys``: which of them to check
    (``edflow explore`` makes the dataset only)."""
    for key in keys:
        name = config.get(key)
        if not isinstance(name, str):
            continue
        answering = [impl.plugin_name for impl in getattr(manager.hook, f"edflow_{key}").get_hookimpls()
                     if not (impl.wrapper or impl.hookwrapper)]
        if answering != ["core.providers"]:
            continue  # another plugin makes it, maybe differently
        factory = resolve(name, where=where(key))
        mismatch = call_mismatch(factory, CALLS[key], {})
        if mismatch:
            raise ConfigError(f"{where(key)}: {signature_problem(key, name, factory, mismatch)}")
        if key == "dataset":
            from edcore.data import check_config  # numpy: only when a config is checked

            check_config(factory, config.data, where)  # the sections of edcore.data classes


@hookimpl(trylast=True)
def edflow_dataset(config, mode):
    return construct("dataset", config["dataset"], config)


@hookimpl(trylast=True)
def edflow_model(config):
    if config.get("model") is None:
        return DummyModel(config)
    return construct("model", config["model"], config)


@hookimpl(trylast=True)
def edflow_iterator(config, root, model, project):
    name = config["iterator"]
    check_iterator_class(resolve(name, where="config key 'iterator'"), name, "config key 'iterator'")
    iterator = construct("iterator", name, config, root, model)
    iterator.project = project
    return iterator
