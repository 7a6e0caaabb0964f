"""edflow-torch: the PyTorch backend of edflow."""
from edflow_torch.iterator import TemplateIterator

__all__ = ["TemplateIterator"]
