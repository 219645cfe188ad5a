"""Where and in which precision the model runs: device strings and autocast, nothing else."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

from vsrt_cli.errors import ConfigError

Precision = Literal["fp32", "fp16", "bf16"]
_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} asked for, but no CUDA GPU is available; use --device cpu")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {spec!r} does not exist: {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
        return device
    raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX512-BF16); elsewhere bf16 is
    emulated and slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(getattr(cpu, name)() for name in checks if hasattr(cpu, name))
    except Exception:  # private helpers: if they change, stay with fp32
        return False


def default_precision(device: torch.device) -> Precision:
    """The fastest precision that keeps quality (measured in docs/PERFORMANCE.md): bf16 on CUDA
    cards that have it (else fp16), bf16 on CPUs with native bf16, fp32 on other CPUs."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if native_bf16_cpu() else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision) -> Iterator[None]:
    """Mixed precision for the model call: ``fp32`` changes nothing; ``fp16``/``bf16`` autocast."""
    if precision == "fp32":
        yield
        return
    if precision not in _DTYPES:
        raise ConfigError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16; use --precision fp16")
    with torch.autocast(device_type=device.type, dtype=_DTYPES[precision]):
        yield
