"""Named models: a preset (architecture) plus where its weights come from.

An explicit table, no folder scanning. Unknown names raise and list the valid ones. Weights
are bundled with the package, found in the user cache after ``vsrt models download``, or given
by path (``--weights``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_cache_dir

import vsrt_cli
from vsrt_cli.errors import CheckpointError, ConfigError
from vsrt_cli.model import VSRTConfig, get_config

MANIFEST = "manifest.json"
InputKind = Literal["frames", "video"]


@dataclass(frozen=True)
class ModelEntry:
    """One named model. ``filename`` is the weights file's name (bundled or in the cache);
    ``url``/``sha256`` say where a download comes from and what it must hash to (either may be
    None: the authors' checkpoints have no reachable URL, the user gives one)."""

    name: str
    preset: str
    description: str
    filename: str | None = None
    bundled: bool = False
    official_format: bool = False
    url: str | None = None
    sha256: str | None = None
    license: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> VSRTConfig:
        return get_config(self.preset)


def bundled_dir() -> Path:
    """Where the shipped weights live: inside the installed package, or ``weights/`` of a
    source checkout."""
    package = Path(vsrt_cli.__file__).resolve().parent
    installed = package / "_bundled"
    return installed if installed.is_dir() else package.parent / "weights"


def cache_dir() -> Path:
    """Downloaded weights: ``$VSRT_CACHE_DIR`` or the platform's user cache (``~/.cache/vsrt``)."""
    override = os.environ.get("VSRT_CACHE_DIR")
    return Path(override) if override else Path(user_cache_dir("vsrt", appauthor=False)) / "weights"


def _bundled_entries() -> list[ModelEntry]:
    manifest = bundled_dir() / MANIFEST
    if not manifest.is_file():
        return []
    data = json.loads(manifest.read_text())
    return [
        ModelEntry(
            name=item["name"],
            preset=item["preset"],
            description=item["description"],
            filename=item["file"],
            bundled=True,
            sha256=item["sha256"],
            license=item.get("license", ""),
            details=item,
        )
        for item in data["models"]
    ]


_OFFICIAL = [
    ModelEntry(
        name="vsrt-reds",
        preset="vsrt-reds",
        description="the authors' REDS model (5 frames, 64x64 LR tiles); bring the checkpoint",
        filename="vsrt-reds.pth",
        official_format=True,
        license="see github.com/caojiezhang/VSR-Transformer",
    ),
    ModelEntry(
        name="vsrt-vimeo",
        preset="vsrt-vimeo",
        description="the authors' Vimeo-90K/Vid4 model (7 frames, 64x64 LR tiles); bring the checkpoint",
        filename="vsrt-vimeo.pth",
        official_format=True,
        license="see github.com/caojiezhang/VSR-Transformer",
    ),
]


def entries() -> dict[str, ModelEntry]:
    """Every named model, the bundled default first."""
    return {e.name: e for e in [*_bundled_entries(), *_OFFICIAL]}


def input_kind(source: Path) -> InputKind:
    """What a default model is chosen for: a folder of image frames, or a video file (lossy
    in nearly every case: phone clips, downloads, rips)."""
    return "frames" if Path(source).is_dir() else "video"


def default_name(kind: InputKind = "frames") -> str | None:
    """The bundled default model for ``kind`` of input (None in a build that bundles no
    weights): for video, the manifest entry that says ``"default_for": "video"`` (the
    compression-aware model) if there is one; otherwise, and for image frames, the first entry
    (the clean model the benchmarks use)."""
    bundled = _bundled_entries()
    if not bundled:
        return None
    if kind == "video":
        for entry in bundled:
            if entry.details.get("default_for") == "video":
                return entry.name
    return bundled[0].name


def get_entry(name: str) -> ModelEntry:
    table = entries()
    if name not in table:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(table)}")
    return table[name]


def local_path(entry: ModelEntry) -> Path | None:
    """The weights file on this machine, if there is one."""
    if entry.filename is None:
        return None
    path = (bundled_dir() if entry.bundled else cache_dir()) / entry.filename
    return path if path.is_file() else None


def require_path(entry: ModelEntry) -> Path:
    """Like :func:`local_path`, but explains how to get the weights when they are missing."""
    path = local_path(entry)
    if path is not None:
        return path
    if entry.bundled:
        raise CheckpointError(f"the bundled weights of {entry.name} are missing from {bundled_dir()}; reinstall vsrt")
    how = f"vsrt models download {entry.name} --url URL" if entry.url is None else f"vsrt models download {entry.name}"
    raise CheckpointError(
        f"no weights for {entry.name} on this machine; get them with `{how}` or pass --weights PATH"
    )
