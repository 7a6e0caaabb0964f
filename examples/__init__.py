"""Example projects, importable from the repository root as ``examples.<name>`` (edflow names them by dotted paths)."""
