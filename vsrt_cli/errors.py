"""The one exception family of vsrt.

Every error a user can cause is a :class:`VsrtError` whose message says what failed, on which
file or value, and what to try. Only the CLI turns these into exit codes and red lines.
"""

from __future__ import annotations


class VsrtError(Exception):
    """Base class: a failure the user can act on. ``exit_code`` is what the CLI returns."""

    exit_code: int = 1


class ConfigError(VsrtError):
    """An option, preset name or combination of settings that cannot work."""

    exit_code = 2


class ModelInputError(VsrtError):
    """A tensor the model cannot take (wrong rank, channels, frame count or size)."""


class CheckpointError(VsrtError):
    """A weights file that is missing, unreadable, corrupt or for another architecture."""


class InputError(VsrtError):
    """An input path that is missing, unreadable, not a video, or holds no usable frames."""


class DecodeError(InputError):
    """A video that breaks part-way through decoding (truncated or corrupt data)."""


class OutputError(VsrtError):
    """An output that cannot be written: bad path, no encoder for it, disk full, permissions."""


class ResourceError(VsrtError):
    """Not enough memory for the work even at the smallest tiles and batches."""


class NumericError(VsrtError):
    """The model produced NaN or infinite values (an fp16 overflow, or broken weights)."""
