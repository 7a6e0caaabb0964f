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


def resolve_device(name: str) -> Any:
    """``auto`` is CUDA when available (the local rank's GPU in distributed runs), else the CPU."""
    import torch

    from edcore.errors import ConfigError

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"torch: {{device: {name}}} but CUDA is not available here; use device: auto or cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"torch: {{device: {name}}} but only {torch.cuda.device_count()} CUDA device(s) exist.")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return device


def launched_by_torchrun() -> bool:
    """torchrun sets RANK and WORLD_SIZE for every process it starts (read without importing torch)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def default_num_workers() -> int:
    return min(4, os.cpu_count() or 1)
