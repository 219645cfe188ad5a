"""Named models, their weights on disk, `vsrt models ...` and `vsrt eval`."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from tests.test_download import PAYLOAD, SHA, Server
from vsrt_cli.cli.app import main
from vsrt_cli.errors import CheckpointError, ConfigError
from vsrt_cli.io.frames import encode_png
from vsrt_cli.zoo.registry import get_entry, require_path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("VSRT_CACHE_DIR", str(folder))
    return folder


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code or 0


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown model 'nope'; valid models: .*vsrt-reds, vsrt-vimeo"):
        get_entry("nope")


def test_official_models_explain_how_to_get_weights(cache):
    with pytest.raises(CheckpointError, match="vsrt models download vsrt-reds --url URL"):
        require_path(get_entry("vsrt-reds"))


def test_download_into_the_cache_then_path(cache, capsys):
    server = Server()
    try:
        assert cli("models", "download", "vsrt-reds", "--url", server.url, "--sha256", SHA, "--quiet") == 0
    finally:
        server.close()
    path = cache / "vsrt-reds.pth"
    assert path.read_bytes() == PAYLOAD
    assert (cache / "vsrt-reds.pth.sha256").read_text().strip() == SHA
    capsys.readouterr()
    assert cli("models", "path", "vsrt-reds") == 0
    assert capsys.readouterr().out.strip() == str(path)
    assert cli("models", "list") == 0
    assert "downloaded" in capsys.readouterr().out


def test_a_cached_file_that_no_longer_matches_its_hash_is_refused(cache):
    from vsrt_cli.jobs.build import load_model as _load_model

    cache.mkdir()
    (cache / "vsrt-reds.pth").write_bytes(b"tampered")
    (cache / "vsrt-reds.pth.sha256").write_text(hashlib.sha256(b"original").hexdigest())
    with pytest.raises(CheckpointError, match="corrupt or not the expected file"):
        _load_model("vsrt-reds", None)


def test_download_needs_an_address_for_official_models(cache):
    assert cli("models", "download", "vsrt-vimeo") == 2
    assert not cache.exists() or not any(cache.iterdir())


def write_clip(folder, frames):
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        (folder / f"{i:03d}.png").write_bytes(encode_png(frame))


def test_eval_scores_per_clip_and_mean(tmp_path):
    rng = np.random.default_rng(0)
    truth = [rng.integers(20, 230, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
    noisy = [np.clip(t.astype(int) + rng.choice([-4, 4], t.shape), 0, 255).astype(np.uint8) for t in truth]
    write_clip(tmp_path / "gt" / "a", truth)
    write_clip(tmp_path / "gt" / "b", truth)
    write_clip(tmp_path / "out" / "a", noisy)  # MSE 16 on RGB -> PSNR 36.09 dB
    write_clip(tmp_path / "out" / "b", truth)  # identical -> inf
    report = tmp_path / "scores.json"
    assert cli("eval", str(tmp_path / "out"), str(tmp_path / "gt"), "--json", str(report)) == 0
    scores = json.loads(report.read_text())
    a, b = scores["clips"]
    assert a["name"] == "a" and a["frames"] == 3
    assert a["psnr_rgb"] == pytest.approx(10 * math.log10(255**2 / 16), abs=1e-6)
    assert 0.8 < a["ssim_rgb"] < 1.0 and a["psnr_y"] > a["psnr_rgb"]  # luma averages the noise down
    assert b["psnr_rgb"] == math.inf and b["ssim_y"] == pytest.approx(1.0)


def test_eval_refuses_mismatched_clips(tmp_path):
    frame = np.zeros((16, 16, 3), np.uint8)
    write_clip(tmp_path / "x", [frame, frame])
    write_clip(tmp_path / "y", [frame])
    assert cli("eval", str(tmp_path / "x"), str(tmp_path / "y")) == 1
    write_clip(tmp_path / "z", [np.zeros((16, 24, 3), np.uint8)] * 2)
    assert cli("eval", str(tmp_path / "x"), str(tmp_path / "z")) == 1
    write_clip(tmp_path / "tiny", [np.zeros((8, 8, 3), np.uint8)] * 2)
    assert cli("eval", str(tmp_path / "tiny"), str(tmp_path / "tiny")) == 1


@pytest.fixture
def two_defaults(tmp_path, monkeypatch):
    """A bundled folder whose manifest holds the shipped clean model first and a copy of it
    marked ``"default_for": "video"`` second."""
    import shutil

    from vsrt_cli.zoo import registry

    shipped = registry.bundled_dir()
    manifest = json.loads((shipped / registry.MANIFEST).read_text())
    clean = manifest["models"][0]
    video = {**clean, "name": "test-video-default", "file": "test-video.pth", "default_for": "video"}
    folder = tmp_path / "bundled"
    folder.mkdir()
    shutil.copy(shipped / clean["file"], folder / clean["file"])
    shutil.copy(shipped / clean["file"], folder / video["file"])
    (folder / registry.MANIFEST).write_text(json.dumps({"models": [clean, video]}))
    monkeypatch.setattr(registry, "bundled_dir", lambda: folder)
    return clean["name"], video["name"]


def test_video_files_get_the_entry_marked_default_for_video(two_defaults, tmp_path, capsys):
    from vsrt_cli.jobs.build import load_model as _load_model
    from vsrt_cli.jobs.provenance import identify_model
    from vsrt_cli.zoo.registry import default_name, input_kind

    clean, video = two_defaults
    assert default_name() == default_name("frames") == clean  # the first entry: image frames
    assert default_name("video") == video
    clip, frames = tmp_path / "clip.mp4", tmp_path / "frames"
    clip.write_bytes(b"")
    frames.mkdir()
    assert input_kind(clip) == "video" and input_kind(frames) == "frames"
    assert identify_model(None, None, "video").name == video
    assert identify_model(None, None, "frames").name == clean
    assert identify_model(clean, None, "video").name == clean  # --model chooses as before
    assert _load_model(None, None, "video") is not None
    assert cli("models", "list") == 0
    out = capsys.readouterr().out
    assert f"default for a video file: {video}" in out
    assert f"default for a folder of image frames: {clean}" in out


def test_without_a_video_entry_both_inputs_get_the_first_model(two_defaults, monkeypatch):
    from vsrt_cli.zoo import registry

    folder = registry.bundled_dir()
    manifest = json.loads((folder / registry.MANIFEST).read_text())
    del manifest["models"][1]["default_for"]
    (folder / registry.MANIFEST).write_text(json.dumps(manifest))
    assert registry.default_name("video") == registry.default_name("frames") == two_defaults[0]


def test_upscale_of_a_video_file_records_the_video_default(two_defaults, tmp_path, capsys):
    from tests.media import make_clip

    clean, video = two_defaults
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 24))
    for args, expected in (((), video), (("--model", clean), clean)):
        out = tmp_path / f"out-{expected}.mkv"
        assert cli("upscale", str(clip), "-o", str(out), "--tile", "32", "--quiet", *args) == 0
        record = json.loads(out.with_name(out.name + ".vsrt.json").read_text())
        assert record["model"]["name"] == expected, record["model"]
