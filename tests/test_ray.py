"""Batches on Ray workers (a local Ray instance with fake GPU resources; CPU only)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.media import make_clip
from vsrt_cli import __version__
from vsrt_cli.jobs.batch import REPORT, BatchFinished, ChunkFinished, ClipFinished, ClipProgress, batch
from vsrt_cli.errors import ConfigError
from vsrt_cli.jobs.executors.ray import RayConfig, RayExecutor, check_address
from vsrt_cli.engine.pipeline import Schedule, UpscaleJob

SMALL = Schedule(tile=0, overlap=0, window=5, stride=5, batch=4)


def template(tmp_path: Path) -> UpscaleJob:
    return UpscaleJob(source=tmp_path, output=tmp_path, schedule=SMALL, device=torch.device("cpu"), precision="fp32")


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def report(path: Path) -> list[tuple]:
    rows = json.loads((path / REPORT).read_text())["clips"]
    return [(r["clip"], r["status"], r["frames"]) for r in rows]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for i, frames in enumerate((6, 9, 4)):
        make_clip(folder / f"c{i}.mp4", frames=frames, size=(32, 24))
    return folder


@pytest.fixture(scope="module")
def local_run(tiny_model, clips, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    list(batch(tiny_model, clips, out, template(out)))
    return out


def test_unreachable_address_fails_in_seconds_with_one_line():
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ConfigError, match="cannot reach") as info:
        check_address(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 5 and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        check_address("nonsense")


def test_without_ray_one_line_names_the_extra(monkeypatch):
    from vsrt_cli.jobs.executors.ray import from_flags

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    with pytest.raises(ConfigError, match=r'pip install "vsrt\[ray\]"') as info:
        from_flags(workers=2, devices=None, address=None, device="cpu")
    assert "\n" not in str(info.value)
    assert from_flags(workers=1, devices=None, address=None, device="cpu") == (None, "cpu")  # no Ray wanted, none needed


ray = pytest.importorskip("ray")


# --- devices: the driver needs none, each worker resolves its own card ---------------------------

from vsrt_cli.jobs.build import DeviceChoice  # noqa: E402
from vsrt_cli.jobs.executors import ray as ray_executor  # noqa: E402


def set_mask(monkeypatch, mask: str | None) -> None:
    """CUDA_VISIBLE_DEVICES as given (None: unset), restored after the test even where the code
    under test sets it (monkeypatch forgets a variable that was not there)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    if mask is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
    monkeypatch.delenv(ray_executor.FAKE_GPUS, raising=False)


@pytest.mark.parametrize("mask,flag,want", [
    (None, "cuda:1", "1"),
    (None, "cuda:0,cuda:3", "0,3"),
    ("2,3", "cuda:1", "3"),  # a scheduler gave this job cards 2 and 3: its cuda:1 is card 3
    ("2,3", "cuda:0,cuda:1", "2,3"),
    ("GPU-3,GPU-1", "cuda:0", "GPU-3"),  # UUIDs stay UUIDs
    ("1,3", "cuda", "1"),  # cuda alone: the first visible card
])
def test_devices_are_mapped_through_an_existing_cuda_mask(monkeypatch, fake_cuda, mask, flag, want):
    set_mask(monkeypatch, mask)
    fake_cuda(cards=[(8, 0)] * 4)
    spread, driver = ray_executor.from_flags(workers=1, devices=flag, address=None, device="auto")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == want
    assert spread.gpus == len(want.split(",")) and driver == "cpu"


@pytest.mark.parametrize("mask,flag,message", [
    ("2,3", "cuda:2", r"--devices cuda:2: cuda:2 does not exist; this process sees 2 CUDA device\(s\) \(CUDA_VISIBLE_DEVICES=2,3\): cuda:0..cuda:1"),
    (None, "cuda:0,cuda:4", r"cuda:4 does not exist; this process sees 4 CUDA device\(s\): cuda:0..cuda:3"),
    (None, "cuda:1,cuda:1", r"a device is named twice"),
])
def test_a_device_past_the_visible_count_is_one_line(monkeypatch, fake_cuda, mask, flag, message):
    set_mask(monkeypatch, mask)
    fake_cuda(cards=[(8, 0)] * 4)
    with pytest.raises(ConfigError, match=message) as info:
        ray_executor.from_flags(workers=1, devices=flag, address=None, device="auto")
    assert "\n" not in str(info.value)
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == mask  # left as it was


