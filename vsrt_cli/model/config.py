"""The typed, frozen architecture of one VSRT network (:class:`VSRTConfig`) and its input rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vsrt_cli.errors import ConfigError, ModelInputError
from vsrt_cli.model.layers import encoding_channels

NormKind = Literal["tile", "channel"]
FlowKind = Literal["spynet", "dis"]


@dataclass(frozen=True, kw_only=True)
class VSRTConfig:
    """Architecture of one VSRT network. Official presets keep ``norm="tile"``.

    norm: ``"tile"`` is the official LayerNorm over ``[C, tile, tile]`` with per-element affine,
        which fixes the LR input to ``tile x tile``; ``"channel"`` normalises over C at every
        pixel, so any size that is a multiple of ``patch_size`` works.
    num_frame: window length the positional encoding is built for (the input may be shorter).
    ff_blocks: residual blocks in each direction of the feed-forward (official: 30).
    use_flow: False replaces SPyNet flows by zeros (the single-frame / no-motion ablation).
    flow: the flow estimator: ``"spynet"`` (the paper's, with weights) or ``"dis"`` (OpenCV's
        dense inverse search, no weights; see :mod:`vsrt_cli.model.dis`). Not part of the
        paper's network (official presets keep SPyNet).
    centre_first: the positional encoding's first channel goes to the window's centre frame
        (the others keep their order), so the centre frame gets the offset a single-frame
        model was trained with (official: frame ``t`` gets channel ``t``).
    neighbour_gates: the paths that carry other frames start closed, so a network warm-started
        from single-frame weights first computes exactly what they did: attention is
        ``within-frame + g * (all-frames - within-frame)`` with ``g`` a zero-initialised scalar
        per block, and each feed-forward branch reads the frame's own features as the
        single-frame network did, plus the warped neighbour through a zero-initialised conv.
        Not part of the paper's network (official presets keep it off).
    per_frame_queries: each output frame is computed by its own pass that reads the window's
        other frames as context (see :mod:`vsrt_cli.model.query`) instead of all frames being
        updated together; the same parameters, about 1/4 the work per output frame. Needs
        ``neighbour_gates``. Not part of the paper's network (official presets keep it off).
    quant_film: the network is told how hard its input was compressed (the quantiser read from
        the video's bitstream, or unknown) and modulates its features by it (see
        :mod:`vsrt_cli.model.quant`). Not part of the paper's network (official presets keep it off).
    quant_blend: every body weight has a compression offset, blended in by the quantiser: none
        for a known-clean input (which runs the clean weights exactly), more of it the coarser
        the quantiser (``blend_scale`` of :mod:`vsrt_cli.model.quant`). Not part of the paper's network.
    gated_blocks: the last ``gated_blocks`` transformer blocks add their two sub-layers through
        a zero-initialised scalar gate (``x + g * sublayer``), so a network grown by those blocks
        first computes exactly what it did without them. Not part of the paper's network.
    """

    num_feat: int = 64
    num_frame: int = 5
    depth: int = 5
    heads: int = 1
    patch_size: int = 8
    extract_blocks: int = 5
    reconstruct_blocks: int = 30
    ff_blocks: int = 30
    norm: NormKind = "tile"
    tile: int = 64
    use_flow: bool = True
    flow: FlowKind = "spynet"
    centre_first: bool = False
    neighbour_gates: bool = False
    per_frame_queries: bool = False
    quant_film: bool = False
    quant_blend: bool = False
    gated_blocks: int = 0

    def __post_init__(self) -> None:
        positive = ("num_feat", "num_frame", "depth", "heads", "patch_size", "tile")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"model config: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("extract_blocks", "reconstruct_blocks", "ff_blocks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model config: {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.gated_blocks <= self.depth:
            raise ConfigError(f"model config: gated_blocks must be in [0, depth={self.depth}], got {self.gated_blocks}")
        if self.per_frame_queries and not self.neighbour_gates:
            raise ConfigError("model config: per_frame_queries needs neighbour_gates")
        if self.flow not in ("spynet", "dis"):
            raise ConfigError(f"model config: flow must be 'spynet' or 'dis', got {self.flow!r}")
        if self.norm not in ("tile", "channel"):
            raise ConfigError(f"model config: norm must be 'tile' or 'channel', got {self.norm!r}")
        if self.num_feat % self.heads:
            raise ConfigError(
                f"model config: heads={self.heads} must divide num_feat={self.num_feat}"
            )
        if self.norm == "tile" and self.tile % self.patch_size:
            raise ConfigError(
                f"model config: tile={self.tile} must be a multiple of patch_size={self.patch_size}"
            )

    @property
    def max_frames(self) -> int:
        """Most frames one call may take (the positional encoding's channel count)."""
        return 3 * encoding_channels(self.num_frame)

    @property
    def default_overlap(self) -> int:
        """LR pixels neighbouring tiles share when a run is not told: 8, or 16 for a fixed-tile
        network (the authors' 64 px tiles, whose borders see less context). At 320x180 on the
        held-out ski and plane clips, 128 px tiles with 8 px of overlap scored +0.004 dB over 16
        for 14% fewer pixels computed (docs/PERFORMANCE.md, "The tile table")."""
        return 16 if self.norm == "tile" else 8

    def default_stride(self, window: int) -> int:
        """Frames between model calls when a run is not told: ``window - 2`` (the window's ends,
        which see one side only, are not kept), or 1 for a per-frame-query network, whose every
        frame was trained as the centre of its own window (an off-centre frame would cost a pass
        of its own anyway)."""
        return 1 if self.per_frame_queries else max(1, window - 2)

    @property
    def size_multiple(self) -> int:
        """LR height and width must be multiples of this (``norm="channel"``)."""
        return self.patch_size

    def check_input_size(self, height: int, width: int) -> None:
        """Raise :class:`ModelInputError` naming the allowed sizes if ``height x width`` is not."""
        if self.norm == "tile":
            if (height, width) != (self.tile, self.tile):
                raise ModelInputError(
                    f"this model takes LR frames of exactly {self.tile}x{self.tile} pixels "
                    f"(its LayerNorm is fixed to that size), got {height}x{width}; "
                    f"cut frames into {self.tile}x{self.tile} tiles"
                )
        elif height % self.patch_size or width % self.patch_size:
            raise ModelInputError(
                f"this model takes LR frames whose height and width are multiples of "
                f"{self.patch_size}, got {height}x{width}; pad the frame to a multiple of "
                f"{self.patch_size}"
            )
