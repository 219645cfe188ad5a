"""Properties of the network that hold for any weights (tiny widths, CPU)."""

from __future__ import annotations

import pytest
import torch

from vsrt_cli.errors import ConfigError, ModelInputError
from vsrt_cli.model import VSRTConfig, build_model, get_config, window_flows
from vsrt_cli.engine.runtime import autocast, resolve_device

TINY = VSRTConfig(
    num_feat=8, num_frame=5, depth=1, heads=2, patch_size=4, extract_blocks=1,
    reconstruct_blocks=1, ff_blocks=1, norm="channel",
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(TINY).eval()


def clip(t: int, h: int, w: int, b: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("t", [1, 2, 3, 5, 6])
@torch.no_grad()
def test_any_frame_count_up_to_the_encoding_limit(tiny, t):
    out = tiny(clip(t, 12, 20))
    assert out.shape == (1, t, 3, 48, 80)
    assert torch.isfinite(out).all()


@torch.no_grad()
def test_rejects_what_it_cannot_take(tiny):
    with pytest.raises(ModelInputError, match="1 to 6 frames"):
        tiny(clip(7, 8, 8))
    with pytest.raises(ModelInputError, match="multiples of 4, got 10x8"):
        tiny(clip(2, 10, 8))
    with pytest.raises(ModelInputError, match=r"\[batch, frames, 3, height, width\]"):
        tiny(torch.rand(2, 3, 8, 8))


def test_official_norm_names_its_only_size():
    config = VSRTConfig(num_feat=8, depth=1, extract_blocks=0, reconstruct_blocks=0, ff_blocks=0, tile=16)
    model = build_model(config).eval()
    assert model(clip(3, 16, 16)).shape == (1, 3, 3, 64, 64)
    with pytest.raises(ModelInputError, match="exactly 16x16 pixels"):
        model(clip(3, 24, 16))


@torch.no_grad()
def test_batch_entries_are_independent(tiny):
    x = clip(3, 8, 12, b=2)
    both = tiny(x)
    assert torch.allclose(both[1:], tiny(x[1:]), atol=1e-5)


@torch.no_grad()
def test_neighbours_influence_a_frame_only_with_time(tiny):
    x = clip(3, 16, 16)
    y = x.clone()
    y[:, 2] = torch.rand(3, 16, 16)
    changed = (tiny(x)[:, 1] - tiny(y)[:, 1]).abs().max()
    assert changed > 1e-4  # attention and flow branches mix frames


@torch.no_grad()
def test_flow_off_uses_zero_flows_and_carries_no_spynet():
    torch.manual_seed(0)
    model = build_model(VSRTConfig(**{**TINY.__dict__, "use_flow": False})).eval()
    x = clip(3, 8, 8)
    to_prev, to_next = model.compute_flows(x)
    assert not to_prev.any() and not to_next.any()
    assert model.spynet is None and not any(k.startswith("spynet.") for k in model.state_dict())
    assert torch.isfinite(model(x)).all()


def test_window_flows_pair_each_frame_with_its_neighbours():
    # A fake flow net that reports which frames it was given: frame k is filled with k.
    def fake(ref, supp):
        return torch.cat([ref[:, :1], supp[:, :1]], dim=1)

    t = 4
    frames = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1, 1).expand(2, t, 3, 5, 6)
    to_prev, to_next = window_flows(fake, frames)
    assert to_prev.shape == to_next.shape == (2, t, 2, 5, 6)
    assert to_prev[0, :, 0, 0, 0].tolist() == [0, 1, 2, 3]
    assert to_prev[0, :, 1, 0, 0].tolist() == [0, 0, 1, 2]  # frame 0 pairs with itself
    assert to_next[0, :, 1, 0, 0].tolist() == [1, 2, 3, 3]  # last frame pairs with itself


def test_config_validation_names_the_problem():
    with pytest.raises(ConfigError, match="heads=3 must divide num_feat=8"):
        VSRTConfig(num_feat=8, heads=3)
    with pytest.raises(ConfigError, match="unknown model preset 'nope'; valid presets: .*vsrt-reds"):
        get_config("nope")
    with pytest.raises(ConfigError, match="norm must be"):
        VSRTConfig(norm="batch")  # type: ignore[arg-type]


@torch.no_grad()
def test_bf16_autocast_on_cpu_stays_close(tiny):
    x = clip(3, 8, 8)
    device = resolve_device("cpu")
    with autocast(device, "bf16"):
        low = tiny(x)
    with autocast(device, "fp32"):
        full = tiny(x)
    assert low.shape == full.shape
    assert (low.float() - full).abs().mean() < 0.05


def test_device_strings():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda:0")


GATED = VSRTConfig(
    num_feat=8, num_frame=5, depth=2, heads=2, patch_size=4, extract_blocks=1,
    reconstruct_blocks=1, ff_blocks=1, norm="channel", centre_first=True, neighbour_gates=True,
)


@torch.no_grad()
def test_gated_video_network_starts_as_its_single_frame_weights():
    """A warm start from single-frame weights computes exactly what they did on the centre
    frame; once a gate opens, the neighbours count."""
    from dataclasses import replace

    torch.manual_seed(1)
    single = build_model(replace(GATED, num_frame=1, use_flow=False, centre_first=False, neighbour_gates=False)).eval()
    video = build_model(GATED).eval()
    missing, unexpected = video.load_state_dict(single.state_dict(), strict=False)
    missing = [k for k in missing if not k.startswith("spynet.")]  # the single-frame net has none
    assert not unexpected and missing and all("conv_neighbour" in k or "cross_gate" in k for k in missing)
    x = clip(5, 12, 16, seed=3)
    centre = single(x[:, 2:3])[0, 0]
    assert torch.allclose(video(x)[0, 2], centre, atol=1e-5)
    other = x.clone()
    other[:, [0, 1, 3, 4]] = clip(4, 12, 16, seed=4)
    assert torch.allclose(video(other)[0, 2], centre, atol=1e-5)  # neighbours closed off
    video.blocks[0].attn.cross_gate.fill_(0.5)
    assert not torch.allclose(video(other)[0, 2], video(x)[0, 2], atol=1e-4)
    video.blocks[0].attn.cross_gate.fill_(0.0)
    video.blocks[1].ff.from_next.conv_neighbour.weight.normal_()
    assert not torch.allclose(video(other)[0, 2], video(x)[0, 2], atol=1e-4)


def test_centre_first_encoding_gives_the_centre_frame_channel_zero():
    from dataclasses import replace

    from vsrt_cli.model.layers import positional_encoding

    official = build_model(replace(GATED, centre_first=False, neighbour_gates=False))
    moved = build_model(replace(GATED, neighbour_gates=False))
    moved.load_state_dict(official.state_dict())
    x = clip(5, 8, 8)
    pe = positional_encoding(5, 5, 8, 8, 8)
    diff = (moved.embed(x) - official.embed(x))[0]
    expect = pe[0, [1, 2, 0, 3, 4]] - pe[0]  # centre <- channel 0, the others in order
    assert torch.allclose(diff, expect, atol=1e-6)


# --- the cached encoding and keep=positions --------------------------------------------------


@pytest.mark.parametrize("preset", ["official", "centre_first"])
def test_embedding_adds_exactly_the_materialised_encoding(preset):
    from dataclasses import replace

    from vsrt_cli.model.layers import positional_encoding

    model = build_model(replace(TINY, centre_first=preset == "centre_first")).eval()
    x = clip(5, 12, 16)
    with torch.no_grad():
        feat = rearrange_feat(model, x)
        pe = positional_encoding(5, 5, 8, 12, 16)
        if preset == "centre_first":
            pe = pe[:, [1, 2, 0, 3, 4]]
        # bit-identical to the full-size tensor of the official code, in place and with autograd
        assert torch.equal(model.embed(x), feat + pe)
    model.train()
    with_grad = model.embed(x)
    assert with_grad.requires_grad and torch.equal(with_grad.detach(), feat + pe)


def rearrange_feat(model, x):
    from einops import rearrange

    from vsrt_cli.model.layers import lrelu

    flat = model.stem(rearrange(x, "b t c h w -> (b t) c h w"))
    return rearrange(model.extract(lrelu(flat)), "(b t) c h w -> b t c h w", b=x.shape[0])


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("gated", [False, True])
@torch.no_grad()
def test_keep_computes_only_the_kept_frames_and_equals_slicing(depth, gated):
    from dataclasses import replace

    torch.manual_seed(1)
    model = build_model(replace(TINY, depth=depth, neighbour_gates=gated, centre_first=gated)).eval()
    x = clip(5, 8, 12, b=2)
    full = model(x)
    for keep in ([1, 2, 3], [0], [4, 0], [0, 1, 2, 3, 4]):
        part = model(x, keep=keep)
        assert part.shape == (2, len(keep), 3, 32, 48)
        torch.testing.assert_close(part, full[:, keep], atol=2e-6, rtol=0)
    with pytest.raises(ModelInputError, match="within the 5-frame window"):
        model(x, keep=[5])


def test_keep_does_less_work():
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(replace_depth(TINY)).eval()
    x = clip(5, 16, 16)
    with torch.no_grad():
        flows = model.compute_flows(x)  # as the pipeline does: once, on whole frames
    counts = []
    for keep in (None, [1, 2, 3]):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x, flows, keep=keep)
        counts.append(counter.get_total_flops())
    assert counts[1] < 0.85 * counts[0]


def replace_depth(config):
    from dataclasses import replace

    return replace(config, depth=2)


def test_default_overlap_is_8_but_16_for_the_authors_fixed_tiles():
    from vsrt_cli.model import get_config

    assert get_config("vsrt-cpu-small-5f").default_overlap == 8
    assert get_config("vsrt-cpu-small-1f").default_overlap == 8
    assert get_config("vsrt-reds").default_overlap == 16  # norm="tile": 64 px tiles
