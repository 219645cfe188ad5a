"""Device and precision choice."""

from __future__ import annotations

import pytest
import torch

from vsrt_cli.engine import runtime
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


@pytest.fixture
def two_gpus(fake_cuda):
    """A machine with CUDA devices 0 and 1, the current one 1 (the strict fake of torch.cuda)."""
    return fake_cuda(cards=[(8, 0), (8, 0)], current=1)


@pytest.mark.parametrize("spec,want", [("cuda", torch.device("cuda", 1)), ("cuda:0", torch.device("cuda", 0)),
                                       (" CUDA:1 ", torch.device("cuda", 1)), ("auto", torch.device("cuda", 1)),
                                       ("cpu", torch.device("cpu"))])
def test_devices_that_exist_are_resolved_with_their_index(two_gpus, spec, want):
    assert runtime.resolve_device(spec) == want


@pytest.mark.parametrize("spec,message", [
    ("cuda:2", r"device 'cuda:2' does not exist: 2 CUDA device\(s\) here \(cuda:0\.\.cuda:1\)"),
    ("cuda:x", r"unknown device 'cuda:x'; use auto, cpu, cuda or cuda:N \(N a number"),
    ("cuda:-1", r"unknown device 'cuda:-1'"),
    ("cuda:", r"unknown device 'cuda:'"),
    ("mps", r"--device mps: Apple GPUs \(MPS\) are not supported; use cpu"),
    ("xpu:0", r"unknown device 'xpu:0'; use auto, cpu, cuda or cuda:N"),
])
def test_bad_devices_are_one_line_errors(two_gpus, spec, message):
    with pytest.raises(ConfigError, match=message) as caught:
        runtime.resolve_device(spec)
    assert "\n" not in str(caught.value)


def test_a_malformed_cuda_device_is_named_even_without_a_gpu(fake_cuda):
    fake_cuda(cards=[])
    with pytest.raises(ConfigError, match=r"unknown device 'cuda:x'"):
        runtime.resolve_device("cuda:x")
    with pytest.raises(ConfigError, match=r"device 'cuda:1' asked for, but no CUDA GPU is available; use --device cpu"):
        runtime.resolve_device("cuda:1")


def test_out_of_memory_is_recognised_on_torch_before_2_5(monkeypatch):
    """torch 2.1-2.4 have only torch.cuda.OutOfMemoryError (pyproject says torch>=2.1)."""
    error = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.delattr(torch, "OutOfMemoryError", raising=False)
    assert runtime.is_out_of_memory(error)
    assert not runtime.is_out_of_memory(ValueError("out of range"))
