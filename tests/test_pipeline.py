"""End to end: real clips in, 4x video out with the same frames, timestamps and audio."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.conftest import NO_FLOW, TINY, shared_path
from vsrt_cli.errors import ConfigError, InputError, OutputError
from vsrt_cli.io.frames import encode_png, list_frames, read_image
from vsrt_cli.model import build_model
from vsrt_cli.model.spynet import window_flows
from vsrt_cli.engine.pipeline import FlowCache, Finished, Progress, Schedule, Started, TileRunner, UpscaleJob, upscale
from vsrt_cli.engine.schedule import plan_tiles, plan_windows

FAST = Schedule(tile=96, overlap=8, window=5, stride=5, batch=8)


@pytest.fixture(scope="module")
def flow_model():
    torch.manual_seed(0)
    return build_model(TINY).eval()


def stream_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times = [f.pts * f.time_base for f in c.decode(v)]
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size] if c.streams.audio else []
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return {"size": (v.width, v.height), "times": times, "audio": audio, "pix_fmt": v.codec_context.pix_fmt}


def run_job(model, source: Path, output: Path, schedule: Schedule = FAST, **kw) -> list:
    job = UpscaleJob(source=source, output=output, schedule=schedule, device=torch.device("cpu"), precision="fp32", **kw)
    return list(upscale(model, job))


@pytest.mark.parametrize("clip", ["bbb_1s_320x180_h264_aac.mp4", "car_3s_384x216_h264_aac.mp4"])
def test_video_to_video_keeps_frames_timestamps_and_audio(tiny_model, tmp_path, clip):
    source = shared_path("data", "test", "derived", clip)
    out = tmp_path / "out.mp4"
    events = run_job(tiny_model, source, out)
    src, dst = stream_facts(source), stream_facts(out)
    assert dst["size"] == (src["size"][0] * 4, src["size"][1] * 4)
    assert dst["times"] == src["times"]
    assert len(dst["audio"]) > 0 and dst["audio"] == src["audio"]
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    progress = [e.done for e in events if isinstance(e, Progress)]
    assert progress == list(range(1, len(src["times"]) + 1))
    assert events[-1].frames == len(src["times"]) and events[-1].bytes == out.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary left


def test_cli_end_to_end_with_stride_one(tiny_weights, tmp_path):
    source = shared_path("data", "test", "derived", "bbb_1s_320x180_h264_aac.mp4")
    out = tmp_path / "cli.mkv"
    cmd = [sys.executable, "-m", "vsrt_cli", "upscale", str(source), "-o", str(out), "--weights", str(tiny_weights),
           "--tile", "0", "--window", "3", "--window-stride", "1", "--batch", "6", "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "done: 24 frames" in result.stderr
    facts = stream_facts(out)
    assert facts["size"] == (1280, 720) and len(facts["times"]) == 24
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        (frames / f"{i}.png").write_bytes(encode_png(np.full((16, 24, 3), 60 * i, np.uint8)))
    quiet = [sys.executable, "-m", "vsrt_cli", "upscale", str(frames), "-o", str(tmp_path / "up"),
             "--weights", str(tiny_weights), "--quiet"]
    result = subprocess.run(quiet, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == ""
    assert len(list_frames(tmp_path / "up")) == 2


def test_image_folder_in_and_out(flow_model, tmp_path):
    frames = tmp_path / "in"
    frames.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 65535, (40, 52, 3), dtype=np.uint16)
    for i in (1, 2, 10):  # natural order: 1, 2, 10
        (frames / f"f{i}.png").write_bytes(encode_png(np.roll(base, i, axis=1)))
    out = tmp_path / "out"
    run_job(flow_model, frames, out)
    written = list_frames(out)
    assert [p.name for p in written] == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    image, depth, _ = read_image(written[0])
    assert image.shape == (160, 208, 3) and depth == 16  # 16-bit in, 16-bit PNG out

    video = tmp_path / "from_frames.mp4"
    run_job(flow_model, frames, video, fps=Fraction(30000, 1001))
    facts = stream_facts(video)
    assert facts["size"] == (208, 160)
    assert facts["times"] == [Fraction(i * 1001, 30000) for i in range(3)]


class ShiftInvariant(torch.nn.Module):
    """A stand-in model: a 3x3 blur (receptive radius 1) then nearest x4. Translation-consistent."""

    def __init__(self) -> None:
        super().__init__()
        self.config = NO_FLOW

    def forward(self, x, flows=None):
        b, t = x.shape[:2]
        frames = x.flatten(0, 1)
        kernel = torch.full((3, 1, 3, 3), 1 / 9)
        blurred = torch.nn.functional.conv2d(frames, kernel, padding=1, groups=3)
        up = torch.nn.functional.interpolate(blurred, scale_factor=4, mode="nearest")
        return up.view(b, t, 3, *up.shape[-2:])


@pytest.mark.parametrize("h,w,tile,overlap", [(40, 56, 16, 8), (37, 61, 24, 8), (64, 64, 32, 16)])
def test_tiled_equals_untiled_away_from_borders(h, w, tile, overlap):
    model = ShiftInvariant()
    frames = torch.rand(3, 3, h, w)
    whole = TileRunner(model, plan_tiles(h, w, tile=0, overlap=0, multiple=8), batch=4, device=torch.device("cpu"), precision="fp32")
    tiled = TileRunner(model, plan_tiles(h, w, tile=tile, overlap=overlap, multiple=8), batch=3, device=torch.device("cpu"), precision="fp32")
    a, b = whole(frames, [0, 2]), tiled(frames, [0, 2])
    assert a.shape == b.shape == (2, 3, 4 * h, 4 * w)
    m = 4 * 2  # two LR pixels from the frame border (padding differs there)
    torch.testing.assert_close(a[..., m:-m, m:-m], b[..., m:-m, m:-m], atol=1e-5, rtol=0)


@torch.no_grad()
def test_flow_cache_gives_the_per_window_flows(flow_model):
    clip = torch.rand(7, 3, 16, 24)
    cache = FlowCache(flow_model)
    for window in plan_windows(7, 5, 1):
        frames = clip[list(window.frames)]
        cached = cache.window(frames, window.frames)
        direct = window_flows(flow_model.spynet, frames[None])
        for a, b in zip(cached, direct):  # batched differently: oneDNN's sums differ by ~1e-5
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    # 7 frames: 6 forward + 6 backward neighbour pairs and the 2 end self-pairs, plus the pairs
    # the reflected end windows form (e.g. frame 0's window [4, 3, 0, 1, 2] pairs 4 with 3)
    assert len(cache.flows) < 2 * 5 * 7  # far fewer than computing every window afresh
    cache.forget_before(3)
    assert all(ref >= 3 for ref, _ in cache.flows)


@torch.no_grad()
def test_flow_cache_computes_only_the_flows_the_model_reads(flow_model):
    """Given the positions read (a per-frame-query pass's centre), the cache computes only those
    pairs: with centred windows each real neighbour pair once, no end self-pair, half the work
    of computing every flow of every window; the unread ones are NaN, never a plausible zero."""
    clip = torch.rand(9, 3, 16, 24)
    every, some = FlowCache(flow_model), FlowCache(flow_model)
    read = ({1, 2}, {2, 3})  # to_prev at the centre and the one before, to_next at the centre and after
    for window in plan_windows(9, 5, 1):
        frames = clip[list(window.frames)]
        full = every.window(frames, window.frames)
        part = some.window(frames, window.frames, read)
        for a, b, wanted in zip(full, part, read):
            for j in range(5):
                if j in wanted:
                    torch.testing.assert_close(b[:, j], a[:, j], atol=1e-4, rtol=0)
                else:
                    assert torch.isnan(b[:, j]).all()
    assert all(ref != supp for ref, supp in some.flows)  # no end self-pair
    assert {(j, j + 1) for j in range(8)} | {(j + 1, j) for j in range(8)} <= set(some.flows)
    assert len(some.flows) < len(every.flows) * 2 / 3  # 20 of 33 here; 2 of 4 per window mid-clip


@torch.no_grad()
def test_flow_cache_ahead_computes_reverse_pairs_on_a_worker_with_the_same_flows():
    """With ``ahead``, each DIS pair computed for a window starts its reverse on a worker thread;
    the next windows find it there: fewer pairs wait on the calling thread, same flows."""
    from dataclasses import replace as changed

    net = build_model(changed(TINY, num_frame=5, flow="dis", use_flow=True, per_frame_queries=True,
                              neighbour_gates=True, centre_first=True)).eval()
    calls = []
    inner = net.dis.forward
    net.dis.forward = lambda ref, supp: calls.append(len(ref)) or inner(ref, supp)
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 24, 32, generator=g)
    clip = torch.cat([torch.roll(base, shifts=(j, 2 * j), dims=(2, 3)) for j in range(9)])  # moving content
    read = net.flows_read(5, [2])
    plain, ahead = FlowCache(net), FlowCache(net, ahead=True)
    waited = {"plain": 0, "ahead": 0}
    for window in plan_windows(9, 5, 1):
        frames = clip[list(window.frames)]
        for name, cache in (("plain", plain), ("ahead", ahead)):
            before = sum(calls)
            flows = cache.window(frames, window.frames, read)
            waited[name] += sum(calls) - before  # pairs computed on the calling thread
            if name == "plain":
                want = flows
        for a, b in zip(want, flows):
            torch.testing.assert_close(b, a, equal_nan=True, atol=0, rtol=0)
    assert waited["ahead"] < waited["plain"], waited  # 12 against 20 here
    ahead.close()
    assert ahead._pool is None and not ahead.flows


# --- refused before any work, nothing left behind ------------------------------------------------


def test_bad_schedules_are_refused_before_any_output(tiny_model, tmp_path):
    source = shared_path("data", "test", "derived", "bbb_1s_320x180_h264_aac.mp4")
    out = tmp_path / "o.mp4"
    bad = [
        (Schedule(tile=60, overlap=8, window=5, stride=5), "multiple of 8"),
        (Schedule(tile=64, overlap=64, window=5, stride=5), "below the tile size"),
        (Schedule(tile=64, overlap=8, window=9, stride=5), "1 to 6 frames"),
        (Schedule(tile=64, overlap=8, window=4, stride=1), "odd window"),
        (Schedule(tile=64, overlap=8, window=5, stride=6), "must be 1 to 5"),
    ]
    for schedule, message in bad:
        with pytest.raises(ConfigError, match=message):
            run_job(tiny_model, source, out, schedule)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make,error,message",
    [
        (lambda d: d / "missing.mp4", InputError, "no such file"),
        (lambda d: (d / "empty").mkdir() or d / "empty", InputError, "holds no PNG or JPEG"),
        (lambda d: (d / "text.mp4").write_text("hello") and d / "text.mp4", InputError, "cannot be opened as a video"),
        (lambda d: (d / "zero.mp4").write_bytes(b"") or d / "zero.mp4", InputError, "empty"),
    ],
)
def test_bad_inputs_get_one_clear_error(tiny_model, tmp_path, make, error, message):
    source = make(tmp_path)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(error, match=message):
        run_job(tiny_model, source, tmp_path / "out.mp4")
    assert sorted(tmp_path.iterdir()) == before


def test_audio_only_file_is_refused(tiny_model, tmp_path):
    audio = tmp_path / "tone.m4a"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in s.encode(frame):
            c.mux(packet)
        c.mux(s.encode(None))
    with pytest.raises(InputError, match="no video stream"):
        run_job(tiny_model, audio, tmp_path / "out.mp4")


def test_outputs_that_would_lose_data_are_refused(tiny_model, tmp_path):
    source = shared_path("data", "test", "derived", "bbb_1s_320x180_h264_aac.mp4")
    with pytest.raises(OutputError, match="is the input"):
        run_job(tiny_model, source, source, overwrite=True)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        run_job(tiny_model, source, existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(OutputError, match="cannot create"):
        run_job(tiny_model, source, tmp_path / "out.xyz")
    with pytest.raises(OutputError, match="does not exist"):
        run_job(tiny_model, source, tmp_path / "nope" / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.mp4"]


def test_ctrl_c_removes_the_partial_output(tiny_weights, tmp_path):
    import signal
    import time

    source = shared_path("data", "test", "derived", "car_3s_384x216_h264_aac.mp4")
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "vsrt_cli", "upscale", str(source), "-o", str(out), "--weights",
           str(tiny_weights), "--window", "3", "--window-stride", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.vsrt-partial-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.vsrt-partial-*")), "the temporary output never appeared"
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 10
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_source_is_probed_once_and_its_colour_and_aspect_reach_the_writer(tiny_model, tmp_path, monkeypatch):
    from tests.media import make_clip
    from vsrt_cli.io import writer as writer_module

    source = make_clip(tmp_path / "in.mp4", frames=2)
    seen = {}
    real = writer_module.VideoWriter.__init__

    def spy(self, path, **kw):
        seen.update(kw)
        real(self, path, **kw)

    def no_second_probe(path):
        raise AssertionError("the writer probed the source again")

    monkeypatch.setattr(writer_module.VideoWriter, "__init__", spy)
    monkeypatch.setattr(writer_module, "probe", no_second_probe)
    events = run_job(tiny_model, source, tmp_path / "out.mkv", metadata={"comment": "vsrt test"})
    assert isinstance(events[-1], Finished) and events[-1].frames == 2
    from vsrt_cli.io.probe import probe

    info = probe(source)
    assert seen["colour"] == info.colour and seen["sample_aspect"] == info.sample_aspect
    assert seen["metadata"] == {"comment": "vsrt test"}


def test_png_frames_of_hdr_input_are_refused_before_any_work(tiny_model, tmp_path):
    from tests.io.test_colour import hdr10_clip

    source = hdr10_clip(tmp_path / "hdr10.mkv", frames=1)
    with pytest.raises(OutputError, match=r"hdr10.mkv is HDR \(PQ, BT.2020\); PNG frames .* write a video") as caught:
        run_job(tiny_model, source, tmp_path / "frames_x4")
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hdr10.mkv"]
