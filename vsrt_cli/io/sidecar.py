"""The record of how an output was made: a JSON file beside it and a short container tag.

``OUT.vsrt.json`` sits next to the output (beside a frame folder, never inside it, so the folder
still holds nothing but vsrt's frames). The container tag is one line under the ``comment`` key,
which MP4, MOV and Matroska all keep (after the input's own comment, if it had one). This module only reads and writes; what goes into the
record is :mod:`vsrt_cli.jobs.provenance`'s job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import av

from vsrt_cli.errors import InputError, OutputError
from vsrt_cli.io.metadata import OWN_LINE, own_line

SUFFIX = ".vsrt.json"
TAG_KEY = "comment"
TAG_PREFIX = OWN_LINE


def sidecar_path(output: Path) -> Path:
    """``clip.mp4`` -> ``clip.mp4.vsrt.json``; ``frames_x4/`` -> ``frames_x4.vsrt.json`` beside it."""
    output = Path(output)
    return output.with_name(output.name + SUFFIX)


def write_sidecar(output: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` beside ``output`` atomically (temporary file + rename); returns its path."""
    path = sidecar_path(output)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc}; the output itself is complete (--no-sidecar skips this record)") from exc
    return path


def read_sidecar(output: Path) -> dict[str, Any] | None:
    """The record beside ``output`` (``output`` may also be the sidecar itself); None if absent."""
    output = Path(output)
    path = output if output.name.endswith(SUFFIX) else sidecar_path(output)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable vsrt record ({exc}); delete it or upscale again") from exc
    if not isinstance(record, dict) or "vsrt" not in record:
        raise InputError(f"{path} is not a vsrt record (no 'vsrt' key)")
    return record


def read_container_tag(path: Path) -> str | None:
    """The vsrt line in a video container's metadata, or None (frame folders, other files)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            tables = [container.metadata, *(s.metadata for s in container.streams)]
            # Matroska writes tag names in capitals (COMMENT)
            values = [v for t in tables for k, v in t.items() if k.lower() == TAG_KEY]
    except av.FFmpegError:
        return None
    # the input's own comment may come first (vsrt_cli.io.metadata.container_tags)
    return next((line for line in map(own_line, values) if line is not None), None)


def parse_tag(tag: str) -> dict[str, str]:
    """``vsrt 0.1.0 model=x sha256=ab..`` -> ``{"vsrt": "0.1.0", "model": "x", ...}``."""
    words = tag.split()
    fields = {"vsrt": words[1] if len(words) > 1 else ""}
    fields.update(w.split("=", 1) for w in words[2:] if "=" in w)
    return fields
