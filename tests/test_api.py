"""The Python API (vsrt_cli/jobs/api.py): ``from vsrt_cli import upscale`` runs what ``vsrt
upscale`` runs, returns the record, raises the project's errors and reports through a callback."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.media import make_clip
from tests.test_chunked import decoded
from vsrt_cli.cli.app import main
from vsrt_cli.engine.pipeline import Finished, Notice, Progress, Started
from vsrt_cli.errors import ConfigError, InputError, VsrtError

OPTIONS = ["--tile", "0", "--window", "3", "--window-stride", "3", "--crf", "0", "--preset", "ultrafast",
           "--device", "cpu", "--precision", "fp32"]


def test_importing_the_package_stays_light():
    code = "import sys, vsrt_cli; print('torch' in sys.modules, 'av' in sys.modules, callable(vsrt_cli.upscale))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False", "True"]


def test_the_api_and_the_cli_give_the_same_output(tiny_weights, tmp_path):
    from vsrt_cli import upscale

    source = make_clip(tmp_path / "in.mp4", frames=6, size=(32, 24))
    events = []
    record = upscale(source, tmp_path / "api.mp4", weights=tiny_weights, tile=0, window=3, window_stride=3, crf=0,
                     preset="ultrafast", device="cpu", precision="fp32", scale=2, resize_filter="lanczos",
                     on_event=events.append)
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", str(source), "-o", str(tmp_path / "cli.mp4"), "--weights", str(tiny_weights), *OPTIONS,
              "--scale", "2", "--resize-filter", "lanczos", "--quiet"])
    assert exit_info.value.code in (0, None)
    api, cli = decoded(tmp_path / "api.mp4"), decoded(tmp_path / "cli.mp4")
    assert len(api) == 6 and all(np.array_equal(a, b) for a, b in zip(api, cli))
    assert api[0].shape[1:] == (48, 64)  # planes of --scale 2 of 32x24
    assert record == json.loads((tmp_path / "api.mp4.vsrt.json").read_text())
    assert record["size"]["made"] == [64, 48] and record["size"]["filter"] == "lanczos" and record["frames"] == 6
    kinds = [type(e) for e in events]
    assert kinds[-1] is Finished and Progress in kinds and kinds.index(Started) < kinds.index(Progress)
    assert any(isinstance(e, Notice) and e.message.startswith("--scale 2: 64x48") for e in events)


def test_the_api_without_sidecar_still_returns_the_record(tiny_weights, tmp_path):
    from vsrt_cli import upscale

    source = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 24))
    record = upscale(source, tmp_path / "o.mkv", weights=tiny_weights, tile=0, window=3, window_stride=3,
                     device="cpu", sidecar=False, quiet=True)
    assert record["frames"] == 3 and not (tmp_path / "o.mkv.vsrt.json").exists()


@pytest.mark.parametrize("options,error", [
    ({"scale": 5}, ConfigError), ({"restore": 0.5}, ConfigError), ({"start": "soon"}, ConfigError),
    ({"resize_filter": "lanczos"}, ConfigError), ({"scale": 2, "resize_filter": "sinc"}, ConfigError),
])
def test_the_api_raises_the_projects_own_errors(tiny_weights, tmp_path, options, error):
    from vsrt_cli import upscale

    source = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 24))
    with pytest.raises(error):
        upscale(source, tmp_path / "o.mp4", weights=tiny_weights, device="cpu", **options)
    with pytest.raises(InputError):
        upscale(tmp_path / "missing.mp4", tmp_path / "o.mp4", weights=tiny_weights, device="cpu")
    assert issubclass(error, VsrtError) and not (tmp_path / "o.mp4").exists()
