"""What vsrt may replace or delete: existing outputs and its own temporary files. One rule,
used by the video writer, the frame-folder writer, the pipeline's checks and batch.

- An output is never the input and never a folder that holds the input (with or without
  ``--overwrite``).
- An existing output is replaced only with ``--overwrite``; a folder only when everything in it
  is a file vsrt writes (``frame_000001.png`` ...). Anything else is refused, never deleted.
- Temporary outputs are hidden siblings named ``.NAME.vsrt-partial-HOST-PID[.EXT]``. A later run
  removes only those of its own host whose process is gone: on a folder shared by several
  machines, another host's PID means nothing here. Names without a host (vsrt before 0.1.0's
  release wrote ``.NAME.vsrt-partial-PID``) cannot be judged and are left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections import Counter
from pathlib import Path, PurePosixPath

from vsrt_cli.errors import ConfigError, OutputError

# Containers the writer is tested with; each holds H.264/H.265/VP9/AV1 video (see encoders.py).
# Matroska also holds any audio or subtitle codec, so it is where other inputs' outputs go.
CONTAINERS = (".mp4", ".mkv", ".mov", ".webm")
_WRITABLE = (*CONTAINERS, ".m4v")
FALLBACK_CONTAINER = ".mkv"

_FRAME = re.compile(r"frame_\d{6,}\.png")  # what frame_name() writes
_HOST_CHARS = "A-Za-z0-9_-"
_TAG = rf"(?P<host>[{_HOST_CHARS}]+)-(?P<pid>\d+)"  # host() + "-" + PID: the PID is the last part
_PARTIAL = "vsrt-partial"
_ASIDE = "vsrt-old"  # a replaced frame folder, moved aside for the moment of the swap


def frame_name(number: int) -> str:
    """The file name of output frame ``number`` (1-based) in a PNG folder."""
    return f"frame_{number:06d}.png"


def is_own_file(path: Path) -> bool:
    """Whether ``path`` is a file vsrt writes into an output folder (so may replace)."""
    return _FRAME.fullmatch(path.name) is not None and path.is_file()


def host() -> str:
    """This machine's name as it appears in temporary names (letters, digits, ``_`` and ``-``)."""
    return re.sub(f"[^{_HOST_CHARS}]", "_", socket.gethostname())[:63] or "unknown"


def _sibling(final: Path, kind: str, *, folder: bool) -> Path:
    stem, suffix = (final.name, "") if folder else (final.stem, final.suffix)
    return final.with_name(f".{stem}.{kind}-{host()}-{os.getpid()}{suffix}")


def partial_path(final: Path, *, folder: bool = False) -> Path:
    """Where this process writes ``final`` before renaming it into place: a hidden sibling,
    ``.a.vsrt-partial-HOST-PID.mp4`` for a file (the extension kept, so is the container type),
    ``.frames.vsrt-partial-HOST-PID`` for a frame folder."""
    return _sibling(final, _PARTIAL, folder=folder)


