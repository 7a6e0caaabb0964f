"""``edflow plugins``: every plugin, where it comes from, its hooks, and the order of each hook's calls."""
from __future__ import annotations

import argparse
import json


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edflow plugins", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--hooks", action="store_true", help="list the hooks this edcore defines")
    parser.add_argument("--disable-plugin", metavar="NAME", action="append", default=[])
    args = parser.parse_args(argv)

    from edcore.plugins import hook_order, make_plugin_manager, plugin_table

    manager = make_plugin_manager(disabled=args.disable_plugin)
    rows = plugin_table(manager)
    order = hook_order(manager)
    if args.json:
        print(json.dumps({"plugins": rows, "hook_order": order, "broken": manager.broken}, indent=2))
        return 0
    if args.hooks:
        for name in sorted(order):
            spec = getattr(manager.hook, name).spec
            print(f"{name}({', '.join(spec.argnames)})")
        return 0
    print("plugins (in registration order):")
    for row in rows:
        origin = row["source"]
        if row["source"] == "entry point":
            origin = f"entry point {row['entry_point']} [{row['distribution']} {row['version']}]"
        print(f"  {row['name']:<24} {origin}")
        print(f"  {'':<24} hooks: {', '.join(row['hooks']) or '(none)'}")
    for name, message in manager.broken.items():
        print(f"  {name:<24} FAILED TO LOAD: {message}")
    print("\ncall order per hook (first called first):")
    for hook_name, plugins in order.items():
        if plugins:
            print(f"  {hook_name}: {', '.join(plugins)}")
    return 0
