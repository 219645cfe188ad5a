"""The console entry point: help, version, presets, and how errors reach the user."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from pathlib import Path

import numpy as np
import pytest

from tests.media import digest, make_clip
from vsrt_cli import __version__
from vsrt_cli.cli.app import main
from vsrt_cli.io.frames import encode_png


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VSRT_CACHE_DIR": tempfile.mkdtemp(prefix="vsrt-cache-")}
    return subprocess.run(
        [sys.executable, "-m", "vsrt_cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_help_and_version_as_a_module():
    result = run("--help")
    assert result.returncode == 0
    assert "super-resolution" in result.stdout
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"vsrt {__version__}"


def test_models_list_shows_official_counts(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "list"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "vsrt-reds" in text and "32.6M" in text  # 32,564,335 (`vsrt models info` has the count)
    assert "vsrt-vimeo" in text and "43.8M" in text
    assert "…" not in text  # at 80 columns nothing is cut short


def test_unknown_command_is_a_usage_error():
    result = run("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_vsrt_error_becomes_one_line_without_traceback(monkeypatch, capsys):
    from vsrt_cli.cli import app as cli
    from vsrt_cli.errors import ConfigError

    @cli.app.command("explode")
    def explode(debug: bool = False) -> None:
        raise ConfigError("bad --tile 7; valid tiles are multiples of 8")

    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["explode"])
        assert exit_info.value.code == ConfigError.exit_code
        err = capsys.readouterr().err
        assert "bad --tile 7" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        with pytest.raises(ConfigError):
            main(["explode", "--debug"])
    finally:
        cli.app.registered_commands = [c for c in cli.app.registered_commands if c.name != "explode"]


def test_upscale_errors_are_one_line_with_the_right_exit_code(tmp_path):
    missing = run("upscale", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4"))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.mp4'}: no such file or folder; check the path"]
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"x")
    no_weights = run("upscale", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "vsrt-reds")
    assert no_weights.returncode == 1 and "vsrt models download vsrt-reds" in no_weights.stderr
    unknown = run("upscale", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "nope")
    assert unknown.returncode == 2 and "valid models:" in unknown.stderr and "vsrt-reds" in unknown.stderr
    bad_device = run("upscale", str(clip), "-o", str(tmp_path / "o.mp4"), "--device", "tpu")
    assert bad_device.returncode == 2 and "unknown device 'tpu'" in bad_device.stderr
    for result in (missing, no_weights, unknown, bad_device):
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.parametrize("command", ["upscale", "batch"])
def test_an_interrupt_before_the_work_starts_still_exits_130(monkeypatch, capsys, tmp_path, command):
    from vsrt_cli.cli import app as cli

    def interrupted(**_):
        raise KeyboardInterrupt

    from vsrt_cli.jobs import build

    monkeypatch.setattr(build, "build_job", interrupted)  # upscale (through the API) and batch build here
    with pytest.raises(SystemExit) as exit_info:
        main([command, str(tmp_path), "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Aborted" not in err and "Traceback" not in err


# --- outputs that would lose data ------------------------------------------------------------


def vsrt_upscale(capsys, weights: Path, source: Path, output: Path, *extra: str) -> tuple[int, str]:
    """``vsrt upscale`` in this process (a tiny model, small tiles): ``(exit code, stderr)``."""
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", str(source), "-o", str(output), "--weights", str(weights), "--tile", "32",
              "--window", "3", "--window-stride", "1", "--quiet", *extra])
    return exit_info.value.code, capsys.readouterr().err


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with its sha256."""
    return {p.relative_to(folder).as_posix(): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_replaces_only_a_folder_of_vsrt_frames(capsys, tiny_weights, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 24))
    frames = tmp_path / "frames"
    assert vsrt_upscale(capsys, tiny_weights, clip, frames) == (0, "")
    assert vsrt_upscale(capsys, tiny_weights, clip, frames, "--overwrite") == (0, "")  # vsrt's own frames
    assert sorted(p.name for p in frames.iterdir()) == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    # no partial or old folder left; the record of the run sits beside the folder, not in it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "frames.vsrt.json", "in.mp4"]

    (frames / "keep.txt").write_text("mine")
    desktop = tmp_path / "Desktop"
    (desktop / "photos").mkdir(parents=True)
    (desktop / "notes.txt").write_text("mine too")
    (tmp_path / "empty_sub" / "sub").mkdir(parents=True)  # a subfolder is not vsrt's either
    before = tree(tmp_path)
    for output, named in [(frames, "keep.txt"), (desktop, "notes.txt"), (tmp_path / "empty_sub", "sub")]:
        code, err = vsrt_upscale(capsys, tiny_weights, clip, output, "--overwrite")
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert f"{output} holds files vsrt did not write" in err and named in err and "empty or new folder" in err
    assert tree(tmp_path) == before and (desktop / "photos").is_dir()  # nothing deleted, nothing left behind


