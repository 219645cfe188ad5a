"""The speed benchmark's measuring parts, on a tiny model (no timing asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import speed  # noqa: E402


def test_official_protocol_does_more_work_than_the_default_and_every_frame_comes_out(tiny_model):
    lr = np.random.default_rng(0).integers(0, 255, (7, 40, 72, 3), dtype=np.uint8)
    default, official = speed.default_schedule(tiny_model), speed.official_schedule(tiny_model)
    assert (official.tile, official.overlap, official.stride, official.batch) == (64, 32, 1, 1)
    run = speed.compute(tiny_model, lr, default)
    assert len(run["frames"]) == 7 and run["frames"][0].shape == (160, 288, 3)
    assert 0 < run["model_seconds"] <= run["seconds"]
    cheap, costly = speed.count_flops(tiny_model, lr, default), speed.count_flops(tiny_model, lr, official)
    # stride 1 runs every frame as the centre of its own 5-frame window, but with keep=positions
    # only that centre is reconstructed: 2-3x the model work of the default (was about 5x)
    assert 1.5 < costly / cheap < 5
    gt = np.repeat(np.repeat(lr, 4, axis=1), 4, axis=2)
    assert np.isfinite(speed.score(run["frames"], gt))


# --- benchmarks/device_check.py: the prepared GPU report, run on the CPU with tiny sizes ---------

BLOCK_VIDEO_IO = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("av", "platformdirs"):
            raise ImportError(f"{name} is not installed on the GPU machine")
sys.meta_path.insert(0, Block())
"""


