"""--profile-hooks: each plugin's time per hook at the end of the run, a warning for a slow plugin, nothing when off."""
from __future__ import annotations

import json

from edcore import hookimpl
from edcore.plugins import make_plugin_manager
from edcore.process import Runtime

SLOW_PLUGIN = {
    "slowplug.py": '''
        import time

        from edcore import hookimpl


        class Slow:
            """Sleeps in every after_step: far more than the toy's step."""

            @hookimpl
            def edflow_after_step(self, global_step):
                time.sleep(0.002)


        class Quick:
            @hookimpl
            def edflow_before_step(self, feeds):
                pass


        class Broken:
            @hookimpl
            def edflow_after_step(self, global_step):
                if global_step == 3:
                    raise RuntimeError("broken on purpose")
    ''',
}


def test_the_report_lists_each_plugin_per_hook_and_warns_about_a_slow_one(edflow_project):
    edflow_project.write(SLOW_PLUGIN)
    edflow_project.toy(num_steps=60, toy_examples=800, plugins=["slowplug.Slow"])  # one epoch, no checkpoints
    outcome = edflow_project.run("-t", "train.yaml", "--profile-hooks", timeout=120).assert_success()
    assert "hook profile: 60 steps" in outcome.stderr
    assert "plugin 'slowplug.Slow' takes" in outcome.stderr and "edflow_after_step" in outcome.stderr
    (run,) = edflow_project.runs()
    report = json.loads((run / "train" / "hook_profile.json").read_text())
    rows = {(row["plugin"], row["hook"]): row for row in report["hooks"]}
    slow = rows[("slowplug.Slow", "edflow_after_step")]
    assert slow["calls"] == 60 and slow["share_of_loop"] > 0.5
    assert rows[("core.metrics", "edflow_log")]["calls"] == 13  # the first step, then every 5th of 60
    assert report["steps"] == 60
    assert report["hooks"][0]["plugin"] == "slowplug.Slow"  # the largest first


def test_the_config_key_and_the_warning_threshold(edflow_project):
    edflow_project.write(SLOW_PLUGIN)
    edflow_project.toy(num_steps=40, plugins=["slowplug.Quick"], profile_hooks=True, hook_warn_share=0.9)
    outcome = edflow_project.run("-t", "train.yaml", timeout=120).assert_success()
    assert "hook profile: 40 steps" in outcome.stderr
    assert "slowplug.Quick" in outcome.stderr and "takes" not in outcome.stderr


def test_no_report_and_no_timers_when_off(edflow_project):
    edflow_project.write(SLOW_PLUGIN)
    edflow_project.toy(num_steps=30, plugins=["slowplug.Slow"])
    outcome = edflow_project.run("-t", "train.yaml", timeout=120).assert_success()
    assert "hook profile" not in outcome.stderr and "takes" not in outcome.stderr
    (run,) = edflow_project.runs()
    assert not (run / "train" / "hook_profile.json").exists()


class Observer:
    @hookimpl
    def edflow_after_step(self, global_step):
        self.last = global_step


def test_off_leaves_the_plugins_functions_as_they_are():
    observer = Observer()
    runtime = Runtime(make_plugin_manager(autoload=False, extra=[("observer", observer)]), "train", {})
    assert runtime.profiler is None
    impls = runtime.manager.hook.edflow_after_step.get_hookimpls()
    assert [impl.function for impl in impls] == [observer.edflow_after_step]
    runtime.after_step(7, {}, {}, {}, {})
    assert observer.last == 7


def test_on_times_the_bound_step_hooks():
    observer = Observer()
    runtime = Runtime(make_plugin_manager(autoload=False, extra=[("observer", observer)]), "train",
                      {"profile_hooks": True})
    for step in range(5):
        runtime.after_step(step, {}, {}, {}, {})
    (timing,) = [t for t in runtime.profiler.timings if t.plugin == "observer"]
    assert timing.calls == 5 and timing.seconds > 0 and observer.last == 4


def test_an_error_in_a_timed_hook_still_names_the_plugin(edflow_project):
    edflow_project.write(SLOW_PLUGIN)
    edflow_project.toy(num_steps=10, plugins=["slowplug.Broken"])
    outcome = edflow_project.run("-t", "train.yaml", "--profile-hooks", timeout=120).assert_failed(1)
    assert "plugin 'slowplug.Broken'" in outcome.stderr and "raised in hook 'edflow_after_step'" in outcome.stderr
    assert "broken on purpose" in outcome.stderr and "Traceback" not in outcome.stderr
