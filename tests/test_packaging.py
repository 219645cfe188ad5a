"""What `pip install .` ships: every subpackage, and the bundled weights with their manifest."""

from __future__ import annotations

import json
import tomllib

from tests.conftest import REPO
from vsrt_cli.zoo.download import sha256_file
from vsrt_cli.zoo.registry import MANIFEST, bundled_dir, default_name, entries


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "vsrt_cli").rglob("__init__.py")
    }
    assert found <= listed
    assert config["package-dir"]["vsrt_cli._bundled"] == "weights"


def test_bundled_weights_match_their_manifest():
    manifest = json.loads((bundled_dir() / MANIFEST).read_text())
    assert manifest["models"], "no bundled model"
    for item in manifest["models"]:
        path = bundled_dir() / item["file"]
        assert path.stat().st_size == item["bytes"] <= 16 * 1024 * 1024
        assert sha256_file(path) == item["sha256"]
        for key in ("preset", "parameters", "training", "quality", "license"):
            assert key in item
    assert default_name() == manifest["models"][0]["name"]
    assert default_name() in entries()


def test_upscale_without_a_model_uses_the_bundled_default(tmp_path):
    import subprocess
    import sys

    import numpy as np

    from vsrt_cli.io.frames import encode_png, list_frames, read_image

    frames = tmp_path / "in"
    frames.mkdir()
    yy, xx = np.mgrid[0:24, 0:32]
    for i in range(3):
        image = np.stack([(xx * 8 + i * 4) % 256, (yy * 10) % 256, ((xx + yy) * 4) % 256], -1).astype(np.uint8)
        (frames / f"{i}.png").write_bytes(encode_png(image))
    result = subprocess.run([sys.executable, "-m", "vsrt_cli", "upscale", str(frames), "-o", str(tmp_path / "out"), "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = list_frames(tmp_path / "out")
    assert len(out) == 3
    image, _, _ = read_image(out[1])
    assert image.shape == (96, 128, 3)
    # a trained model reproduces the smooth input: its downscaled output stays close to it
    source, _, _ = read_image(sorted(frames.iterdir())[1])
    small = image.reshape(24, 4, 32, 4, 3).mean(axis=(1, 3))
    assert np.abs(small - source).mean() < 12


def test_the_video_default_upscales_known_clean_input_exactly_as_its_clean_sibling():
    """The compression-aware default for video files keeps the clean model's weights whole: on a
    lossless input (quantiser 0) it computes what the clean model computes, bit for bit, and on a
    compressed one its offsets change the output. Its single-frame twin likewise."""
    import torch

    from vsrt_cli.zoo.registry import get_entry, require_path
    from vsrt_cli.zoo.weights import load_weights

    video = default_name("video")
    assert video != default_name("frames")
    pairs = [(video, default_name("frames"))]
    twin = get_entry(video).details.get("single_frame_twin")
    clean_twin = get_entry(default_name("frames")).details.get("single_frame_twin")
    if twin and clean_twin:
        pairs.append((twin, clean_twin))
    torch.manual_seed(0)
    for aware_name, clean_name in pairs:
        aware, clean = (load_weights(require_path(get_entry(n))).float().eval() for n in (aware_name, clean_name))
        assert aware.config.quant_blend
        frames = aware.config.num_frame
        x = torch.rand(1, frames, 3, 24, 32)
        with torch.no_grad():
            assert torch.equal(aware(x, quant=0.0), clean(x))
            assert (aware(x, quant=28.0) - clean(x)).abs().mean() > 1e-3
