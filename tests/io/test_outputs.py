"""What vsrt may replace or delete: the output rule, host-aware temporary names, and the
frame-folder writer that applies them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vsrt_cli.errors import OutputError
from vsrt_cli.io.frames import FolderWriter
from vsrt_cli.io.outputs import (
    check_output, frame_name, host, partial_path, refuse_input, refuse_replace, remove_stale_partials,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_partial_names_carry_a_sanitised_host_and_the_pid(monkeypatch, tmp_path):
    monkeypatch.setattr(socket, "gethostname", lambda: "render.farm (2)")
    assert host() == "render_farm__2_"
    pid = os.getpid()
    assert partial_path(tmp_path / "a.mp4").name == f".a.vsrt-partial-render_farm__2_-{pid}.mp4"
    assert partial_path(tmp_path / "take.01", folder=True).name == f".take.01.vsrt-partial-render_farm__2_-{pid}"
    monkeypatch.setattr(socket, "gethostname", lambda: "")
    assert host() == "unknown"


def test_stale_partials_are_judged_only_on_their_own_host(monkeypatch, tmp_path):
    monkeypatch.setattr(socket, "gethostname", lambda: "node-1")
    dead = dead_pid()
    gone = [
        touch(tmp_path / f".a.vsrt-partial-node-1-{dead}.mp4"),
        touch(tmp_path / f".a.mp4.vsrt-partial-node-1-{dead}" / frame_name(1)).parent,  # a folder output
    ]
    kept = [
        touch(tmp_path / f".a.vsrt-partial-node-1-{os.getppid()}.mp4"),  # still running
        touch(tmp_path / f".a.vsrt-partial-node-12-{dead}.mp4"),  # a host whose name extends ours
        touch(tmp_path / f".a.vsrt-partial-node-{dead}.mp4"),  # host "node"
        touch(tmp_path / f".a.vsrt-partial-{dead}.mp4"),  # no host: an older vsrt's name
        touch(tmp_path / f".b.vsrt-partial-node-1-{dead}.mp4"),  # another output's
        touch(tmp_path / f".a.vsrt-old-node-1-{dead}" / frame_name(1)).parent,  # a previous output
        touch(tmp_path / "a.mp4"),
    ]
    assert sorted(remove_stale_partials(tmp_path / "a.mp4")) == sorted(gone)
    assert not any(p.exists() for p in gone) and all(p.exists() for p in kept)
    assert remove_stale_partials(tmp_path / "missing" / "a.mp4") == []


def test_a_folder_is_replaced_only_when_it_holds_just_vsrt_frames(tmp_path):
    out = tmp_path / "out"
    refuse_replace(out, overwrite=False, folder=True)  # nothing there
    touch(out / frame_name(1))
    touch(out / frame_name(1234567))  # past a million frames the number grows
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        refuse_replace(out, overwrite=False, folder=True)
    refuse_replace(out, overwrite=True, folder=True)
    for name in ["keep.txt", "frame_1.png", "frame_000001.PNG", "frame_000001.png.bak", ".DS_Store"]:
        stranger = touch(out / name)
        with pytest.raises(OutputError, match=rf"{out} holds files vsrt did not write \({name}\).*empty or new folder"):
            refuse_replace(out, overwrite=True, folder=True)
        stranger.unlink()
    (out / "frame_000002.png").mkdir()  # a folder is never vsrt's, whatever its name
    with pytest.raises(OutputError, match=r"did not write \(frame_000002.png\)"):
        refuse_replace(out, overwrite=True, folder=True)
    for i in range(5):
        touch(out / f"x{i}")
    with pytest.raises(OutputError, match=r"\(frame_000002.png, x0, x1 and 3 more\)"):
        refuse_replace(out, overwrite=True, folder=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    refuse_replace(empty, overwrite=True, folder=True)


def test_files_and_folders_are_not_mistaken_for_each_other(tmp_path):
    video, folder = touch(tmp_path / "a.mp4"), tmp_path / "frames"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder, not a video file"):
        refuse_replace(folder, overwrite=True, folder=False)
    with pytest.raises(OutputError, match="is a file, not a folder of frames"):
        refuse_replace(video, overwrite=True, folder=True)
    refuse_replace(video, overwrite=True, folder=False)
    with pytest.raises(OutputError, match="--overwrite"):
        refuse_replace(video, overwrite=False, folder=False)


def test_the_input_and_every_folder_above_it_are_refused(tmp_path, monkeypatch):
    clip = touch(tmp_path / "home" / "clips" / "in.mp4")
    with pytest.raises(OutputError, match="is the input"):
        refuse_input(clip, clip)
    with pytest.raises(OutputError, match="is the input"):
        refuse_input(tmp_path / "home" / ".." / "home" / "clips" / "in.mp4", clip)
    os.link(clip, tmp_path / "hard.mp4")
    with pytest.raises(OutputError, match="is the input"):
        refuse_input(tmp_path / "hard.mp4", clip)
    for above in (clip.parent, tmp_path / "home", tmp_path, Path("/")):
        with pytest.raises(OutputError, match=f"the output folder {above} holds the input {clip}; choose an output outside it"):
            check_output(above, clip, overwrite=True, folder=True)
    (tmp_path / "link").symlink_to(tmp_path / "home")
    with pytest.raises(OutputError, match="holds the input"):
        refuse_input(tmp_path / "link", clip)
    monkeypatch.chdir(tmp_path / "home")
    with pytest.raises(OutputError, match="holds the input"):
        refuse_input(Path("."), Path("clips/in.mp4"))
    refuse_input(clip.parent / "sub", clip.parent)  # inside the input folder: allowed
    refuse_input(tmp_path / "home" / "in.mp4", clip)  # a sibling file of the same name
    with pytest.raises(OutputError, match="holds files vsrt did not write"):  # ... but not replaced
        check_output(tmp_path / "home", tmp_path / "elsewhere.mp4", overwrite=True, folder=True)


# --- the frame-folder writer ------------------------------------------------------------------


def write_frames(folder: Path, n: int, *, overwrite: bool, during=None) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    with FolderWriter(folder, overwrite=overwrite) as writer:
        for _ in range(n):
            writer.write(image)
        if during is not None:
            during()


def test_overwrite_swaps_a_frame_folder_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    write_frames(out, 3, overwrite=False)
    write_frames(out, 2, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [frame_name(1), frame_name(2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_that_appears_while_frames_are_computed_is_never_deleted(tmp_path):
    out = tmp_path / "out"
    write_frames(out, 2, overwrite=False)
    with pytest.raises(OutputError, match=r"did not write \(keep.txt\)"):
        write_frames(out, 3, overwrite=True, during=lambda: touch(out / "keep.txt", b"mine"))
    assert sorted(p.name for p in out.iterdir()) == [frame_name(1), frame_name(2), "keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the partial was removed
    fresh = tmp_path / "fresh"
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        write_frames(fresh, 1, overwrite=False, during=lambda: touch(fresh / "keep.txt", b"mine"))
    assert sorted(p.name for p in fresh.iterdir()) == ["keep.txt"]


def test_a_symlinked_output_folder_is_replaced_by_a_folder_not_emptied(tmp_path):
    target = tmp_path / "target"
    write_frames(target, 2, overwrite=False)
    link = tmp_path / "link"
    link.symlink_to(target)
    write_frames(link, 1, overwrite=True)
    assert not link.is_symlink() and [p.name for p in link.iterdir()] == [frame_name(1)]
    assert sorted(p.name for p in target.iterdir()) == [frame_name(1), frame_name(2)]  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]



def test_a_video_that_appears_while_frames_are_computed_is_kept_without_overwrite(tmp_path):
    from fractions import Fraction

    from vsrt_cli.io.writer import EncodeSettings, VideoWriter

    out = tmp_path / "out.mkv"
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        with VideoWriter(out, width=16, height=16, time_base=Fraction(1, 25), rate=Fraction(25), bit_depth=8,
                         settings=EncodeSettings(codec="ffv1")) as writer:
            writer.write(np.zeros((16, 16, 3), np.uint8), 0)
            touch(out, b"mine")
    assert out.read_bytes() == b"mine" and sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_the_writer_puts_metadata_in_the_container_header(tmp_path, suffix):
    from fractions import Fraction

    from vsrt_cli.io.sidecar import read_container_tag
    from vsrt_cli.io.writer import EncodeSettings, VideoWriter

    out = tmp_path / f"tagged{suffix}"
    tag = "vsrt 0.1.0 model=x sha256=0123 window=5"
    with VideoWriter(out, width=32, height=16, time_base=Fraction(1, 25), rate=Fraction(25), bit_depth=8,
                     settings=EncodeSettings(preset="ultrafast"), metadata={"comment": tag}) as writer:
        writer.write(np.zeros((16, 32, 3), np.uint8), 0)
    assert read_container_tag(out) == tag
