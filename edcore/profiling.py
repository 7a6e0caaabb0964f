"""``--profile-hooks``: the time each plugin spends in each hook, reported at the end of the run.

Off by default, and then nothing of this module runs: the hook implementations are the plugins' own functions.
When on, every (non-wrapper) hook implementation of the run's plugin manager is replaced by a timing wrapper
*before* the per-step hooks are bound, so the fast per-step callers of :func:`edcore.plugins.bind_step_hook` time
them too. A warning names a plugin as soon as it takes more than ``hook_warn_share`` of the loop's time.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Mapping

from edcore.hookspecs import hookimpl

log = logging.getLogger("edflow")

PLUGIN_NAME = "core.profiler"
#: Share of the loop's wall time above which a plugin's hook gets a warning during the run.
DEFAULT_WARN_SHARE = 0.10
#: Shares are checked every this many timed calls, and only after this many steps (a few steps say little).
CHECK_EVERY_CALLS = 64
MIN_STEPS_FOR_WARNING = 20
REPORT_FILE = "hook_profile.json"


def settings(config: Mapping) -> dict | None:
    """The profiler settings (``profile_hooks: true``, ``hook_warn_share: 0.1``), or ``None`` when off."""
    if not config.get("profile_hooks"):
        return None
    share = config.get("hook_warn_share")
    return {"warn_share": DEFAULT_WARN_SHARE if share is None else float(share)}


class Timing:
    """Calls and seconds of one plugin's implementation of one hook."""

    __slots__ = ("plugin", "hook", "calls", "seconds", "loop_seconds", "warned")

    def __init__(self, plugin: str, hook: str) -> None:
        self.plugin = plugin
        self.hook = hook
        self.calls = 0
        self.seconds = 0.0
        self.loop_seconds = 0.0  # the part spent while the loop ran (not in set-up or the final checkpoint)
        self.warned = False


