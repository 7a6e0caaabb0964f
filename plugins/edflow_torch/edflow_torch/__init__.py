"""edflow-torch: the PyTorch backend of edflow.

``TemplateIterator`` is imported on first access: edcore loads this package's plugin in every run (it is an
entry point), and runs that do not use torch must not pay for importing it.
"""
from typing import Any

__all__ = ["TemplateIterator"]


def __getattr__(name: str) -> Any:
    if name == "TemplateIterator":
        from edflow_torch.iterator import TemplateIterator

        return TemplateIterator
    raise AttributeError(f"module 'edflow_torch' has no attribute '{name}'")