@pytest.mark.parametrize("cards", [[], [(8, 0), (8, 0)]], ids=["head-without-gpu", "head-with-gpus"])
def test_the_ray_driver_builds_its_job_without_a_gpu(monkeypatch, fake_cuda, tiny_weights, tmp_path, cards):
    """`--ray ADDRESS --devices all` on a head node: no GPU needed, none touched."""
    from vsrt_cli.jobs.build import build_job

    cuda = fake_cuda(cards=cards)
    monkeypatch.setattr(ray_executor, "check_address", lambda address: None)
    monkeypatch.delenv(ray_executor.FAKE_GPUS, raising=False)
    choice = DeviceChoice(precision="auto")
    spread, driver = ray_executor.from_flags(workers=1, devices="all", address="10.0.0.5:6379", device="auto", choice=choice)
    assert driver == "cpu" and spread.gpus == -1 and spread.choice == choice
    net, job = build_job(
        source=tmp_path, output=tmp_path / "out", model=None, weights=tiny_weights, device=driver, precision="auto",
        tile=None, tile_overlap=16, window=None, window_stride=None, batch=None, codec=None, crf=16, preset="medium",
        pix_fmt=None, fps="25", no_audio=True, overwrite=False, skip_bad_frames=False, quiet=True, kind="video", one_clip=False,
    )
    assert job.device == torch.device("cpu") and next(net.parameters()).device.type == "cpu"
    assert cuda.touched() == []  # no card asked for its capability or memory, none made current


class _Stub:
    """A network that stays on the CPU whatever ``.to`` says (torch here has no CUDA)."""

    def __init__(self, config) -> None:
        self.config = config

    def to(self, *args, **kwargs):
        return self

    def eval(self):
        return self


def test_each_gpu_worker_resolves_device_precision_and_tiling_for_its_own_card(monkeypatch, fake_cuda, tmp_path):
    from tests.conftest import TINY
    from vsrt_cli.engine.budget import default_tiling

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # as Ray sets it for the actor
    cuda = fake_cuda(cards=[(8, 0), (8, 0), (8, 0), (7, 5)], free=[0, 0, 0, 6 << 30])
    worker = ray_executor._Worker(_Stub(TINY), 1, "cuda", DeviceChoice())
    assert worker.device == torch.device("cuda", 0)  # with its index: configure_device can make it current
    driver = template(tmp_path)  # what the driver built (the CPU's precision and tiles)
    job = worker.job_for(driver)
    assert job.device == torch.device("cuda", 0) and job.precision == "fp16"  # a T4-class card: no bf16
    want = default_tiling(TINY, frames=5, kept=5, size=None, element_bytes=2, free_bytes=6 << 30, overlap=0)
    assert (job.schedule.tile, job.schedule.batch) == (want.tile, want.batch)
    assert ("mem_get_info", torch.device("cuda", 0)) in cuda.calls
    given = ray_executor._Worker(_Stub(TINY), 1, "cuda", DeviceChoice(precision="fp32", tile=32, batch=2)).job_for(driver)
    assert (given.precision, given.schedule.tile, given.schedule.batch) == ("fp32", 32, 2)  # flags win


PROBE = """
import sys, ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
    print("connected to", len(ray.nodes()), "node(s)")  # and could submit any code
except Exception as exc:
    print("refused", type(exc).__name__, exc)
"""


def test_the_local_instance_vsrt_starts_requires_a_token(monkeypatch, tiny_model, clips, tmp_path):
    """A driver on this machine without the run's token (and so anyone on the network) is
    refused, even where Ray's own default would leave authentication off (RAY_AUTH_MODE=disabled,
    as before Ray 2.59); the environment is given back when the batch ends."""
    assert not ray.is_initialized()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    events = batch(tiny_model, clips, tmp_path, template(tmp_path), executor=RayExecutor(RayConfig(workers=1)))
    try:
        for event in events:
            if isinstance(event, ClipProgress) or ray.is_initialized():
                break
        assert ray.is_initialized()
        address = ray.get_runtime_context().gcs_address
        stranger = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        stranger |= {"HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"}  # no ~/.ray/auth_token either
        probe = subprocess.run([sys.executable, "-c", PROBE, address], capture_output=True, text=True, timeout=120, env=stranger)
        assert probe.stdout.startswith("refused"), probe.stdout + probe.stderr[-2000:]
        joined = subprocess.run(vsrt("batch", str(clips), "-o", str(tmp_path / "elsewhere"), "--device", "cpu", "--ray", address),
                                capture_output=True, text=True, timeout=120, env=stranger)  # vsrt as that stranger
        line = joined.stderr.strip().splitlines()[-1]  # after Ray's own log of its retries
        assert joined.returncode == 2 and line.startswith("error: --ray") and "refused this driver" in line
        assert "RAY_AUTH_MODE=token" in line
        member = stranger | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.environ["RAY_AUTH_TOKEN"]}
        probe = subprocess.run([sys.executable, "-c", PROBE, address], capture_output=True, text=True, timeout=120, env=member)
        assert probe.stdout.startswith("connected"), probe.stdout + probe.stderr[-2000:]  # refused for the token alone
    finally:
        events.close()
    assert not ray.is_initialized()
    assert os.environ["RAY_AUTH_MODE"] == "disabled" and "RAY_AUTH_TOKEN" not in os.environ  # given back


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.mark.parametrize("config", [RayConfig(workers=2), RayConfig(gpus=2, fake_gpus=True)], ids=["cpu-workers", "fake-gpus"])
def test_workers_write_what_a_local_run_writes(ray_instance, tiny_model, clips, local_run, tmp_path, config):
    events = list(batch(tiny_model, clips, tmp_path, template(tmp_path), executor=RayExecutor(config)))
    assert isinstance(events[-1], BatchFinished) and events[-1].failed == 0, [r.reason for r in events[-1].results]
    assert report(tmp_path) == report(local_run)
    for name in ("c0.mp4", "c1.mp4", "c2.mp4"):
        assert all(np.array_equal(a, b) for a, b in zip(decoded(tmp_path / name), decoded(local_run / name)))
        assert len(decoded(tmp_path / name)) == len(decoded(local_run / name))
    assert any(isinstance(e, ClipProgress) for e in events)  # progress streamed back while they ran
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial
    again = list(batch(tiny_model, clips, tmp_path, template(tmp_path), executor=RayExecutor(config)))
    assert [e.result.status for e in again if isinstance(e, ClipFinished)] == ["skipped"] * 3  # the driver decides


