"""vsrt: x4 video super-resolution with the Video Super-Resolution Transformer.

``from vsrt_cli import upscale``: the Python API (:mod:`vsrt_cli.jobs.api`), imported on first
use so that ``import vsrt_cli`` stays light (no torch, no PyAV).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("vsrt")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "upscale"]


def __getattr__(name: str) -> Any:  # PEP 562: the API loads torch only when asked for
    if name == "upscale":
        from vsrt_cli.jobs.api import upscale

        return upscale
    raise AttributeError(f"module 'vsrt_cli' has no attribute {name!r}")
