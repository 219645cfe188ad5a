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
def test_precision_follows_the_chosen_cards_compute_capability(fake_cuda, capability, expected):
    cuda = fake_cuda(cards=[(6, 0), capability])  # GPU 0 would say fp16 for every card
    assert runtime.default_precision(torch.device("cuda", 1)) == expected
    assert cuda.calls == [("get_device_capability", torch.device("cuda", 1))]  # the chosen card, not GPU 0


def test_bf16_on_a_card_that_only_emulates_it_is_refused(fake_cuda):
    fake_cuda(cards=[(7, 5)], names=["Tesla T4"])
    with pytest.raises(ConfigError, match=r"Tesla T4, compute capability 7.5.*use --precision fp16"):
        with runtime.autocast(torch.device("cuda", 0), "bf16"):
            pass


@pytest.fixture
def backends():
    """torch.backends' process-wide switches, given back after the test."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32)
    yield cudnn, matmul
    cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = before


def test_configure_device_makes_the_card_current_and_keeps_fp32_exact(fake_cuda, backends):
    cudnn, matmul = backends
    cuda = fake_cuda(cards=[(8, 0), (8, 0)])
    cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = False, True, True
    assert runtime.configure_device(torch.device("cuda", 1), "fp32") == torch.device("cuda", 1)
    assert cuda.current == 1 and cudnn.benchmark and not cudnn.deterministic
    assert not cudnn.allow_tf32 and not matmul.allow_tf32  # fp32 is IEEE fp32
    calls = len(cuda.calls)
    assert runtime.configure_device(torch.device("cpu"), "fp32") == torch.device("cpu")
    assert len(cuda.calls) == calls  # nothing for the CPU


def test_an_index_less_cuda_device_becomes_the_current_card(fake_cuda, backends):
    """Ray's GPU workers and device_check ask for plain ``cuda``; torch.cuda.set_device refuses it."""
    cuda = fake_cuda(cards=[(8, 0), (8, 0)], current=1)
    with pytest.raises(ValueError):
        torch.cuda.set_device(torch.device("cuda"))  # the fake is as strict as torch
    assert runtime.configure_device(torch.device("cuda"), "bf16") == torch.device("cuda", 1)
    assert cuda.current == 1
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        runtime.configure_device(torch.device("cuda", 2), "bf16")  # past the last card


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_tf32_is_allowed_under_autocast(fake_cuda, backends, precision):
    """Only --precision fp32 asks for IEEE fp32; the layers autocast keeps in fp32 may use TF32."""
    cudnn, matmul = backends
    fake_cuda(cards=[(8, 0)])
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    runtime.configure_device(torch.device("cuda", 0), precision)
    assert cudnn.allow_tf32 and matmul.allow_tf32


def test_runs_that_promise_identical_frames_use_deterministic_algorithms(fake_cuda, backends):
    cudnn, _ = backends
    fake_cuda(cards=[(8, 0)])
    runtime.configure_device(torch.device("cuda", 0), "bf16", deterministic=True)
    assert cudnn.deterministic and not cudnn.benchmark  # no per-process autotuning
    runtime.configure_device(torch.device("cuda", 0), "bf16")
    assert cudnn.benchmark and not cudnn.deterministic


def test_lossless_outputs_are_the_runs_that_promise_identical_frames(tmp_path):
    from vsrt_cli.engine.pipeline import Schedule, UpscaleJob
    from vsrt_cli.io.writer import EncodeSettings

    def job(output: str, **encode) -> UpscaleJob:
        return UpscaleJob(source=tmp_path / "in.mp4", output=tmp_path / output, schedule=Schedule(0, 0, 5, 3),
                          device=torch.device("cpu"), precision="fp32", encode=EncodeSettings(**encode))

    assert job("frames").lossless and job("o.mkv", crf=0).lossless and job("o.mkv", codec="ffv1").lossless
    assert not job("o.mp4").lossless and not job("o.mkv", codec="libx265", crf=18).lossless


def test_a_download_waits_on_the_stream_of_the_frames_card(fake_cuda):
    """The copy of frames on cuda:1 is queued on cuda:1's stream, whatever the current card."""
    cuda = fake_cuda(cards=[(8, 0), (8, 0)], current=0)
    event = runtime.copied_event(torch.device("cuda", 1))
    assert event.stream.device == torch.device("cuda", 1)
    event.synchronize()
    assert cuda.current == 0  # not switched


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
