"""The speed benchmark's measuring parts, on a tiny model (no timing asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

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


def test_device_check_needs_only_torch_numpy_einops_and_writes_its_report(tmp_path):
    """The GPU machine has no PyAV and no platformdirs: the report must not import them, and a
    section that fails records its error while the others still run."""
    import json
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.py"
    code = BLOCK_VIDEO_IO + f"""
import runpy
sys.argv = ["device_check.py", "--out", {str(tmp_path)!r}, "--device", "cpu", "--tiny",
            "--sections", "env,oom,memory,nosuch"]
try:
    runpy.run_path({str(script)!r}, run_name="__main__")
except KeyError:
    pass  # the unknown section
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=600)
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert report["env"]["device"] == "cpu" and report["env"]["tiny"] is True
    assert report["memory"]["skipped"]
    oom = report["oom"]
    assert oom["survived"] and oom["notices"] and min(oom["final_tile"]) >= 32
    assert oom["max_abs_diff"] < 1e-5  # the backed-off output is the clean run's at its settings


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
