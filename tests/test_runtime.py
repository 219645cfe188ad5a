"""Device and precision choice."""

from __future__ import annotations

import pytest
import torch

from vsrt_cli import runtime
from vsrt_cli.errors import ConfigError


@pytest.mark.parametrize("amx,avx512_bf16,expected", [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")])
def test_cpu_default_is_bf16_only_where_the_cpu_has_it(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert runtime.default_precision(torch.device("cpu")) == expected


def test_a_failing_capability_probe_means_fp32(monkeypatch):
    def broken() -> bool:
        raise RuntimeError("no such probe")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken, raising=False)
    assert runtime.default_precision(torch.device("cpu")) == "fp32"


def test_bf16_autocast_runs_convolutions_in_bf16_and_fp32_changes_nothing():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    with runtime.autocast(torch.device("cpu"), "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with runtime.autocast(torch.device("cpu"), "fp32"):
        assert conv(x).dtype == torch.float32
    with pytest.raises(ConfigError, match="unknown precision"):
        with runtime.autocast(torch.device("cpu"), "int8"):  # type: ignore[arg-type]
            pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU is available; use --device cpu"):
        runtime.resolve_device("cuda")
