"""The plugin manager: built-ins, entry points, config plugins, validation at start-up, per-step calls."""
import importlib.metadata
import logging
import sys
import types

import pytest

from edcore import hookimpl
from edcore import plugins as plugin_module
from edcore.errors import PluginError
from edcore.plugins import BUILTIN_PLUGINS, bind_step_hook, call_hook, make_plugin_manager


@pytest.fixture
def fake_entry_points(monkeypatch, tmp_path):
    """Entry points of group edflow pointing at modules written into a temporary folder."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created = []

    def install(entries):
        points = []
        for name, (module_name, source) in entries.items():
            (tmp_path / f"{module_name}.py").write_text(source)
            created.append(module_name)
            points.append(importlib.metadata.EntryPoint(name, module_name, "edflow"))
        monkeypatch.setattr(plugin_module, "_entry_points_cache", points)

    yield install
    for module_name in created:
        sys.modules.pop(module_name, None)


def names(manager):
    return [name for name, plugin in manager.list_name_plugin() if plugin is not None]


def test_builtin_plugins_are_registered_first_in_documented_order():
    manager = make_plugin_manager(autoload=False)
    assert names(manager) == [name for name, _module, _cls in BUILTIN_PLUGINS]
    assert names(manager) == ["core.providers", "core.batching", "core.seed", "core.retention", "core.metrics",
                              "core.tensorboard", "core.status", "core.media"]


def test_entry_point_plugins_load_and_a_broken_one_is_named(fake_entry_points, caplog):
    fake_entry_points({
        "good": ("ep_good", "from edcore import hookimpl\n@hookimpl\ndef edflow_after_step(global_step):\n    pass\n"),
        "broken": ("ep_broken", "raise ImportError('missing native library')\n"),
    })
    with caplog.at_level(logging.WARNING, logger="edflow"):
        manager = make_plugin_manager(autoload=True)
    assert "good" in names(manager) and "broken" not in names(manager)
    assert "plugin 'broken'" in manager.broken["broken"] and "missing native library" in manager.broken["broken"]
    assert "failed to load and is skipped" in caplog.text


def test_disabled_plugins_are_not_registered(fake_entry_points):
    fake_entry_points({"good": ("ep_good2", "from edcore import hookimpl\n")})
    manager = make_plugin_manager(autoload=True, disabled=["good", "core.tensorboard"])
    assert "good" not in names(manager) and "core.tensorboard" not in names(manager)


def test_environment_variable_disables_autoload(fake_entry_points, monkeypatch):
    fake_entry_points({"good": ("ep_good3", "")})
    monkeypatch.setenv("EDFLOW_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "good" not in names(make_plugin_manager())


def test_a_misspelled_hook_fails_at_start_with_a_suggestion():
    class Typo:
        @hookimpl
        def edflow_after_stp(self, global_step):
            pass

    with pytest.raises(PluginError) as info:
        make_plugin_manager(autoload=False, extra=[("typo", Typo())])
    assert "plugin 'typo'" in str(info.value)
    assert "'edflow_after_stp' (did you mean 'edflow_after_step'?)" in str(info.value)


def test_an_unknown_argument_fails_at_registration():
    class BadArgs:
        @hookimpl
        def edflow_after_step(self, global_step, nonsense):
            pass

    with pytest.raises(PluginError, match=r"plugin 'bad' \(test\) implements hook 'edflow_after_step' at "
                                          r".*test_plugins.py:\d+ with the argument 'nonsense'") as info:
        make_plugin_manager(autoload=False, extra=[("bad", BadArgs())])
    assert info.value.exit_code == 2  # a usage error: the plugin's code must be fixed or the plugin disabled


def test_config_plugins_are_resolved_by_dotted_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg_plugin.py").write_text(
        "from edcore import hookimpl\nclass Plugin:\n    @hookimpl\n    def edflow_after_step(self):\n        pass\n")
    manager = make_plugin_manager(autoload=False, config_plugins=["cfg_plugin.Plugin", "cfg_plugin"])
    assert manager.info["cfg_plugin.Plugin"].source == "config"
    sys.modules.pop("cfg_plugin", None)


def make(*plugins):
    return make_plugin_manager(autoload=False, extra=[(f"p{i}", p) for i, p in enumerate(plugins)])


def recorder(label, calls, **marks):
    class Plugin:
        @hookimpl(**marks)
        def edflow_before_step(self, global_step, feeds):
            calls.append((label, global_step, sorted(feeds)))

    return Plugin()


def test_step_hook_without_implementations_is_not_called():
    assert bind_step_hook(make(), "edflow_before_step") is None


def test_step_hook_calls_in_pluggy_order_with_subset_arguments():
    calls = []
    manager = make(recorder("a", calls), recorder("b", calls), recorder("first", calls, tryfirst=True),
                   recorder("last", calls, trylast=True))
    call = bind_step_hook(manager, "edflow_before_step")
    call(3, {}, {"x": 1}, {"x": 1})
    expected = [label for label, *_ in calls]
    calls.clear()
    manager.hook.edflow_before_step(global_step=3, fetches={}, feeds={"x": 1}, batch={"x": 1})
    assert expected == [label for label, *_ in calls] == ["first", "b", "a", "last"]


def test_step_hook_with_a_wrapper_goes_through_pluggy():
    calls = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def edflow_before_step(self, global_step):
            calls.append("before")
            result = yield
            calls.append("after")
            return result

    call = bind_step_hook(make(recorder("inner", calls), Wrapper()), "edflow_before_step")
    call(1, {}, {}, {})
    assert [c if isinstance(c, str) else c[0] for c in calls] == ["before", "inner", "after"]


def test_a_raising_plugin_is_named():
    class Raising:
        @hookimpl
        def edflow_after_step(self, global_step):
            raise ZeroDivisionError("plugin bug")

    manager = make(Raising())
    call = bind_step_hook(manager, "edflow_after_step")
    with pytest.raises(PluginError) as info:
        call(1, {}, {}, {}, {})
    assert "plugin 'p0' (test) raised in hook 'edflow_after_step': ZeroDivisionError: plugin bug" in str(info.value)
    with pytest.raises(PluginError, match="plugin 'p0'"):
        call_hook(manager, "edflow_after_step", global_step=1, fetches={}, feeds={}, batch={}, results={})


def test_building_the_manager_is_not_done_at_import():
    import edcore

    assert not any(isinstance(v, plugin_module.PluginManager) for v in vars(edcore).values())
