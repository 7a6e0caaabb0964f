"""Building the plugin manager: built-ins, entry points of the group ``edflow`` and the config's ``plugins:``."""
from __future__ import annotations

import contextlib
import importlib
import logging
import operator
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import pluggy

from edcore import hookspecs
from edcore.errors import PluginContractError, PluginError, UsageError, describe_exception, source_place

log = logging.getLogger("edflow")

#: One name for the marker project, the hook prefix and the entry-point group.
ENTRY_POINT_GROUP = "edflow"

#: The built-in plugins (name, module, class or None for the module itself) in registration order. This order is
#: documented API (README "Plugins"): a test pins it.
BUILTIN_PLUGINS = (
    ("core.providers", "edcore.builtin.providers", None),
    ("core.batching", "edcore.builtin.batching", None),
    ("core.seed", "edcore.builtin.seed", None),
    ("core.retention", "edcore.builtin.checkpointing", "Retention"),
    ("core.metrics", "edcore.builtin.logging", "MetricsLogger"),
    ("core.tensorboard", "edcore.builtin.tensorboard", "TensorBoardLogger"),
    ("core.status", "edcore.builtin.status", "RunStatus"),
    ("core.media", "edcore.builtin.media", "MediaLogger"),
)

#: Set to 1 to skip entry-point plugins (tests and reproducibility runs choose their plugins exactly).
DISABLE_AUTOLOAD_ENV = "EDFLOW_DISABLE_PLUGIN_AUTOLOAD"


@dataclass
class PluginInfo:
    """Where a registered plugin came from, for ``edflow plugins``, ``--version`` and the run folder."""

    name: str
    source: str  # "built-in", "entry point" or "config"
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None
    named_at: str | None = None  # config plugins: the file:line of the ``plugins:`` item


_entry_points_cache: list | None = None
_extra_plugins: list = []  # (name, plugin) pairs added by edcore.testing for in-process runs


@contextlib.contextmanager
def extra_plugins(plugins: Iterable[tuple[str, Any]]) -> Iterator[None]:
    """Register ``plugins`` last in every plugin manager built inside this block (edcore.testing)."""
    previous = list(_extra_plugins)
    _extra_plugins[:] = list(plugins)
    try:
        yield
    finally:
        _extra_plugins[:] = previous


