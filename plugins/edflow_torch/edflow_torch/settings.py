"""The ``torch:`` config section: its schema, defaults and device resolution."""
from __future__ import annotations

import os
from typing import Any, Mapping

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "Settings of the PyTorch backend (edflow-torch).",
    "properties": {
        "device": {"type": "string", "pattern": "^(auto|cpu|cuda|cuda:[0-9]+|mps)$",
                   "description": "auto (CUDA when available), cpu, cuda or cuda:N"},
        "amp": {"enum": ["off", "bf16", "fp16"], "description": "mixed precision with autocast (fp16 adds a GradScaler)"},
        "compile": {"type": "boolean", "description": "wrap the model with torch.compile"},
        "num_workers": {"anyOf": [{"type": "integer", "minimum": 0}, {"const": "auto"}],
                        "description": "DataLoader worker processes; auto: min(4, CPU count)"},
        "pin_memory": {"anyOf": [{"type": "boolean"}, {"const": "auto"}], "description": "auto: on with CUDA"},
        "persistent_workers": {"type": "boolean", "description": "keep workers between epochs (default true)"},
        "prefetch_factor": {"type": "integer", "minimum": 1},
        "float_dtype": {"enum": ["float32", "float64", "keep"],
                        "description": "dtype that float64 feeds are cast to (default float32)"},
        "deterministic": {"type": "boolean", "description": "torch.use_deterministic_algorithms"},
        "num_threads": {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "auto"}],
                        "description": "CPU threads of torch's operators (torch.set_num_threads); auto: torch's default"},
        "ddp": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "backend": {"enum": ["auto", "gloo", "nccl"]},
                "find_unused_parameters": {"type": "boolean"},
            },
        },
    },
}

DEFAULTS: dict[str, Any] = {
    "device": "auto",
    "amp": "off",
    "compile": False,
    "num_workers": "auto",
    "pin_memory": "auto",
    "persistent_workers": True,
    "prefetch_factor": None,
    "float_dtype": "float32",
    "deterministic": False,
    "num_threads": "auto",
    "ddp": {"backend": "auto", "find_unused_parameters": False},
}


def torch_settings(config: Mapping) -> dict[str, Any]:
    """The ``torch:`` section with defaults filled in."""
    settings = {**DEFAULTS, **(config.get("torch") or {})}
    settings["ddp"] = {**DEFAULTS["ddp"], **((config.get("torch") or {}).get("ddp") or {})}
    return settings


def resolve_device(name: str, where: str = "") -> Any:
    """``auto`` is CUDA when available (the local rank's GPU in distributed runs), else the CPU.

    ``where`` (``train.yaml:9, key 'torch/device'``) is put in front of the error for a device this machine lacks.
    """
    import torch

    from edcore.errors import ConfigError

    prefix = f"{where}: " if where else ""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{prefix}torch: {{device: {name}}} but CUDA is not available here; use device: auto "
                              f"or cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{prefix}torch: {{device: {name}}} but only {torch.cuda.device_count()} CUDA device(s) "
                              f"exist; use cuda:0 to cuda:{torch.cuda.device_count() - 1}, or auto.")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{prefix}torch: {{device: mps}} but this machine or torch build has no MPS (Apple GPU); "
                          f"use device: auto or cpu.")
    return device


def check_amp(amp: str, device: Any, where: str = "") -> None:
    """fp16 needs a GradScaler on a GPU; on the CPU autocast offers bfloat16 only."""
    from edcore.errors import ConfigError

    if amp == "fp16" and device.type == "cpu":
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}torch: {{amp: fp16}} needs a CUDA device; on the CPU use amp: bf16.")


def check_settings(settings: Mapping, where: Any) -> None:
    """Everything in the ``torch:`` section that only torch on this machine can judge; ``where(keypath)`` names
    the place of a key in the config. Raises :class:`edcore.ConfigError`."""
    device = resolve_device(settings["device"], where("torch/device"))
    check_amp(settings["amp"], device, where("torch/amp"))
    if settings["compile"] and device.type == "cpu":
        check_cpu_compiler(where("torch/compile"))
    if launched_by_torchrun() and settings["ddp"]["backend"] == "nccl":
        import torch

        from edcore.errors import ConfigError

        if not (torch.cuda.is_available() and torch.distributed.is_nccl_available()):
            raise ConfigError(f"{where('torch/ddp/backend')}: torch: {{ddp: {{backend: nccl}}}} needs CUDA and a "
                              f"torch build with NCCL, which this machine lacks; use backend: auto or gloo.")


def check_cpu_compiler(where: str) -> None:
    """torch.compile on the CPU (inductor) writes C++ and builds it; without a compiler it fails on the first step."""
    import shutil
    import sys

    from edcore.errors import ConfigError

    # inductor's own choice (torch._inductor.config.cpp.cxx): $CXX, else g++ (clang++ on macOS)
    compiler = os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")
    if shutil.which(compiler) is None:
        raise ConfigError(f"{where}: torch: {{compile: true}} on the CPU needs a C++ compiler to build the compiled "
                          f"kernels, and '{compiler}' (from $CXX, else the default) was not found here; install one "
                          f"(e.g. g++), point $CXX at it, or set compile: false.")


def launched_by_torchrun() -> bool:
    """torchrun sets RANK and WORLD_SIZE for every process it starts (read without importing torch)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def default_num_workers() -> int:
    return min(4, os.cpu_count() or 1)
