"""``edflow plugins``: every plugin, where it comes from, its hooks, and the order of each hook's calls."""
from __future__ import annotations

import argparse
import json
from typing import Any

from edcore.commands import emit


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``edflow plugins``."""
    parser = argparse.ArgumentParser(prog="edflow plugins", description=__doc__.split(": ", 1)[1])
    parser.add_argument("config", nargs="?", metavar="CONFIG.yaml",
                        help="also load the plugins named in this config's plugins: and leave out its "
                             "disable_plugins:, as a run of it would")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--hooks", action="store_true", help="list the hooks this edcore defines")
    parser.add_argument("--disable-plugin", metavar="NAME", action="append", default=[],
                        help="leave out this plugin, as 'edflow --disable-plugin NAME' does; repeatable")
    return parser


def origin_text(row: dict) -> str:
    """Where a plugin comes from, in words."""
    if row["source"] == "entry point":
        return f"{row['distribution']} {row['version']}, entry point {row['entry_point']}"
    if row["source"] == "config":
        return f"config plugins: {row['name']}"
    return row["source"]


def marked(manager: Any, hook_name: str, plugin_name: str) -> str:
    """``name`` plus how its implementation is marked (tryfirst, trylast, wrapper)."""
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        if impl.plugin_name == plugin_name:
            marks = [m for m in ("tryfirst", "trylast") if getattr(impl, m)]
            return f"{plugin_name} ({', '.join(marks)})" if marks else plugin_name
    return plugin_name


def main(argv: list[str]) -> int:
    """Build the plugin manager as a run would and describe it."""
    args = build_parser().parse_args(argv)
    from edcore.plugins import hook_order, make_plugin_manager, plugin_table

    disabled = list(args.disable_plugin)
    config_plugins: list[str] = []
    if args.config:
        from edcore.config import load_configs
        from edcore.references import ensure_cwd_importable

        ensure_cwd_importable()
        data = load_configs([args.config]).data
        config_plugins = list(data.get("plugins") or [])
        disabled += [name for name in data.get("disable_plugins") or [] if name not in disabled]
    manager = make_plugin_manager(config_plugins=config_plugins, disabled=disabled)
    manager.check_disabled(args.disable_plugin)
    rows = plugin_table(manager)
    order = hook_order(manager)
    if args.json:
        emit(json.dumps({"plugins": rows, "hook_order": order, "broken": manager.broken, "disabled": disabled},
                         indent=2))
        return 0
    if args.hooks:
        for name in sorted(order):
            spec = getattr(manager.hook, name).spec
            emit(f"{name}({', '.join(spec.argnames)})")
        return 0
    emit("plugins (in registration order):")
    for row in rows:
        emit(f"  {row['name']:<24} {origin_text(row)}")
        emit(f"  {'':<24} hooks: {', '.join(h.removeprefix('edflow_') for h in row['hooks']) or '(none)'}")
    for name, message in manager.broken.items():
        emit(f"  {name:<24} FAILED TO LOAD: {message}")
    for name in disabled:
        emit(f"  {name:<24} disabled")
    emit("\ncall order per hook (first called first):")
    for hook_name, plugins in order.items():
        if plugins:
            shown = [p if p.endswith("(wrapper)") else marked(manager, hook_name, p) for p in plugins]
            emit(f"  {hook_name}: {', '.join(shown)}")
    return 0
