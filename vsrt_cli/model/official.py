"""The authors' checkpoints: official key names <-> vsrt module names, in this one place.

The official code (caojiezhang/VSR-Transformer) names its modules after its wrappers
(``transformer.layers.L.0.fn.fn.to_q``); vsrt keeps readable names (``blocks.L.attn.q``).
:data:`KEY_RULES` pairs the two; :func:`load_official` reads a checkpoint (a file or a state
dict, bare or wrapped as BasicSR saves it), maps it, checks it and loads it strictly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import torch

from vsrt_cli.errors import CheckpointError, ConfigError
from vsrt_cli.model.layers import encoding_frequencies
from vsrt_cli.model.spynet import IMAGENET_MEAN, IMAGENET_STD, SPyNet
from vsrt_cli.model.vsrt import VSRT, VSRTConfig

# (official name, vsrt name). {L} {i} {K} {n} stand for integers, {p} for weight/bias.
_BRANCHES = (("backward_resblocks", "from_next"), ("forward_resblocks", "from_prev"))
KEY_RULES: tuple[tuple[str, str], ...] = (
    ("conv_first.{p}", "stem.{p}"),
    ("feature_extraction.{i}.conv{n}.{p}", "extract.{i}.conv{n}.{p}"),
    ("spynet.spynet.basic_module.{L}.basic_module.{K}.conv.{p}", "spynet.levels.{L}.convs.{K}.{p}"),
    ("transformer.layers.{L}.0.fn.norm.{p}", "blocks.{L}.attn_norm.{p}"),
    ("transformer.layers.{L}.0.fn.fn.to_q.{p}", "blocks.{L}.attn.q.{p}"),
    ("transformer.layers.{L}.0.fn.fn.to_k.{p}", "blocks.{L}.attn.k.{p}"),
    ("transformer.layers.{L}.0.fn.fn.to_v.{p}", "blocks.{L}.attn.v.{p}"),
    ("transformer.layers.{L}.0.fn.fn.conv.{p}", "blocks.{L}.attn.proj.{p}"),
    ("transformer.layers.{L}.1.fn.norm.{p}", "blocks.{L}.ff_norm.{p}"),
    *(
        rule
        for official, ours in _BRANCHES
        for rule in (
            (f"transformer.layers.{{L}}.1.fn.fn.{official}.main.0.{{p}}", f"blocks.{{L}}.ff.{ours}.conv_in.{{p}}"),
            (
                f"transformer.layers.{{L}}.1.fn.fn.{official}.main.2.{{i}}.conv{{n}}.{{p}}",
                f"blocks.{{L}}.ff.{ours}.blocks.{{i}}.conv{{n}}.{{p}}",
            ),
        )
    ),
    ("transformer.layers.{L}.1.fn.fn.fusion.{p}", "blocks.{L}.ff.fuse.{p}"),
    ("reconstruction.{i}.conv{n}.{p}", "reconstruct.{i}.conv{n}.{p}"),
    ("upconv1.{p}", "upsample1.{p}"),
    ("upconv2.{p}", "upsample2.{p}"),
    ("conv_hr.{p}", "conv_hr.{p}"),
    ("conv_last.{p}", "conv_out.{p}"),
)

# Official buffers that vsrt derives instead of storing: checked against their value, then consumed.
SPYNET_MEAN_KEY = "spynet.spynet.mean"
SPYNET_STD_KEY = "spynet.spynet.std"
INV_FREQ_KEY = "pos_embedding.penc.inv_freq"

# The official constructor's argument names and the vsrt config field each one sets.
OFFICIAL_KWARGS = {
    "image_ch": None,
    "num_feat": "num_feat",
    "feat_size": "tile",
    "num_frame": "num_frame",
    "num_extract_block": "extract_blocks",
    "num_reconstruct_block": "reconstruct_blocks",
    "depth": "depth",
    "heads": "heads",
    "patch_size": "patch_size",
    "spynet_pretrained": None,
}

_SLOTS = {"L": r"(?P<L>\d+)", "i": r"(?P<i>\d+)", "K": r"(?P<K>\d+)", "n": r"(?P<n>\d+)", "p": r"(?P<p>weight|bias)"}


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for slot, regex in _SLOTS.items():
        pattern = pattern.replace(re.escape("{" + slot + "}"), regex)
    return re.compile(pattern + r"\Z")


_FORWARD = tuple((_compile(official), ours) for official, ours in KEY_RULES)
_BACKWARD = tuple((_compile(ours), official) for official, ours in KEY_RULES)


def _rename(name: str, rules: tuple[tuple[re.Pattern[str], str], ...]) -> str | None:
    for pattern, template in rules:
        match = pattern.match(name)
        if match:
            return template.format(**match.groupdict())
    return None


def to_vsrt_name(official: str) -> str | None:
    """The vsrt parameter name for an official one (None if it names no parameter)."""
    return _rename(official, _FORWARD)


def to_official_name(ours: str) -> str | None:
    """The official name for a vsrt parameter name (None if the official model has none)."""
    return _rename(ours, _BACKWARD)


def _summarise(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return f"{len(names)} ({shown}{', ...' if len(names) > limit else ''})"


def read_checkpoint(checkpoint: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A bare state dict from a path or a mapping, unwrapping BasicSR's ``params``/``params_ema``."""
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        if not os.path.isfile(path):
            raise CheckpointError(f"weights file not found: {path}; check the path")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise CheckpointError(
                f"cannot read weights file {path}: {str(exc).splitlines()[0]}; "
                "it must be a PyTorch state dict (.pth) holding only tensors"
            ) from exc
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"a checkpoint must be a state dict, got {type(checkpoint).__name__}")
    for wrapper in ("params", "params_ema", "state_dict"):
        if wrapper in checkpoint and isinstance(checkpoint[wrapper], Mapping):
            checkpoint = checkpoint[wrapper]
            break
    state = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint entries that are not tensors: {_summarise(bad)}")
    return state