def test_a_workers_later_clips_equal_fresh_runs_of_them(ray_instance, tmp_path):
    """Issue #29: one worker takes every clip, one after another; each output equals a fresh run
    of that clip alone (lossless, one thread on both sides). A compression-aware model is told
    each window's quantiser, which a frame-threaded decode sometimes read as 0."""
    import subprocess

    import imageio_ffmpeg

    from tests.conftest import NO_FLOW
    from vsrt_cli.model import VSRTConfig, build_model
    from vsrt_cli.io.writer import EncodeSettings

    torch.manual_seed(0)
    model = build_model(VSRTConfig(**{**NO_FLOW.__dict__, "quant_film": True, "quant_blend": True})).eval()
    with torch.no_grad():
        for delta in model.delta.values():
            delta.normal_(0, 0.05)  # an offset that matters: the told quantiser shows in the frames
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):  # H.264 whose frames carry different quantisers
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"mandelbrot=s={40 + 8 * i}x32:r=24",
                        "-t", "0.3", "-c:v", "libx264", "-crf", "10", str(src / f"m{i}.mp4")], check=True, capture_output=True)
    lossless = replace(template(tmp_path), encode=EncodeSettings(codec="ffv1", crf=0))
    torch.set_num_threads(1)  # as the worker (restored after the test)
    fresh = {}
    for clip in sorted(src.iterdir()):  # each alone, in a folder of its own: nothing ran before it
        alone = tmp_path / "alone" / clip.stem
        alone.mkdir(parents=True)
        (alone / clip.name).symlink_to(clip)
        list(batch(model, alone, tmp_path / "fresh" / clip.stem, lossless))
        fresh[clip.name] = decoded(tmp_path / "fresh" / clip.stem / clip.name)
    out = tmp_path / "ray"
    events = list(batch(model, src, out, lossless, executor=RayExecutor(RayConfig(workers=1, threads=1))))
    assert isinstance(events[-1], BatchFinished) and events[-1].failed == 0
    for name, frames in fresh.items():
        theirs = decoded(out / name)
        assert len(theirs) == len(frames) and all(np.array_equal(a, b) for a, b in zip(theirs, frames)), name


def test_chunks_of_long_clips_spread_over_workers_match_an_unchunked_run(ray_instance, tiny_model, tmp_path):
    """Cut at frames 5 and 10 (keyframes at 0, 4, 8, 12); the short clip runs whole."""
    from tests.test_batch_chunks import SECONDS, assert_same_outputs, rows
    from tests.test_batch_chunks import template as lossless
    from tests.test_chunked import clip_with_audio

    src, whole, out = tmp_path / "in", tmp_path / "whole", tmp_path / "out"
    src.mkdir()
    clip_with_audio(src / "long.mp4")
    make_clip(src / "short.mp4", frames=4, size=(32, 24))
    torch.set_num_threads(1)  # as each worker: float sums depend on the thread count (restored after the test)
    list(batch(tiny_model, src, whole, lossless(tmp_path)))
    events = list(batch(tiny_model, src, out, lossless(tmp_path), chunk_seconds=SECONDS, executor=RayExecutor(RayConfig(workers=2, threads=1))))
    assert isinstance(events[-1], BatchFinished) and events[-1].failed == 0, [r.reason for r in events[-1].results]
    assert_same_outputs(out, whole, src)
    assert rows(out) == rows(whole)
    chunks = [e for e in events if isinstance(e, ChunkFinished)]
    assert sorted(e.task.number for e in chunks) == [0, 1, 2] and not any(e.error for e in chunks)
    assert len({e.worker for e in chunks} | {""}) >= 2  # ran on Ray workers, not here
    assert sorted(p.name for p in out.rglob(".*")) == []  # chunk files and partials gone


