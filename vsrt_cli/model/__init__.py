"""The VSRT network, its presets and the official-checkpoint loader.

Nothing in this package reads files except :func:`load_official` (given a path), and nothing
prints.
"""

from vsrt_cli.model.official import load_official, load_official_spynet
from vsrt_cli.model.spynet import SPyNet, window_flows
from vsrt_cli.model.vsrt import PRESETS, VSRT, VSRTConfig, build_model, get_config

__all__ = [
    "PRESETS",
    "SPyNet",
    "VSRT",
    "VSRTConfig",
    "build_model",
    "get_config",
    "load_official",
    "load_official_spynet",
    "window_flows",
]
