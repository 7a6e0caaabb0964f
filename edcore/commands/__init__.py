"""Everyday ``edflow <command>`` subcommands."""