def entry_points() -> list:
    """The entry points of group ``edflow``, scanned once per process and de-duplicated by (name, value)."""
    global _entry_points_cache
    if _entry_points_cache is None:
        from importlib.metadata import entry_points as scan

        unique: dict = {}
        for entry_point in scan(group=ENTRY_POINT_GROUP):
            # Editable installs and lib64 symlinks can list one entry point twice (pypa/setuptools#3649).
            unique.setdefault((entry_point.name, entry_point.value), entry_point)
        _entry_points_cache = sorted(unique.values(), key=lambda ep: ep.name)
    return _entry_points_cache


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus where each plugin came from and which entry points failed to load."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.broken: dict[str, str] = {}
        self.skipped: set[str] = set()  # blocked plugins that would have been registered

    def register_plugin(self, plugin: Any, info: PluginInfo) -> None:
        """Register ``plugin`` under ``info.name``; validation errors name the plugin, the hook and where the plugin
        was named (its entry point and distribution, or the config file and line)."""
        if self.is_blocked(info.name):
            self.skipped.add(info.name)
            return
        try:
            self.register(plugin, name=info.name)
        except pluggy.PluginValidationError as err:
            raise PluginContractError(self._invalid_hook_message(plugin, info, err)) from err
        except ValueError as err:  # already registered under another name, or the name is taken
            raise PluginError(f"plugin '{info.name}' ({_provenance(info)}) cannot be registered: {err}") from err
        self.info[info.name] = info

    def _invalid_hook_message(self, plugin: Any, info: PluginInfo, err: pluggy.PluginValidationError) -> str:
        """pluggy's complaint about one hook implementation as a sentence about the plugin's code."""
        match = re.search(r"hook '(\w+)'", str(err))
        hook_name = match.group(1) if match else None
        caller = getattr(self.hook, hook_name, None) if hook_name else None
        function = getattr(plugin, hook_name, None) if hook_name else None
        if caller is None or caller.spec is None or function is None:
            return f"plugin '{info.name}' ({_provenance(info)}) is invalid: {_oneline(err)}"
        opts = self.parse_hookimpl_opts(plugin, hook_name) or {}
        impl = pluggy.HookImpl(plugin, info.name, function, opts)  # pluggy's own reading of the arguments
        passed = list(caller.spec.argnames) + list(caller.spec.kwargnames)
        extra = [name for name in impl.argnames if name not in passed]
        place = f"plugin '{info.name}' ({_provenance(info)}) implements hook '{hook_name}'{_defined_at(function)}"
        if not extra:
            return f"{place}, and pluggy refuses it: {_oneline(err)}"
        import difflib

        hints = []
        for name in extra:
            close = difflib.get_close_matches(name, passed, n=1)
            hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return (f"{place} with the argument{'s' if len(extra) > 1 else ''} {', '.join(hints)}, which the hook does not "
                f"pass. '{hook_name}' passes {', '.join(passed)}; a hook implementation takes any of them by name.")

    def check(self) -> None:
        """Fail at start-up when a plugin implements a hook that does not exist (a typo or a newer edcore)."""
        try:
            self.check_pending()
        except pluggy.PluginValidationError as err:
            name = self.get_name(err.plugin) or repr(err.plugin)
            info = self.info.get(name, PluginInfo(name, "unknown"))
            import difflib

            known = [h for h in dir(self.hook) if h.startswith("edflow_") and getattr(self.hook, h).spec is not None]
            unknown = [attr for attr in dir(err.plugin) if attr.startswith("edflow_") and attr not in known
                       and self.parse_hookimpl_opts(err.plugin, attr) is not None]
            hints = []
            for attr in unknown:
                close = difflib.get_close_matches(attr, known, n=1)
                hints.append(f"'{attr}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                             + _defined_at(getattr(err.plugin, attr)))
            raise PluginContractError(
                f"plugin '{name}' ({_provenance(info)}) implements unknown hook {', '.join(hints) or _oneline(err)}. "
                f"This edcore knows the hooks listed by 'edflow plugins --hooks'; the plugin may need a newer edcore."
            ) from err

    def check_disabled(self, names: Iterable[str]) -> None:
        """A usage error for a ``--disable-plugin NAME`` that names no plugin (it would silently disable nothing)."""
        from edcore.profiling import PLUGIN_NAME as PROFILER

        known = set(self.info) | self.skipped | set(self.broken) | {name for name, _, _ in BUILTIN_PLUGINS} | {PROFILER}
        for name in names:
            if name in known:
                continue
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"the plugins are: {', '.join(sorted(known))}."
            raise UsageError(f"--disable-plugin {name}: no plugin of this name is installed or named in the config; "
                             f"{hint} ('edflow plugins' lists them.)")

    def plugin_of(self, function: Callable) -> str:
        """The name of the plugin a hook implementation belongs to."""
        for name, plugin in self.list_name_plugin():
            for attr in dir(plugin):
                if getattr(plugin, attr, None) is function or getattr(getattr(plugin, attr, None), "__func__", None) is function:
                    return name
        return getattr(function, "__module__", "?")

    def describe_plugin(self, name: str) -> str:
        info = self.info.get(name)
        return f"plugin '{name}' ({_provenance(info)})" if info else f"plugin '{name}'"


def _provenance(info: PluginInfo | None) -> str:
    if info is None:
        return "unknown origin"
    if info.source == "entry point":
        return f"entry point '{info.entry_point}' of {info.distribution} {info.version}"
    if info.source == "config":
        return f"named in {info.named_at}" if info.named_at else "config key 'plugins'"
    return info.source


def _defined_at(function: Any) -> str:
    """`` at path/to/plugin.py:12`` for a function whose source can be found, else nothing."""
    place = source_place(function)
    return f" at {place}" if place else ""


def config_plugin_place(configs: Iterable[Any], name: str) -> str | None:
    """Where a config names plugin ``name``: ``train.yaml:9, key 'plugins/0'``."""
    for config in configs:
        for index, item in enumerate(config.get("plugins") or []):
            if item == name:
                return config.where(("plugins", index))
    return None


def _oneline(err: BaseException) -> str:
    return " ".join(str(err).split())


def make_plugin_manager(
    *,
    config_plugins: Iterable[str] = (),
    disabled: Iterable[str] = (),
    autoload: bool | None = None,
    extra: Iterable[tuple[str, Any]] = (),
) -> PluginManager:
    """Build the plugin manager for one run. The CLI calls this; ``import edcore`` never does.

    ``config_plugins`` are dotted names from the config's ``plugins:`` (modules or classes; classes are
    instantiated without arguments). ``disabled`` are plugin names to block. ``extra`` are ``(name, plugin)``
    pairs registered last (used by ``edcore.testing``). Entry points are skipped when ``autoload`` is false or
    the environment variable ``EDFLOW_DISABLE_PLUGIN_AUTOLOAD`` is set.
    """
    from edcore.references import resolve

    manager = PluginManager()
    for name in disabled:
        manager.set_blocked(name)
    for name, module_name, class_name in BUILTIN_PLUGINS:
        plugin = importlib.import_module(module_name)
        if class_name is not None:
            plugin = getattr(plugin, class_name)()
        manager.register_plugin(plugin, PluginInfo(name, "built-in"))
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        load_entry_point_plugins(manager)
    for dotted in config_plugins:
        plugin = resolve(dotted, where="config key 'plugins'", allow_module=True)
        manager.register_plugin(instantiate(plugin, dotted), PluginInfo(dotted, "config"))
    for name, plugin in list(extra) + _extra_plugins:
        manager.register_plugin(plugin, PluginInfo(name, "test"))
    manager.check()
    return manager


def load_entry_point_plugins(manager: PluginManager) -> None:
    """Register every plugin of the entry-point group; one that fails to import is named in a warning and the
    others still load (pytest once hid such errors and plugins silently went missing)."""
    for entry_point in entry_points():
        if manager.is_blocked(entry_point.name):
            manager.skipped.add(entry_point.name)
            continue
        if manager.has_plugin(entry_point.name):
            continue
        distribution = getattr(entry_point, "dist", None)
        info = PluginInfo(
            entry_point.name,
            "entry point",
            distribution.name if distribution else None,
            distribution.version if distribution else None,
            f"{entry_point.name} = {entry_point.value}",
        )
        try:
            plugin = instantiate(entry_point.load(), entry_point.value)
        except Exception as err:
            message = (
                f"plugin '{entry_point.name}' ({_provenance(info)}) failed to load and is skipped: "
                f"{describe_exception(err)}"
            )
            manager.broken[entry_point.name] = message
            log.warning(message)
            continue
        manager.register_plugin(plugin, info)


def instantiate(plugin: Any, dotted: str) -> Any:
    """A plugin object: classes are instantiated without arguments, modules and objects are used as they are."""
    if isinstance(plugin, type):
        try:
            return plugin()
        except Exception as err:
            raise PluginError(f"plugin class '{dotted}' raised when created without arguments: {describe_exception(err)}") from err
    return plugin


# ---------------------------------------------------------------------------------------------------------------
# Calling hooks


def call_hook(manager: PluginManager, hook_name: str, **kwargs: Any) -> Any:
    """Call a hook; an exception from a plugin other than the core is reported naming that plugin."""
    caller = getattr(manager.hook, hook_name)
    try:
        return caller(**kwargs)
    except Exception as err:
        raise attribute_error(manager, caller, err) from err


def attribute_error(manager: PluginManager, caller: Any, err: BaseException) -> BaseException:
    """Wrap an exception raised inside a hook call so the message names the plugin that raised it.

    Errors of edflow itself (config, data, user code) and exceptions raised by the user's own code called from the
    built-in providers pass through unchanged.
    """
    from edcore.errors import EdflowError

    if isinstance(err, EdflowError):
        return err
    codes = {}
    for impl in caller.get_hookimpls():
        function = getattr(impl.function, "__wrapped__", impl.function)  # the plugin's code, not a timer around it
        if hasattr(function, "__code__"):
            codes[function.__code__] = impl.plugin_name
    tb = err.__traceback__
    plugin_name = None
    while tb is not None:
        plugin_name = codes.get(tb.tb_frame.f_code, plugin_name)
        tb = tb.tb_next
    if plugin_name is None or manager.info.get(plugin_name, PluginInfo("", "")).source == "built-in":
        return err
    if not _raised_inside(manager.get_plugin(plugin_name), err):
        return err  # the plugin called user code (e.g. iterator.save) and that raised: the caller reports it
    return PluginError(
        f"{manager.describe_plugin(plugin_name)} raised in hook '{caller.name}': {describe_exception(err)}. "
        f"Disable it with --disable-plugin {plugin_name} or fix the plugin."
    )


def _raised_inside(plugin: Any, err: BaseException) -> bool:
    module = plugin if type(plugin).__name__ == "module" else sys.modules.get(type(plugin).__module__)
    filename = getattr(module, "__file__", None)
    tb = err.__traceback__
    if filename is None or tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    folder = os.path.dirname(os.path.abspath(filename))
    if os.path.basename(filename) == "__init__.py" or module.__name__.count(".") > 0:
        folder = os.path.dirname(os.path.abspath(sys.modules[module.__name__.split(".")[0]].__file__ or filename))
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(folder)


def bind_step_hook(manager: PluginManager, hook_name: str) -> Callable[..., None] | None:
    """A fast caller for a per-step hook, or ``None`` when no plugin implements it.

    Plugins cannot change during a run, so the implementations are looked up once. Without wrappers the functions
    are called directly in pluggy's order, which costs about a tenth of a pluggy call (benchmarks/).
    """
    caller = getattr(manager.hook, hook_name)
    impls = caller.get_hookimpls()
    if not impls:
        return None
    argnames = tuple(caller.spec.argnames)
    if any(impl.hookwrapper or impl.wrapper for impl in impls):
        def call_through_pluggy(*args: Any) -> None:
            try:
                caller(**dict(zip(argnames, args)))
            except Exception as err:
                raise attribute_error(manager, caller, err) from err

        return call_through_pluggy
    calls = []
    for impl in reversed(impls):  # pluggy calls the last registered (and tryfirst) implementations first
        if tuple(impl.argnames) == argnames:
            calls.append(impl.function)
        else:
            positions = tuple(argnames.index(name) for name in impl.argnames)
            calls.append(_select(impl.function, positions))

    def call_direct(*args: Any) -> None:
        try:
            for function in calls:
                function(*args)
        except Exception as err:
            raise attribute_error(manager, caller, err) from err

    if len(calls) == 1:
        (only,) = calls

        def call_one(*args: Any) -> None:
            try:
                only(*args)
            except Exception as err:
                raise attribute_error(manager, caller, err) from err

        return call_one
    return call_direct


def _select(function: Callable, positions: tuple) -> Callable:
    """``function`` called with the hook's arguments at ``positions`` only (it takes a subset of them)."""
    if len(positions) == 1:  # the common case (e.g. only ``feeds``): no list built per call
        (position,) = positions

        def call(*args: Any) -> None:
            function(args[position])
    else:
        pick = operator.itemgetter(*positions) if positions else (lambda args: ())

        def call(*args: Any) -> None:
            function(*pick(args))

    call.__wrapped__ = function  # type: ignore[attr-defined]
    return call


def plugin_table(manager: PluginManager) -> list[dict]:
    """Every registered plugin with its origin and the hooks it implements (for ``edflow plugins`` and the run)."""
    rows = []
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        info = manager.info.get(name, PluginInfo(name, "unknown"))
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        rows.append({
            "name": name,
            "source": info.source,
            "distribution": info.distribution,
            "version": info.version,
            "entry_point": info.entry_point,
            "hooks": hooks,
        })
    return rows


def hook_order(manager: PluginManager) -> dict[str, list[str]]:
    """For each hook, the plugins implementing it in the order they are called."""
    order = {}
    for hook_name in sorted(h for h in dir(manager.hook) if h.startswith("edflow_")):
        impls = getattr(manager.hook, hook_name).get_hookimpls()
        wrappers = [i.plugin_name for i in reversed(impls) if i.hookwrapper or i.wrapper]
        plain = [i.plugin_name for i in reversed(impls) if not (i.hookwrapper or i.wrapper)]
        order[hook_name] = [f"{w} (wrapper)" for w in wrappers] + plain
    return order

