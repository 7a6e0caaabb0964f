"""The ``tf:`` config section (schema, defaults, devices) and TensorFlow's log level, set before it is imported.

Nothing here imports TensorFlow at module level: edcore loads this backend's plugin in every run.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from typing import Any, Iterator, Mapping

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "Settings of the TensorFlow backend (edflow-tf).",
    "properties": {
        "device": {"enum": ["auto", "cpu", "gpu"], "description": "where feeds and variables live; auto: a GPU when "
                                                                    "TensorFlow sees one, else the CPU"},
        "jit": {"type": "boolean", "description": "compile functions decorated with @edflow_tf.step_function "
                                                  "with tf.function (default false: eager, easier to debug)"},
        "strategy": {"enum": ["default", "mirrored", "multi_worker_mirrored"],
                     "description": "the tf.distribute strategy that step functions run under"},
        "logical_cpus": {"type": "integer", "minimum": 1,
                         "description": "split the CPU into N logical devices (e.g. to try a mirrored strategy "
                                        "without GPUs)"},
        "num_parallel_calls": {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "auto"}],
                               "description": "examples loaded in parallel by tf.data (auto: tf.data.AUTOTUNE)"},
        "prefetch": {"anyOf": [{"type": "integer", "minimum": 0}, {"const": "auto"}],
                     "description": "batches prepared ahead of the step (auto: tf.data.AUTOTUNE, 0: none)"},
        "float_dtype": {"enum": ["float32", "float64", "keep"],
                        "description": "dtype that float64 feeds are cast to (default float32)"},
        "deterministic": {"type": "boolean", "description": "tf.config.experimental.enable_op_determinism"},
    },
}

DEFAULTS: dict[str, Any] = {
    "device": "auto",
    "jit": False,
    "strategy": "default",
    "logical_cpus": None,
    "num_parallel_calls": "auto",
    "prefetch": "auto",
    "float_dtype": "float32",
    "deterministic": False,
}

#: Set by ``edflow -d`` (edcore's cli) before any plugin is loaded.
DEBUG_ENVIRONMENT = "EDFLOW_DEBUG"


def tf_settings(config: Mapping) -> dict[str, Any]:
    """The ``tf:`` section with defaults filled in."""
    return {**DEFAULTS, **(config.get("tf") or {})}


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter (oneDNN, CPU instructions, CUDA factories) off the console.

    Must run before tensorflow is imported: the C++ side reads ``TF_CPP_MIN_LOG_LEVEL`` once, and a few lines are
    logged while the libraries load, before that level applies; those are dropped by silencing the process's
    stderr during ``import tensorflow`` (errors printed there are kept). A level the user set wins; with
    ``edflow -d`` nothing is silenced.
    """
    if os.environ.get(DEBUG_ENVIRONMENT):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


# Lines like "I0000 00:00:1796106752.181170   11766 port.cc:153] oneDNN custom operations are on."
_CHATTER = re.compile(rb"^([IW]\d{4} \d\d:\d\d:|WARNING: All log messages before absl::InitializeLog)")


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once and runs its import with file descriptor 2 captured, dropping info chatter."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: and the search below must not find this finder again
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            with _captured_stderr():
                execute(module)

        spec.loader.exec_module = exec_module
        return spec


@contextlib.contextmanager
def _captured_stderr() -> Iterator[None]:
    sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True) if not _CHATTER.match(line)]
            if kept:
                os.write(2, b"".join(kept))


def quiet_python_loggers() -> None:
    """TensorFlow's and absl's Python loggers: warnings and errors only, unless ``edflow -d``."""
    if os.environ.get(DEBUG_ENVIRONMENT):
        return
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; without it there is nothing to quiet
        pass


NO_GPU = "tf: {device: gpu} but TensorFlow sees no GPU here (tensorflow-cpu, or no CUDA); use device: auto or cpu."


def check_settings(settings: Mapping, where: Any) -> None:
    """Everything in the ``tf:`` section that only TensorFlow on this machine can judge; ``where(keypath)`` names
    the place of a key in the config. Raises :class:`edcore.ConfigError`.

    Only physical devices are listed: listing logical ones would start TensorFlow's runtime, after which neither
    ``logical_cpus`` nor a MultiWorkerMirroredStrategy can be set up any more.
    """
    import tensorflow as tf

    from edcore.errors import ConfigError

    if settings["device"] == "gpu" and not tf.config.list_physical_devices("GPU"):
        raise ConfigError(f"{where('tf/device')}: {NO_GPU}")
    if settings["logical_cpus"]:
        from edflow_tf.distribute import configure_devices

        configure_devices(settings, where("tf/logical_cpus"))  # now: later it fails after the run folder exists


def resolve_device(name: str) -> str:
    """The TensorFlow device string for ``tf: {device: ...}``: ``/GPU:0`` or ``/CPU:0``."""
    import tensorflow as tf

    from edcore.errors import ConfigError

    gpus = tf.config.list_logical_devices("GPU")
    if name == "gpu" and not gpus:
        raise ConfigError(NO_GPU)
    if name == "gpu" or (name == "auto" and gpus):
        return gpus[0].name
    return tf.config.list_logical_devices("CPU")[0].name