def test_cli_refuses_a_node_with_another_vsrt_in_one_line(tmp_path, clips, tiny_weights):
    """The driver claims another vsrt version than the Ray workers import: one line, exit 2."""
    claim = "import sys, vsrt_cli; vsrt_cli.__version__ = '0.0.0-other'; from vsrt_cli.cli.app import main; main(sys.argv[1:])"
    run = subprocess.run(
        [sys.executable, "-c", claim, "batch", str(clips), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights),
         "--device", "cpu", "--workers", "2", "--no-sidecar"],
        capture_output=True, text=True, timeout=120, env=cli_env(),
    )
    assert run.returncode == 2, run.stderr
    line = run.stderr.strip()
    assert "\n" not in line and line.startswith("error: every Ray node must run vsrt 0.0.0-other and torch")
    assert f"has vsrt {__version__} / torch {torch.__version__}" in line and "install the same versions there" in line
    assert not (tmp_path / "out" / "c0.mp4").exists()


def vsrt(*args: str, env: dict | None = None) -> list[str]:
    return [sys.executable, "-m", "vsrt_cli", *args]


def cli_env(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def test_cli_unreachable_ray_address_is_one_line_in_seconds(tmp_path, clips):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    run = subprocess.run(vsrt("batch", str(clips), "-o", str(tmp_path / "out"), "--ray", f"127.0.0.1:{port}"),
                         capture_output=True, text=True, timeout=60, env=cli_env())
    assert time.monotonic() - started < 5 + 5  # the process start and imports, plus the 2 s probe
    assert run.returncode == 2 and "cannot reach" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if "vsrt-partial" in p.name]


def wait_for(condition, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    for i in range(3):
        make_clip(folder / f"l{i}.mp4", frames=90, size=(64, 48), gop=12)
    return folder


def start_batch(src: Path, out: Path, weights: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        vsrt("batch", str(src), "-o", str(out), "--weights", str(weights), "--device", "cpu", "--precision", "fp32",
             "--tile", "0", "--window", "5", "--window-stride", "5", "--quiet", *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.slow
def test_cli_worker_killed_mid_clip_is_retried(tmp_path, long_clips, tiny_weights):
    out = tmp_path / "out"
    proc = start_batch(long_clips, out, tiny_weights, "--workers", "2")
    partial = wait_for(lambda: partials(out))[0]  # .l0.vsrt-partial-HOST-PID.mp4: the worker's PID
    os.kill(int(partial.stem.rsplit("-", 1)[1].split(".")[0]), signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert [frame_count(out / f"l{i}.mp4") for i in range(3)] == [90, 90, 90]
    assert partials(out) == []
    assert json.loads((out / REPORT).read_text())["done"] == 3


@pytest.mark.slow
def test_cli_ctrl_c_cancels_every_worker(tmp_path, long_clips, tiny_weights):
    out = tmp_path / "out"
    proc = start_batch(long_clips, out, tiny_weights, "--workers", "2")
    wait_for(lambda: (out / "l0.mp4").exists() or (out / "l1.mp4").exists())  # one finished ...
    wait_for(lambda: partials(out))  # ... and one in progress
    finished = {p.name: p.read_bytes() for p in out.glob("l*.mp4")}
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - sent < 10
    assert partials(out) == []
    for name, data in finished.items():
        assert (out / name).read_bytes() == data


def test_cli_devices_on_fake_gpus_match_a_local_run(tmp_path, clips, local_run, tiny_weights):
    out = tmp_path / "out"
    run = subprocess.run(
        vsrt("batch", str(clips), "-o", str(out), "--weights", str(tiny_weights), "--precision", "fp32",
             "--tile", "0", "--window", "5", "--window-stride", "5", "--no-sidecar", "--devices", "cuda:0,cuda:1"),
        capture_output=True, text=True, timeout=300, env=cli_env(VSRT_RAY_FAKE_GPUS="2"),
    )
    assert run.returncode == 0, run.stderr
    assert report(out) == report(local_run)
    for name in ("c0.mp4", "c1.mp4", "c2.mp4"):
        assert all(np.array_equal(a, b) for a, b in zip(decoded(out / name), decoded(local_run / name)))