def test_an_output_folder_holding_the_input_is_refused(capsys, tiny_weights, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    clip = make_clip(home / "in.mp4", frames=3, size=(32, 24))
    shots = tmp_path / "shots" / "s1"
    shots.mkdir(parents=True)
    (shots / "f1.png").write_bytes(encode_png(np.zeros((24, 32, 3), np.uint8)))
    before = tree(tmp_path)
    for source, output in [(clip, home), (clip, tmp_path), (shots, shots.parent), (shots, tmp_path)]:
        for extra in ([], ["--overwrite"]):
            code, err = vsrt_upscale(capsys, tiny_weights, source, output, *extra)
            assert code == 1 and len(err.strip().splitlines()) == 1, err
            assert f"the output folder {output} holds the input {source}" in err
    code, err = vsrt_upscale(capsys, tiny_weights, shots, shots, "--overwrite")
    assert code == 1 and f"the output {shots} is the input" in err
    assert tree(tmp_path) == before  # the inputs are intact and nothing was written


def test_info_reads_the_container_tag_when_the_record_is_gone(capsys, tiny_weights, tmp_path):
    import json

    from vsrt_cli.jobs.provenance import file_sha256

    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 24))
    out = tmp_path / "out.mkv"
    assert vsrt_upscale(capsys, tiny_weights, clip, out) == (0, "")
    (tmp_path / "out.mkv.vsrt.json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(out), "--json"])
    assert exit_info.value.code in (0, None)
    fields = json.loads(capsys.readouterr().out)
    assert fields["vsrt"] == __version__ and fields["model"] == "tiny"
    assert fields["sha256"] == file_sha256(tiny_weights)[:16]
    assert (fields["window"], fields["stride"], fields["tile"], fields["device"]) == ("3", "1", "32", "cpu")


def _help_text(capsys, *command: str) -> str:
    """``vsrt COMMAND --help`` with rich's box drawing and wrapping removed."""
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code in (0, None)
    text = capsys.readouterr().out.replace("│", " ")
    return " ".join(text.split())


@pytest.mark.parametrize("command", [("upscale",), ("batch",)])
def test_codec_help_lists_only_the_encoders_here_and_the_defaults(capsys, monkeypatch, command):
    from vsrt_cli.io import encoders

    monkeypatch.setattr(encoders, "encoder_choices", lambda: ["libx264", "ffv1"])
    text = _help_text(capsys, *command)
    assert "--codec" in text and "these here: libx264, ffv1 (" in text
    assert "prores_ks" not in text  # known to vsrt, but not in this (patched) PyAV
    assert "default: libx264; libvpx-vp9 for .webm; HDR input: libx265, libsvtav1 for .webm" in text
    assert "x264 names ultrafast…placebo, translated for libsvtav1 and VP9; or the encoder's own number" in text


def test_a_window_other_than_the_trained_one_is_refused_or_warned(capsys, tiny_weights, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 24))
    # 6 frames fit the positional encoding's table, but training never showed it a sixth frame
    code, err = vsrt_upscale(capsys, tiny_weights, clip, tmp_path / "six.mkv", "--window", "6", "--window-stride", "6")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--window 6: this model was trained on 5-frame windows" in err and "use --window 5 or fewer" in err
    assert not (tmp_path / "six.mkv").exists()
    # fewer frames than trained: allowed (clip ends see that anyway), with one warning line
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", str(clip), "-o", str(tmp_path / "three.mkv"), "--weights", str(tiny_weights),
              "--tile", "32", "--window", "3", "--window-stride", "3"])
    err = capsys.readouterr().err
    assert exit_info.value.code in (0, None) and (tmp_path / "three.mkv").is_file()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--window 3: this model was trained on 5-frame windows" in warnings[0]


def test_models_list_shows_the_gain_and_the_cost_users_choose_by(capsys):
    import json

    with pytest.raises(SystemExit) as exit_info:
        main(["models", "list"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    manifest = json.loads((Path(__file__).resolve().parents[1] / "weights" / "manifest.json").read_text())
    for entry in manifest["models"]:  # every bundled model has both, from the manifest
        row = next(line for line in text.splitlines() if f" {entry['name']} " in line)
        assert f"{entry['quality']['gain_over_bicubic_db']:+.2f}" in row
        assert f"x{entry['cost']['time_per_frame_vs_default']:.2f}" in row and entry["cost"]["basis"]


def test_help_lists_the_commands_by_use():
    result = run("--help")
    order = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2]
    commands = [c for c in order if c in ("upscale", "batch", "preview", "compare", "info", "eval", "models")]
    assert commands == ["upscale", "batch", "preview", "compare", "info", "eval", "models"]
