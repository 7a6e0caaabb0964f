"""Built-in providers: the dataset, model and iterator named in the config by dotted strings."""
from __future__ import annotations

from typing import Any

from edcore.errors import EdflowError, UserCodeError, describe_exception, format_user_traceback
from edcore.hookspecs import hookimpl
from edcore.iterator import DummyModel, check_iterator_class
from edcore.references import resolve


def construct(key: str, name: str, *args: Any) -> Any:
    """Call the class or factory named by config key ``key``; errors in it are reported as the user's."""
    factory = resolve(name, where=f"config key '{key}'")
    try:
        return factory(*args)
    except EdflowError:
        raise
    except Exception as err:
        raise UserCodeError(
            f"{key} '{name}' raised while being created: {describe_exception(err)}\n{format_user_traceback(err)}"
        ) from err


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