class HookProfiler:
    """Times every hook implementation; a plugin of its own marks the loop's start and reports at the end."""

    def __init__(self, warn_share: float = DEFAULT_WARN_SHARE) -> None:
        self.warn_share = warn_share
        self.report_dir: Any = None  # the folder of the process (the iterator's root)
        self.timings: list[Timing] = []
        self.loop_start: float | None = None
        self.in_loop = False
        self.loop_seconds = 0.0
        self.start_step = 0
        self.steps = 0
        self.iterator: Any = None
        self.until_check = CHECK_EVERY_CALLS

    def install(self, manager: Any) -> None:
        """Register the profiler's plugin and wrap every other implementation of every hook."""
        from edcore.plugins import PluginInfo

        manager.register_plugin(self, PluginInfo(PLUGIN_NAME, "built-in"))
        for hook_name in dir(manager.hook):
            if not hook_name.startswith("edflow_"):
                continue
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                # New-style and old-style wrappers are generators around all the others: timing their call
                # would measure the creation of a generator only.
                if impl.plugin is self or impl.hookwrapper or impl.wrapper:
                    continue
                timing = Timing(impl.plugin_name, hook_name)
                self.timings.append(timing)
                impl.function = self._timed(impl.function, timing)

    def _timed(self, function: Callable, timing: Timing) -> Callable:
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                seconds = clock() - start
                timing.seconds += seconds
                timing.calls += 1
                if self.in_loop:
                    timing.loop_seconds += seconds
                self.until_check -= 1
                if self.until_check <= 0:
                    self.until_check = CHECK_EVERY_CALLS
                    self.check_shares()

        timed.__wrapped__ = function  # type: ignore[attr-defined]  # error reports find the plugin's own code
        timed.__name__ = getattr(function, "__name__", timing.hook)
        return timed

    # -- the loop ------------------------------------------------------------------------------------------------

    @hookimpl(trylast=True)  # the loop starts once every other plugin has prepared it
    def edflow_before_training(self, iterator: Any) -> None:
        self.start(iterator, iterator.root)

    @hookimpl(trylast=True)
    def edflow_after_training(self, iterator: Any, status: str) -> None:
        if self.in_loop:  # the process did not say where the loop ended
            self.finish(iterator)
        self.report()

    @hookimpl(trylast=True)
    def edflow_before_evaluation(self, iterator: Any, global_step: int, eval_dir: Any) -> None:
        self.start(iterator, eval_dir)

    @hookimpl(trylast=True)
    def edflow_after_evaluation(self, iterator: Any, global_step: int, eval_dir: Any, metrics: Any) -> None:
        self.finish(iterator)
        self.report()

    def start(self, iterator: Any, report_dir: Any) -> None:
        self.iterator = iterator
        self.report_dir = report_dir
        self.start_step = iterator.get_global_step()
        self.loop_start = time.perf_counter()
        self.in_loop = True

    def finish(self, iterator: Any) -> None:
        """The loop has ended (called by the process before the final checkpoint, which is not the loop's)."""
        self.in_loop = False
        if self.loop_start is not None:
            self.loop_seconds = time.perf_counter() - self.loop_start
            self.steps = iterator.get_global_step() - self.start_step

    def check_shares(self) -> None:
        """Warn once per plugin and hook whose time is more than ``warn_share`` of the loop so far."""
        if self.loop_start is None or self.iterator is None:
            return
        if self.iterator.get_global_step() - self.start_step < MIN_STEPS_FOR_WARNING:
            return
        elapsed = time.perf_counter() - self.loop_start
        for timing in self.timings:
            if not timing.warned and timing.loop_seconds > self.warn_share * elapsed:
                timing.warned = True
                log.warning(
                    "plugin '%s' takes %.0f%% of the loop's time in %s (more than hook_warn_share, "
                    "%.0f%%); the report at the end of the run has the details",
                    timing.plugin, 100 * timing.loop_seconds / elapsed, timing.hook, 100 * self.warn_share)

    # -- the report ----------------------------------------------------------------------------------------------

    def rows(self) -> list[dict]:
        """Each plugin's time per hook, the largest share of the loop first, then the set-up hooks; per step and
        shares count the time spent while the loop ran only."""
        rows = []
        for timing in sorted(self.timings, key=lambda t: (-t.loop_seconds, -t.seconds)):
            if not timing.calls:
                continue
            in_loop = timing.loop_seconds > 0
            rows.append({
                "plugin": timing.plugin, "hook": timing.hook, "calls": timing.calls,
                "total_ms": 1e3 * timing.seconds, "us_per_call": 1e6 * timing.seconds / timing.calls,
                "us_per_step": 1e6 * timing.loop_seconds / self.steps if self.steps and in_loop else None,
                "share_of_loop": timing.loop_seconds / self.loop_seconds if self.loop_seconds and in_loop else None,
            })
        return rows

    def text(self) -> str:
        """The report as the log shows it."""
        per_step = f", {1e3 * self.loop_seconds / self.steps:.3f} ms/step" if self.steps else ""
        lines = [f"hook profile: {self.steps} steps, loop {self.loop_seconds:.3f} s{per_step}",
                 f"  {'plugin':<24} {'hook':<28} {'calls':>8} {'total ms':>10} {'µs/call':>9} {'µs/step':>9} "
                 f"{'of loop':>8}"]
        for row in self.rows():
            per = f"{row['us_per_step']:9.2f}" if row["us_per_step"] is not None else f"{'-':>9}"
            share = f"{100 * row['share_of_loop']:7.2f}%" if row["share_of_loop"] is not None else f"{'-':>8}"
            lines.append(f"  {row['plugin']:<24} {row['hook']:<28} {row['calls']:>8} {row['total_ms']:>10.2f} "
                         f"{row['us_per_call']:>9.2f} {per} {share}")
        return "\n".join(lines)

    def report(self) -> None:
        """Log the report and write it as ``hook_profile.json`` into the process folder."""
        log.info("%s", self.text())
        if self.report_dir is None:
            return
        try:
            with open(f"{self.report_dir}/{REPORT_FILE}", "w", encoding="utf-8") as stream:
                json.dump({"steps": self.steps, "loop_seconds": self.loop_seconds, "hooks": self.rows()},
                          stream, indent=1)
        except OSError as err:  # the report is a convenience; the run's own files matter more
            log.warning("could not write the hook profile: %s", err)


def install(manager: Any, config: Mapping) -> HookProfiler | None:
    """A profiler installed into ``manager`` when the config asks for one, else ``None`` (and nothing changes)."""
    options = settings(config)
    if options is None:
        return None
    profiler = HookProfiler(options["warn_share"])
    profiler.install(manager)
    return profiler
