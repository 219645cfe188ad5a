"""The record of how an output was made: OUT.vsrt.json, the container tag, `vsrt info`, batch links."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import make_clip
from vsrt_cli.jobs.batch import REPORT
from vsrt_cli.cli.app import main
from vsrt_cli.io.sidecar import parse_tag, read_container_tag, read_sidecar, sidecar_path
from vsrt_cli.jobs.provenance import file_sha256, fingerprint

FAST = ["--tile", "32", "--window", "3", "--window-stride", "3", "--quiet"]


def vsrt(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_upscale_writes_a_record_that_vsrt_info_reads_back(capsys, tiny_weights, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=5, size=(32, 24))
    output = tmp_path / "out.mkv"
    code, _, err = vsrt(capsys, "upscale", str(clip), "-o", str(output), "--weights", str(tiny_weights),
                        "--precision", "fp32", "--crf", "20", *FAST)
    assert code == 0, err
    record = read_sidecar(output)
    assert record is not None and sidecar_path(output) == tmp_path / "out.mkv.vsrt.json"
    assert record["model"]["sha256"] == file_sha256(tiny_weights)
    assert record["frames"] == 5 and record["bytes"] == output.stat().st_size
    assert record["options"]["window"] == 3 and record["options"]["stride"] == 3 and record["options"]["tile"] == 32
    assert record["options"]["crf"] == 20 and record["precision"] == "fp32"
    assert record["options"]["overlap"] == 8  # not given: the model's default (VSRTConfig.default_overlap)
    assert record["device"]["type"] == "cpu"
    assert record["input"] == fingerprint(clip)
    assert record["timings"]["total_s"] > 0 and record["timings"]["fps"] > 0
    assert parse_tag(record["tag"])["model"] == record["model"]["name"]

    code, text, _ = vsrt(capsys, "info", str(output), "--json")
    assert code == 0 and json.loads(text) == record  # the round trip is lossless
    code, text, _ = vsrt(capsys, "info", str(output))
    assert code == 0
    assert record["model"]["sha256"] in text and "  stride: 3" in text and record["input"]["sha256"] in text


def test_no_sidecar_writes_none_and_removes_a_stale_one(capsys, tiny_weights, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 24))
    frames = tmp_path / "frames"
    assert vsrt(capsys, "upscale", str(clip), "-o", str(frames), "--weights", str(tiny_weights), *FAST)[0] == 0
    assert sidecar_path(frames).is_file() and not (frames / "frames.vsrt.json").exists()  # beside, not inside
    assert vsrt(capsys, "upscale", str(clip), "-o", str(frames), "--weights", str(tiny_weights), *FAST,
                "--overwrite", "--no-sidecar")[0] == 0
    assert not sidecar_path(frames).exists()  # it described the replaced output
    code, _, err = vsrt(capsys, "info", str(frames))
    assert code == 1 and "no frames.vsrt.json" in err and len(err.strip().splitlines()) == 1


def test_info_falls_back_to_the_container_tag(capsys, tmp_path):
    tag = "vsrt 0.1.0 model=vsrt-cpu-small-1f sha256=0123456789abcdef window=5 stride=3"
    for name in ("tagged.mp4", "tagged.mkv"):
        path = tmp_path / name
        with av.open(str(path), "w") as container:
            container.metadata["comment"] = tag
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")))
            container.mux(stream.encode(None))
        assert read_container_tag(path) == tag
        code, text, _ = vsrt(capsys, "info", str(path))
        assert code == 0 and "vsrt-cpu-small-1f" in text and "0123456789abcdef" in text


def test_fingerprint_sees_size_and_sampled_content(tmp_path):
    big = tmp_path / "big.bin"
    data = bytearray(np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes())
    big.write_bytes(bytes(data))
    first = fingerprint(big)
    data[0] ^= 1  # the first block is always sampled
    big.write_bytes(bytes(data))
    assert fingerprint(big)["sha256"] != first["sha256"]
    big.write_bytes(bytes(data[:-1]))
    assert fingerprint(big)["bytes"] == (3 << 20) - 1


def test_batch_report_links_each_record(capsys, tiny_weights, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_clip(src / name, frames=3, size=(32, 24))
    assert vsrt(capsys, "batch", str(src), "-o", str(out), "--weights", str(tiny_weights), *FAST)[0] == 0
    rows = {row["clip"]: row for row in json.loads((out / REPORT).read_text())["clips"]}
    for name, row in rows.items():
        assert Path(row["sidecar"]) == sidecar_path(out / name)
        assert read_sidecar(out / name)["source"] == str(src / name)
    assert vsrt(capsys, "batch", str(src), "-o", str(out), "--weights", str(tiny_weights), *FAST)[0] == 0
    rows = json.loads((out / REPORT).read_text())["clips"]
    assert all(r["status"] == "skipped" and r["sidecar"] for r in rows)  # still linked when skipped


def test_the_tag_before_the_run_matches_the_record_but_for_the_frame_count(capsys, tiny_weights, tmp_path):
    from vsrt_cli.jobs.provenance import ModelId, tag_before_run

    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 24))
    output = tmp_path / "out.mp4"
    assert vsrt(capsys, "upscale", str(clip), "-o", str(output), "--weights", str(tiny_weights), *FAST)[0] == 0
    record = read_sidecar(output)
    assert record is not None
    job = _job_like(record, clip, output)
    before = tag_before_run(job, ModelId(**record["model"]))
    assert record["tag"] == before + " frames=3"


def _job_like(record, source, output):
    """The job `vsrt upscale` ran, rebuilt from its record."""
    import dataclasses

    import torch

    from vsrt_cli.io.writer import EncodeSettings
    from vsrt_cli.engine.pipeline import Schedule, UpscaleJob

    o = record["options"]
    return UpscaleJob(
        source=source, output=output, device=torch.device(o["device"]), precision=o["precision"],
        schedule=Schedule(tile=o["tile"], overlap=o["overlap"], window=o["window"], stride=o["stride"], batch=o["batch"]),
        encode=EncodeSettings(**{f.name: o[f.name] for f in dataclasses.fields(EncodeSettings)}),
        skip_bad_frames=o["skip_bad_frames"],
    )