def infer_official_kwargs(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """The official constructor arguments a mapped-from checkpoint implies (sizes and counts)."""

    def count(pattern: str) -> int:
        regex = re.compile(pattern)
        found = {int(m.group(1)) for k in state if (m := regex.match(k))}
        return max(found) + 1 if found else 0

    kwargs: dict[str, int] = {}
    if "conv_first.weight" in state:
        kwargs["num_feat"] = int(state["conv_first.weight"].shape[0])
    norm = state.get("transformer.layers.0.0.fn.norm.weight")
    if norm is not None and norm.ndim == 3:
        kwargs["feat_size"] = int(norm.shape[-1])
    if INV_FREQ_KEY in state:
        n_freq = state[INV_FREQ_KEY].numel()
        kwargs["num_frame"] = 5 if n_freq == 1 else 6 * (n_freq - 1) + 1
    kwargs["depth"] = count(r"transformer\.layers\.(\d+)\.")
    kwargs["num_extract_block"] = count(r"feature_extraction\.(\d+)\.")
    kwargs["num_reconstruct_block"] = count(r"reconstruction\.(\d+)\.")
    return kwargs


def official_config(**kwargs: Any) -> VSRTConfig:
    """The vsrt config for the official constructor's keyword arguments."""
    unknown = sorted(set(kwargs) - set(OFFICIAL_KWARGS))
    if unknown:
        raise ConfigError(
            f"unknown official model argument(s) {', '.join(unknown)}; "
            f"valid: {', '.join(OFFICIAL_KWARGS)}"
        )
    if kwargs.get("image_ch", 3) != 3:
        raise ConfigError(f"only RGB models are supported (image_ch=3), got image_ch={kwargs['image_ch']}")
    fields = {OFFICIAL_KWARGS[k]: v for k, v in kwargs.items() if OFFICIAL_KWARGS[k] is not None}
    return VSRTConfig(norm="tile", ff_blocks=30, **fields)


def _check_constant(state: dict[str, torch.Tensor], key: str, expected: torch.Tensor, what: str) -> None:
    value = state.pop(key, None)
    if value is None:
        return  # reported as missing by the caller
    if value.shape != expected.shape or not torch.allclose(value.float(), expected, rtol=1e-6, atol=1e-7):
        raise CheckpointError(
            f"checkpoint entry {key} is {value.flatten().tolist()}, expected "
            f"{expected.flatten().tolist()} ({what})"
        )


def map_official_state(state: Mapping[str, torch.Tensor], config: VSRTConfig) -> dict[str, torch.Tensor]:
    """Rename an official state dict to vsrt names, checking every key is consumed exactly.

    Raises :class:`CheckpointError` listing missing, unexpected and mis-shaped entries.
    """
    state = dict(state)
    missing = [k for k in (SPYNET_MEAN_KEY, SPYNET_STD_KEY, INV_FREQ_KEY) if k not in state]
    _check_constant(state, SPYNET_MEAN_KEY, torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), "SPyNet's ImageNet mean")
    _check_constant(state, SPYNET_STD_KEY, torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), "SPyNet's ImageNet std")
    _check_constant(
        state, INV_FREQ_KEY, encoding_frequencies(config.num_frame), f"positional encoding for num_frame={config.num_frame}"
    )

    mapped: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for name, tensor in state.items():
        ours = to_vsrt_name(name)
        if ours is None:
            unexpected.append(name)
        else:
            mapped[ours] = tensor

    expected = _expected_shapes(config)
    missing += [to_official_name(k) or k for k in expected if k not in mapped]
    unexpected += [to_official_name(k) or k for k in mapped if k not in expected]
    wrong = [
        f"{to_official_name(k)} {tuple(v.shape)} != {expected[k]}"
        for k, v in mapped.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected {_summarise(unexpected)}")
    if wrong:
        problems.append(f"wrong shape {_summarise(wrong, 3)}")
    if problems:
        raise CheckpointError(
            "checkpoint does not fit the official VSRT configuration "
            f"(depth={config.depth}, num_feat={config.num_feat}, num_frame={config.num_frame}): "
            + "; ".join(problems)
            + "; pass the official constructor arguments the checkpoint was trained with"
        )
    return mapped


def _expected_shapes(config: VSRTConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = VSRT(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_official(checkpoint: str | os.PathLike[str] | Mapping[str, Any], **kwargs: Any) -> VSRT:
    """Build the official network and load the authors' checkpoint into it, strictly.

    ``checkpoint``: a path (read with ``weights_only=True``) or a state dict, bare or wrapped
    under ``params`` as BasicSR saves it. ``kwargs``: the official constructor's arguments
    (image_ch, num_feat, feat_size, num_frame, num_extract_block, num_reconstruct_block, depth,
    heads, patch_size); sizes and counts not given are read off the checkpoint. Returns the
    model on CPU in eval mode.
    """
    state = read_checkpoint(checkpoint)
    config = official_config(**{**infer_official_kwargs(state), **kwargs})
    mapped = map_official_state(state, config)
    model = VSRT(config)
    model.load_state_dict(mapped, strict=True)
    return model.eval()


def load_official_spynet(checkpoint: str | os.PathLike[str] | Mapping[str, Any]) -> SPyNet:
    """A standalone SPyNet from an official/mmedit SPyNet state dict (``basic_module.*`` keys,
    with or without the ``mean``/``std`` buffers). Returns it on CPU in eval mode."""
    prefix = "spynet.spynet."
    state = {prefix + k: v for k, v in read_checkpoint(checkpoint).items()}
    for short, key, value in (("mean", SPYNET_MEAN_KEY, IMAGENET_MEAN), ("std", SPYNET_STD_KEY, IMAGENET_STD)):
        expected = torch.tensor(value).view(1, 3, 1, 1)
        state.setdefault(key, expected)
        _check_constant(state, key, expected, f"SPyNet's ImageNet {short}")
    mapped: dict[str, torch.Tensor] = {}
    unexpected = []
    for name, tensor in state.items():
        ours = to_vsrt_name(name)
        if ours is None or not ours.startswith("spynet."):
            unexpected.append(name.removeprefix(prefix))
        else:
            mapped[ours.removeprefix("spynet.")] = tensor
    spynet = SPyNet()
    expected_keys = spynet.state_dict()
    missing = [k for k in expected_keys if k not in mapped]
    if missing or unexpected:
        parts = [f"missing {_summarise(missing)}"] if missing else []
        parts += [f"unexpected {_summarise(unexpected)}"] if unexpected else []
        raise CheckpointError("not an official SPyNet checkpoint: " + "; ".join(parts))
    try:
        spynet.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"SPyNet checkpoint has wrong shapes: {str(exc).splitlines()[-1].strip()}") from exc
    return spynet.eval()