def test_device_check_runs_end_to_end_on_the_cpu_without_video_io(tmp_path):
    """Every section, as on the GPU machine (no PyAV, no platformdirs there: the report must not
    import them), on the default video model at vsrt upscale's default tiling, each section
    within its time limit, the report written as it goes."""
    import json
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.py"
    code = BLOCK_VIDEO_IO + f"""
import runpy
sys.argv = ["device_check.py", "--out", {str(tmp_path)!r}, "--device", "cpu", "--tiny", "--limit-s", "120",
            "--sections", "env,parity,precision,flops,throughput,tiles,colour,memory,oom,nosuch"]
try:
    runpy.run_path({str(script)!r}, run_name="__main__")
except KeyError:
    pass  # the unknown section
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=900)
    report = json.loads((tmp_path / "device_check.json").read_text())
    sections = ("env", "parity", "precision", "flops", "throughput", "tiles", "colour", "memory", "oom")
    assert [name for name in report if name in sections] == list(sections)  # written after each, the unknown one last
    for name in sections:
        assert "error" not in report[name], (name, report[name].get("error"))
        assert report[name]["section_seconds"] <= report[name]["limit_s"] + 5
    assert report["env"]["device"] == "cpu" and report["env"]["default_model"] == "vsrt-cpu-small-real"
    assert report["memory"]["skipped"]
    from vsrt_cli.engine.budget import CPU_BATCH, CPU_TILE

    throughput = report["throughput"]  # what `vsrt upscale` runs on a video file here
    assert throughput["model"] == "vsrt-cpu-small-real" and throughput["qp"] > 0
    for size in ("64x36", "96x54"):
        row = throughput[size]
        assert row["lr_fps"] > 0 and row["frames"] == 6 and (row["tile"], row["batch"]) == (CPU_TILE, CPU_BATCH)
        assert row["stride"] == 1 and row["window"] == 5  # one pass per output frame, the 5-frame window
    tile_rows = report["tiles"]["s_per_frame"]  # the tile table's cost column, the whole frame included
    assert set(tile_rows) == {"32", "whole"} and all(row["s"] > 0 for row in tile_rows.values())
    assert tile_rows["whole"]["tiles"] == 1 and tile_rows["32"]["tiles"] > 1
    precision = report["precision"]["default_video_model"]
    assert precision["model"] == "vsrt-cpu-small-real" and precision["fp32"]["psnr_y"] > 20
    oom = report["oom"]
    assert oom["model"] == "vsrt-cpu-small-real" and oom["survived"] and oom["notices"] and min(oom["final_tile"]) >= 32
    assert oom["identical_to_clean_run_at_final_settings"]  # bit for bit, as on CUDA
    colour = report["colour"]  # the device's YUV maths is the CPU's
    assert colour["input_max_abs_diff_vs_cpu"] == 0 and colour["output_max_code_diff_vs_cpu"] == 0


def test_a_section_past_its_time_limit_is_stopped_and_keeps_what_it_measured(tmp_path, monkeypatch):
    import json
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import device_check

    def endless(device, tiny):
        for step in range(10**9):
            device_check.CURRENT["steps"] = step
            time.sleep(0.01)

    monkeypatch.setitem(device_check.SECTIONS, "parity", endless)
    began = time.perf_counter()
    report = device_check.main(["--out", str(tmp_path), "--device", "cpu", "--sections", "parity,env", "--limit-s", "1"])
    assert time.perf_counter() - began < 20
    stopped = report["parity"]
    assert stopped["error"].startswith("SectionTimeout: stopped at its time limit of 1 s") and stopped["steps"] > 0
    assert report["env"]["device"] == "cpu"  # the next section ran
    assert json.loads((tmp_path / "device_check.json").read_text())["parity"]["steps"] == stopped["steps"]
    budget = device_check.main(["--out", str(tmp_path), "--device", "cpu", "--sections", "parity,env", "--budget-s", "1"])
    assert budget["parity"]["limit_s"] <= 1 and budget["env"]["skipped"]  # no section runs past the budget


def test_device_check_records_a_failing_section_and_goes_on(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import device_check

    def broken(device, tiny):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setitem(device_check.SECTIONS, "parity", broken)
    report = device_check.main(["--out", str(tmp_path), "--device", "cpu", "--sections", "parity,env"])
    assert "illegal memory access" in report["parity"]["error"]
    assert report["env"]["device"] == "cpu"
    import json

    assert json.loads((tmp_path / "device_check.json").read_text())["parity"]["error"] == report["parity"]["error"]


# --- benchmarks/compression_crop.py: issue 14's picture, on a tiny synthetic clip ---------------


def test_compression_crop_writes_one_panel_per_method_and_finite_scores(capsys, tmp_path):
    import re

    import av

    import compression_crop
    from vsrt_cli.io.frames import read_image

    clip = tmp_path / "tiny.mp4"  # 64x48 GT (16x12 LR): smooth texture drifting right
    yy, xx = np.mgrid[0:48, 0:64]
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for k in range(5):
            image = np.stack([128 + 100 * np.sin((xx - 2 * k) / 5.0), 128 + 90 * np.cos(yy / 4.0),
                              128 + 80 * np.sin((xx + yy - 2 * k) / 7.0)], axis=-1).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    out = tmp_path / "crop.png"
    weights = Path(__file__).resolve().parents[1] / "weights" / "vsrt-cpu-small-1f.pth"
    scores = compression_crop.main(["-o", str(out), "--clip", str(clip), "--frames", "5", "--frame", "2",
                                    "--crop", "8x6+4+3", "--crf", "28", "--models", f"vsrt-cpu-small,{weights}",
                                    "--device", "cpu"])
    printed = capsys.readouterr().out
    assert list(scores) == ["bicubic", "vsrt-cpu-small", "vsrt-cpu-small-1f"]
    image, _, _ = read_image(out)
    assert image.shape == (24, 4 * 32, 3)  # bicubic, two models, GT: each the 8x6 LR crop at x4
    lines = re.findall(r"^  (\S+): crop (\S+) dB, whole frame (\S+) dB$", printed, re.MULTILINE)
    assert [name for name, _, _ in lines] == list(scores)
    assert all(np.isfinite(float(c)) and np.isfinite(float(f)) for _, c, f in lines)
    with pytest.raises(SystemExit):  # a training source is refused
        compression_crop.held_out_clip(str(compression_crop.TRAIN_DATA / "pexels_squirrel" / "squirrel.mp4"))


def test_compression_crop_default_region_is_the_most_detailed_on_the_codec_grid():
    import compression_crop

    truth = np.full((96, 128, 3), 90, np.uint8)  # LR 32x24: 8-pixel grid at x 0, 8, 16 and y 0, 8
    truth[32:64, 64:128:2] = 250  # stripes in LR x 16..31, y 8..15
    crop = compression_crop.busiest_crop(truth, 16, 8)
    assert (crop.width, crop.height, crop.x, crop.y) == (16, 8, 16, 8)


# --- benchmarks/codec_qp.py and blend.py: the calibrations' measuring parts ----------------------


def test_equal_distortion_qp_is_read_off_x264s_falling_curve():
    import codec_qp

    curve = [(20.0, 40.0), (30.0, 35.0), (40.0, 30.0)]
    assert codec_qp.equal_qp(curve, 37.5) == pytest.approx(25.0)
    assert codec_qp.equal_qp(curve, 31.0) == pytest.approx(38.0)


def test_a_forced_share_runs_the_clean_weights_at_zero_and_the_offsets_in_full_at_one():
    import dataclasses

    import torch

    import blend
    from tests.conftest import NO_FLOW
    from vsrt_cli.model import build_model

    torch.manual_seed(0)
    net = build_model(dataclasses.replace(NO_FLOW, quant_film=True, quant_blend=True)).eval()
    with torch.no_grad():
        for p in net.delta.values():
            p.normal_(0, 0.05)
    x = torch.rand(NO_FLOW.num_frame, 3, 16, 16)
    clean = blend.centre_prediction(net, x, quant=0.0)
    assert torch.equal(blend.forced(net, x, 0.0, 0.0), clean)
    assert torch.equal(blend.forced(net, x, 40.0, 1.0), blend.centre_prediction(net, x, quant=40.0))  # QP 40: all
    assert not torch.allclose(blend.forced(net, x, 0.0, 1.0), clean)  # the offsets, forced in at a clean input


def test_curves_compare_runs_from_where_they_part(tmp_path, capsys):
    """benchmarks/curves.py: two runs sharing their first rows are compared from the last shared
    validation, interpolated at equal steps or equal compute minutes."""
    import csv

    import curves

    def log(name, rows):
        path = tmp_path / f"{name}.csv"
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["compute_s", "step", "samples", "val_psnr_y"])
            w.writeheader()
            w.writerows(rows)
        return path

    shared = [dict(compute_s=0, step=0, samples=0, val_psnr_y=30.0), dict(compute_s=60, step=100, samples=400, val_psnr_y=31.0)]
    slow = log("slow", shared + [dict(compute_s=180, step=300, samples=1200, val_psnr_y=32.0)])
    fast = log("fast", shared + [dict(compute_s=120, step=300, samples=1200, val_psnr_y=31.5),
                                 dict(compute_s=180, step=500, samples=2000, val_psnr_y=31.8)])
    runs = {"slow": curves.read_rows(slow), "fast": curves.read_rows(fast)}
    assert curves.parting_step(runs) == 100
    by_step = curves.table(runs, by="step", since=100, metric="val_psnr_y", every=100)
    assert by_step[1:3] == [["+0", "31.0000", "31.0000"], ["+100", "31.5000", "31.2500"]]
    by_compute = curves.table(runs, by="compute", since=100, metric="val_psnr_y", every=1)
    assert by_compute[2] == ["+1", "31.5000", "31.5000"] and by_compute[3] == ["+2", "32.0000", "31.8000"]
    assert curves.throughput(runs["fast"], 100) == pytest.approx(800 / 60)
    assert curves.main([f"slow={slow}", f"fast={fast}", "--by", "compute", "--every", "1"]) == 0
    assert "fast: 13.33 samples per compute-second" in capsys.readouterr().out
