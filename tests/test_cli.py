"""The console entry point: help, version, presets, and how errors reach the user."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from vsrt_cli import __version__
from vsrt_cli.cli import main


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
    assert "vsrt-reds" in text and "32,564,335" in text
    assert "vsrt-vimeo" in text and "43,845,615" in text


def test_unknown_command_is_a_usage_error():
    result = run("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_vsrt_error_becomes_one_line_without_traceback(monkeypatch, capsys):
    from vsrt_cli import cli
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
    from vsrt_cli import cli

    def interrupted(**_):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_job", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main([command, str(tmp_path), "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Aborted" not in err and "Traceback" not in err
