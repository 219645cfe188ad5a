"""`vsrt batch` on inputs whose container cannot hold the output's video (.y4m, .ogv, .avi, ...):
the output gets a container that can, keeping the clip's name; `--container` chooses one."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vsrt_cli.jobs.batch import BatchFinished, batch, find_clips
from vsrt_cli.errors import ConfigError
from vsrt_cli.io.outputs import output_suffix
from vsrt_cli.io.sidecar import read_container_tag
from vsrt_cli.engine.pipeline import Schedule, UpscaleJob
from vsrt_cli.jobs.provenance import ModelId

SMALL = Schedule(tile=32, overlap=8, window=3, stride=3, batch=4)


def write_clip(path: Path, codec: str, pix_fmt: str = "yuv420p", frames: int = 3) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 24, pix_fmt
        for i in range(frames):
            image = np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("suffix,container,want", [
    (".mp4", None, ".mp4"), (".MKV", None, ".MKV"), (".webm", None, ".webm"), (".mov", None, ".mov"),
    (".y4m", None, ".mkv"), (".ogv", None, ".mkv"), (".avi", None, ".mkv"), (".mpg", None, ".mkv"),
    (".avi", "mp4", ".mp4"), (".mkv", ".webm", ".webm"), (".mp4", "MOV", ".mov"),
])
def test_output_suffix_keeps_writable_containers_and_replaces_the_others(suffix, container, want):
    assert output_suffix(suffix, container) == want


def test_an_unknown_container_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"--container avi: use one of mp4, mkv, mov, webm"):
        output_suffix(".mp4", "avi")


def test_outputs_keep_the_stem_and_never_collide(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ["a.y4m", "a.mkv", "b.ogv", "c.mp4"]:
        (src / name).write_bytes(b"")
    outputs = {c.name: c.output.name for c in find_clips(src, out)}
    assert outputs == {"a.mkv": "a.mkv", "a.y4m": "a.y4m.mkv", "b.ogv": "b.mkv", "c.mp4": "c.mp4"}
    forced = {c.name: c.output.name for c in find_clips(src, out, container="mp4")}
    assert forced == {"a.mkv": "a.mkv.mp4", "a.y4m": "a.y4m.mp4", "b.ogv": "b.mp4", "c.mp4": "c.mp4"}


def test_batch_of_y4m_and_ogv_writes_playable_outputs(tiny_model, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_clip(src / "raw.y4m", "rawvideo")
    write_clip(src / "web.ogv", "libvpx")  # VP8 in Ogg (no Theora encoder in PyAV's FFmpeg)
    job = UpscaleJob(source=src, output=out, schedule=SMALL, device=torch.device("cpu"), precision="fp32")
    events = list(batch(tiny_model, src, out, job, record=ModelId("tiny", "ab" * 32)))
    finished = events[-1]
    assert isinstance(finished, BatchFinished)
    assert [(r.clip.name, r.status, r.reason) for r in finished.results] == [("raw.y4m", "done", ""), ("web.ogv", "done", "")]
    for name in ["raw.mkv", "web.mkv"]:
        with av.open(str(out / name)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 128, 96)
            assert sum(1 for _ in container.decode(stream)) == 3
        tag = read_container_tag(out / name)  # each clip's own line, as `vsrt info` reads it
        assert tag is not None and "model=tiny sha256=abababababababab" in tag and "window=3" in tag


def test_the_cli_container_option(capsys, tiny_weights, tmp_path):
    from vsrt_cli.cli.app import main

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_clip(src / "raw.y4m", "rawvideo", frames=2)
    args = ["batch", str(src), "-o", str(out), "--weights", str(tiny_weights), "--tile", "32", "--window", "3", "--quiet"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--container", "avi"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--container avi: use one of mp4, mkv, mov, webm" in err
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--container", "mp4"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("vsrt-batch")) == ["raw.mp4", "raw.mp4.vsrt.json"]