def aside_path(final: Path) -> Path:
    """Where an output folder being replaced is moved while the new one is renamed into place."""
    return _sibling(final, _ASIDE, folder=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(final: Path) -> list[Path]:
    """Remove the temporary outputs for ``final`` (video file or frame folder) that a killed run
    on this host left behind: those whose process is gone. Returns what was removed."""
    if not final.parent.is_dir():
        return []
    names = (  # partial_path() of a file, and of a folder
        re.compile(re.escape(f".{final.stem}.{_PARTIAL}-") + _TAG + re.escape(final.suffix)),
        re.compile(re.escape(f".{final.name}.{_PARTIAL}-") + _TAG),
    )
    here = host()
    removed = []
    for path in final.parent.iterdir():
        match = next((m for m in (n.fullmatch(path.name) for n in names) if m), None)
        if match is None or match["host"] != here or _alive(int(match["pid"])):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# --- the rule for existing outputs ----------------------------------------------------------------


def _same(a: Path, b: Path) -> bool:
    """Same file or folder: by path, or (both existing) by identity, which also sees hard links
    and a case-insensitive file system's other spellings."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_input(output: Path, source: Path) -> None:
    """Raise :class:`OutputError` if ``output`` is ``source`` or a folder above it."""
    if _same(output, source):
        raise OutputError(f"the output {output} is the input; choose another output path")
    above = [Path(os.path.abspath(source)).parents, source.resolve().parents]
    if any(_same(output, folder) for parents in above for folder in parents):
        raise OutputError(f"the output folder {output} holds the input {source}; choose an output outside it")


def refuse_replace(output: Path, *, overwrite: bool, folder: bool) -> None:
    """Raise :class:`OutputError` unless vsrt may write ``output`` (a PNG folder if ``folder``,
    else a video file): it does not exist, or ``overwrite`` is set and it is a file (for a video)
    or a folder holding nothing but vsrt's frames (for frames)."""
    if not (output.exists() or output.is_symlink()):
        return
    if folder and not output.is_dir():
        raise OutputError(f"{output} is a file, not a folder of frames; choose another output name")
    if not folder and output.is_dir():
        raise OutputError(f"{output} is a folder, not a video file; choose another output name")
    if not overwrite:
        raise OutputError(f"{output} already exists; pass --overwrite to replace it")
    if folder:
        foreign = sorted(p.name for p in output.iterdir() if not is_own_file(p))
        if foreign:
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise OutputError(
                f"{output} holds files vsrt did not write ({', '.join(foreign[:3])}{more}); --overwrite "
                "replaces only a folder of vsrt's frames: choose an empty or new folder"
            )


def check_output(output: Path, source: Path, *, overwrite: bool, folder: bool) -> None:
    """Refuse, before any work, an output whose writing would lose data: the input itself or a
    folder holding it, an existing output without ``overwrite``, or anything vsrt did not write."""
    refuse_input(output, source)
    refuse_replace(output, overwrite=overwrite, folder=folder)


def remove_own_output(folder: Path) -> None:
    """Delete a replaced output folder: vsrt's frame files in it, then the folder once empty.
    Anything else (it can only have appeared after the last check) stays where it is."""
    if folder.is_symlink():  # the link was the output; what it points to is not vsrt's to delete
        folder.unlink()
        return
    for path in folder.iterdir():
        if is_own_file(path):
            path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def output_suffix(suffix: str, container: str | None = None) -> str:
    """The extension of a batch output for an input named ``*suffix``: ``container`` when given
    (``mp4`` or ``.mp4``), else the input's own where the writer can produce it (``.mp4``,
    ``.mkv``, ``.mov``, ``.webm``, ``.m4v``), else ``.mkv`` (``.y4m``, ``.avi``, ``.ogv``, ``.mpg``
    ... cannot hold the default codec, or not reliably)."""
    if container is not None:
        wanted = "." + container.strip().lstrip(".").lower()
        if wanted not in CONTAINERS:
            choices = ", ".join(c[1:] for c in CONTAINERS)
            raise ConfigError(f"--container {container}: use one of {choices} (default: the input's where it can hold the video, else mkv)")
        return wanted
    return suffix if suffix.lower() in _WRITABLE else FALLBACK_CONTAINER


def output_names(names: list[str], container: str | None = None) -> dict[str, str]:
    """Relative output paths (POSIX) for input files ``names`` (relative paths): each name's stem
    with :func:`output_suffix`. Where a changed name would meet another output in the same folder
    (``a.avi`` beside ``a.mkv``), the changed one keeps its whole name (``a.avi.mkv``)."""
    wanted = {}
    for name in names:
        path = PurePosixPath(name)
        wanted[name] = path.with_suffix(output_suffix(path.suffix, container)).as_posix()
    taken = Counter(wanted.values())
    return {
        name: out if out == name or taken[out] == 1 else f"{name}{PurePosixPath(out).suffix}"
        for name, out in wanted.items()
    }
