"""Official checkpoints: every official key is consumed, counts match, bad files are explained."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from tests.conftest import shared_path
from vsrt_cli.errors import CheckpointError, ConfigError
from vsrt_cli.model import get_config, load_official
from vsrt_cli.model.official import to_official_name, to_vsrt_name

CASES = {
    "reds": ("official_keys_reds.json", "vsrt-reds", 32_564_335, 1_503),
    "vimeo": ("official_keys_vimeo.json", "vsrt-vimeo", 43_845_615, 2_019),
}


def official_keys(which: str) -> dict:
    with open(shared_path("reference", CASES[which][0])) as f:
        return json.load(f)


def state_from_keys(spec: dict) -> dict[str, torch.Tensor]:
    """A state dict with the official names and shapes; buffers get their recorded values."""
    buffers = {name: torch.tensor(value).view(shape) for name, shape, _, value in spec["buffers_in_state_dict"]}
    gen = torch.Generator().manual_seed(0)
    return {
        name: buffers[name] if name in buffers else torch.randn(shape, generator=gen) * 0.01
        for name, shape, _ in spec["state_dict"]
    }


@pytest.fixture(scope="module", params=sorted(CASES))
def official(request):
    spec = official_keys(request.param)
    return request.param, spec, state_from_keys(spec)


def test_official_key_set_loads_strictly_with_exact_counts(official):
    which, spec, state = official
    _, preset, n_params, n_keys = CASES[which]
    assert len(state) == n_keys == spec["num_state_dict_entries"]
    model = load_official({"params": state}, **{k: v for k, v in spec["config"].items()})
    assert not model.training
    assert model.config == get_config(preset)
    assert sum(p.numel() for p in model.parameters()) == n_params == spec["total_params"]
    # every parameter came from the checkpoint, under its mapped name
    ours = model.state_dict()
    for name, tensor in state.items():
        mapped = to_vsrt_name(name)
        if mapped is not None:
            assert torch.equal(ours[mapped], tensor), name
    consumed = {to_vsrt_name(k) for k in state} - {None}
    assert consumed == set(ours)


def test_official_sizes_are_read_off_the_checkpoint(official):
    which, _, state = official
    model = load_official(state)  # no constructor arguments: depth, blocks, frames inferred
    assert model.config == get_config(CASES[which][1])


def test_presets_have_official_parameter_counts():
    from vsrt_cli.model import build_model

    for _, preset, n_params, _ in CASES.values():
        with torch.device("meta"):
            model = build_model(preset)
        assert sum(p.numel() for p in model.parameters()) == n_params


def test_names_round_trip(official):
    _, _, state = official
    for name in state:
        mapped = to_vsrt_name(name)
        if name in ("spynet.spynet.mean", "spynet.spynet.std", "pos_embedding.penc.inv_freq"):
            assert mapped is None
        else:
            assert mapped is not None and to_official_name(mapped) == name


def test_missing_key_is_listed(official):
    _, spec, state = official
    partial = dict(state)
    del partial["transformer.layers.0.0.fn.fn.to_q.weight"]
    with pytest.raises(CheckpointError, match=r"missing 1 \(transformer\.layers\.0\.0\.fn\.fn\.to_q\.weight\)"):
        load_official(partial, **spec["config"])


def test_unexpected_and_misshapen_keys_are_listed(golden_small):
    state = dict(golden_small["state_dict"])
    state["extra.weight"] = torch.zeros(1)
    state["conv_last.bias"] = torch.zeros(4)
    with pytest.raises(CheckpointError) as err:
        load_official(state, **golden_small["config"])
    message = str(err.value)
    assert "unexpected 1 (extra.weight)" in message
    assert "conv_last.bias (4,) != (3,)" in message


def test_wrong_depth_is_reported_not_silently_truncated(golden_small):
    with pytest.raises(CheckpointError, match="missing"):
        load_official(golden_small["state_dict"], **{**golden_small["config"], "depth": 2})


def test_wrong_num_frame_is_caught_by_the_encoding_buffer(golden_small):
    with pytest.raises(CheckpointError, match="inv_freq"):
        load_official(golden_small["state_dict"], **{**golden_small["config"], "num_frame": 7})


def test_unknown_constructor_argument_lists_valid_ones(golden_small):
    with pytest.raises(ConfigError, match="unknown official model argument.*num_heads.*valid: image_ch"):
        load_official(golden_small["state_dict"], num_heads=2)


def test_loads_from_a_file_with_weights_only(tmp_path, golden_small):
    path = tmp_path / "ckpt.pth"
    torch.save({"params": golden_small["state_dict"]}, path)
    model = load_official(path, **golden_small["config"])
    assert torch.equal(model.stem.weight, golden_small["state_dict"]["conv_first.weight"])


def test_unreadable_files_get_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_official(tmp_path / "nope.pth")
    text = tmp_path / "text.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        load_official(text)

    pickled = tmp_path / "pickled.pth"
    torch.save({"params": {"conv_first.weight": torch.zeros(1)}, "obj": argparse.Namespace(x=1)}, pickled)
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        load_official(pickled)  # weights_only refuses arbitrary objects
