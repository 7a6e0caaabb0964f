"""edflow-tf: the TensorFlow 2 backend of edflow.

``TemplateIterator`` and ``step_function`` are imported on first access: edcore loads this package's plugin in
every run (it is an entry point), and runs that do not use TensorFlow must not pay for importing it. Importing the
package sets TensorFlow's C++ log level (see ``edflow_tf.settings.quiet_tensorflow``), before tensorflow is imported.
"""
from typing import Any

from edflow_tf.settings import quiet_tensorflow

__all__ = ["TemplateIterator", "step_function"]

quiet_tensorflow()


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edflow_tf import iterator

        return getattr(iterator, name)
    raise AttributeError(f"module 'edflow_tf' has no attribute '{name}'")
