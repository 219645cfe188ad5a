"""The CUDA path; these run wherever CUDA exists (``-m cuda``) and skip elsewhere. The capability
rules are also checked on any machine with the queries mocked."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import NO_FLOW, TINY
from vsrt_cli.engine import runtime
from vsrt_cli.errors import ConfigError
from vsrt_cli.model import build_model
from vsrt_cli.engine.schedule import plan_tiles
from vsrt_cli.engine.tiles import TileRunner

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("capability,expected", [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16"), ((6, 1), "fp16")])
def test_precision_follows_the_chosen_cards_compute_capability(monkeypatch, capability, expected):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    assert runtime.default_precision(torch.device("cuda", 1)) == expected
    assert asked == [torch.device("cuda", 1)]  # the chosen card, not GPU 0


def test_bf16_on_a_card_that_only_emulates_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(ConfigError, match=r"Tesla T4, compute capability 7.5.*use --precision fp16"):
        with runtime.autocast(torch.device("cuda", 0), "bf16"):
            pass


def test_configure_device_selects_the_card_autotunes_and_keeps_fp32_exact(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    try:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = False, True, True
        runtime.configure_device(torch.device("cuda", 1), "fp32")
        assert chosen == [torch.device("cuda", 1)]
        assert cudnn.benchmark and not cudnn.allow_tf32 and not matmul.allow_tf32
        runtime.configure_device(torch.device("cpu"), "fp32")
        assert chosen == [torch.device("cuda", 1)]  # nothing for the CPU
    finally:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = before


def test_frames_up_and_down_match_the_cpu_conversion():
    import numpy as np

    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    frame = runtime.upload_frame(image, torch.device("cpu"))
    assert frame.shape == (3, 5, 7) and torch.equal(frame, torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    assert np.array_equal(runtime.Download(frame[None], deep=False).images()[0], image)
    deep = np.random.default_rng(0).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    back = runtime.Download(runtime.upload_frame(deep, torch.device("cpu"))[None], deep=True).images()[0]
    assert back.dtype == np.uint16 and np.array_equal(back, deep)


@needs_cuda
@pytest.mark.cuda
def test_cuda_frames_round_trip_exactly():
    import numpy as np

    device = torch.device("cuda")
    for dtype, peak in ((np.uint8, 256), (np.uint16, 65536)):
        image = np.random.default_rng(0).integers(0, peak, (9, 11, 3), dtype=dtype)
        frame = runtime.upload_frame(image, device)
        assert frame.device.type == "cuda"
        torch.testing.assert_close(frame.cpu(), runtime.upload_frame(image, torch.device("cpu")), atol=0, rtol=0)
        assert np.array_equal(runtime.Download(frame[None], deep=dtype == np.uint16).images()[0], image)


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("config", [TINY, NO_FLOW], ids=["flow", "no-flow"])
def test_cuda_fp32_matches_the_cpu(config):
    torch.manual_seed(0)
    model = build_model(config).eval()
    frames = torch.rand(5, 3, 40, 72)
    grid = plan_tiles(40, 72, tile=32, overlap=8, multiple=8)
    on_cpu = TileRunner(model, grid, batch=2, device=torch.device("cpu"), precision="fp32")(frames, [1, 2, 3])
    device = torch.device("cuda")
    runtime.configure_device(device, "fp32")
    gpu_model = build_model(config).eval()
    gpu_model.load_state_dict(model.state_dict())
    on_gpu = TileRunner(gpu_model.to(device), grid, batch=2, device=device, precision="fp32")(frames.to(device), [1, 2, 3])
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=0)


@needs_cuda
@pytest.mark.cuda
def test_a_real_cuda_out_of_memory_is_survived():
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model(NO_FLOW).eval().to(device)
    frame = torch.rand(1, 3, 512, 512, device=device)
    whole = plan_tiles(512, 512, tile=0, overlap=0, multiple=8)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    TileRunner(model, whole, batch=1, device=device, precision="fp32")(frame, [0])
    need = torch.cuda.max_memory_allocated(device) - base
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction((base + need // 3) / total, device)
    try:
        runner = TileRunner(model, whole, batch=1, device=device, precision="fp32")
        out = runner(frame, [0])
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
    assert runner.notices and out.shape == (1, 3, 2048, 2048) and min(runner.grid.tile) >= 32
