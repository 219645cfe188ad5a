"""Per-frame-query networks (vsrt_cli.model.query): each output frame its own pass over the window."""

from dataclasses import replace

import pytest
import torch

from vsrt_cli.errors import ConfigError
from vsrt_cli.model import build_model, get_config


def small(**changes):
    base = replace(get_config("vsrt-cpu-small-5f"), flow="spynet", **changes)  # flows given: no DIS needed
    return build_model(base).eval()


def window(seed: int = 0, t: int = 5, h: int = 16, w: int = 24):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, t, 3, h, w, generator=g)
    flows = (torch.randn(2, t, 2, h, w, generator=g), torch.randn(2, t, 2, h, w, generator=g))
    return x, flows


def open_gates(net, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "conv_neighbour" in name or name.startswith("early_fusion.conv2"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif name.endswith("cross_gate"):
                p.fill_(0.5)
    return net


def test_the_preset_is_a_per_frame_query_network():
    config = get_config("vsrt-cpu-small-5f")
    assert config.per_frame_queries and config.neighbour_gates and config.flow == "dis"


def test_closed_gates_compute_each_frame_as_the_single_frame_network():
    torch.manual_seed(0)
    net = small()
    single = build_model(get_config("vsrt-cpu-small-1f")).eval()
    single.load_state_dict({k: v for k, v in net.state_dict().items() if k in single.state_dict()})
    x, flows = window()
    with torch.no_grad():
        out = net(x, flows)
        alone = single(x.flatten(0, 1)[:, None]).view(2, 5, 3, 64, 96)
    assert out.shape == (2, 5, 3, 64, 96)
    torch.testing.assert_close(out, alone, atol=2e-6, rtol=0)


def test_keep_gives_the_same_frames_as_the_full_output():
    torch.manual_seed(0)
    net = open_gates(small())
    x, flows = window()
    with torch.no_grad():
        full = net(x, flows)
        for keep in ([2], [0, 4], [3, 1]):
            torch.testing.assert_close(net(x, flows, keep=keep), full[:, keep], atol=1e-5, rtol=0)


def test_open_gates_read_the_neighbours_through_attention_and_flow():
    torch.manual_seed(0)
    net = open_gates(small())
    x, flows = window()
    with torch.no_grad():
        base = net(x, flows, keep=[2])
        far = x.clone()
        far[:, 0] = 0.5  # two frames away: reaches the centre only through attention
        near = x.clone()
        near[:, 3] = 0.5  # the next frame: attention and the warped feed-forward input
        moved = (flows[0], flows[1].clone())
        moved[1][:, 2] += 1.0  # the centre's flow to its next neighbour
        changes = [float((net(v, f, keep=[2]) - base).abs().max()) for v, f in ((far, flows), (near, flows), (x, moved))]
        own = x.clone()
        own[:, 2] = 0.5
        assert float((net(own, flows, keep=[3]) - net(x, flows, keep=[3])).abs().max()) > 1e-3
    assert all(c > 1e-4 for c in changes), changes
    assert changes[1] > changes[0]


def test_a_per_frame_query_network_needs_its_neighbour_gates():
    with pytest.raises(ConfigError, match="per_frame_queries needs neighbour_gates"):
        replace(get_config("vsrt-cpu-small-5f"), neighbour_gates=False)


def test_gradients_reach_the_neighbour_paths_from_a_centre_loss():
    torch.manual_seed(0)
    net = small().train()
    x, flows = window()
    net(x, flows, keep=[2]).square().mean().backward()
    grads = {n: p.grad for n, p in net.named_parameters() if "conv_neighbour" in n or n.endswith("cross_gate")}
    assert grads and all(g is not None and float(g.abs().sum()) > 0 for g in grads.values())


def test_runs_keep_each_frame_as_the_centre_of_its_own_window_by_default():
    assert get_config("vsrt-cpu-small-5f").default_stride(5) == 1
    assert get_config("vsrt-cpu-small").default_stride(5) == 3  # the paper's joint network
    assert get_config("vsrt-cpu-small-1f").default_stride(1) == 1


def test_early_fusion_aligns_neighbours_one_and_two_frames_away():
    from vsrt_cli.model.query import EarlyFusion

    g = torch.Generator().manual_seed(3)
    canvas = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16, generator=g), size=(60, 80), mode="bicubic", align_corners=False)
    shift = 2  # the scene moves 2 px left per frame: frame j is the canvas from column 2j
    x = torch.stack([canvas[..., 8:40, 2 * j : 2 * j + 48] for j in range(5)], dim=1)  # [1, 5, 3, 32, 48]
    to_next = torch.zeros(1, 5, 2, 32, 48)
    to_next[:, :, 0] = -shift  # flow(f_j -> f_{j+1}): f_{j+1} sampled at p - 2 is f_j
    to_prev = -to_next
    inner = (..., slice(4, -4), slice(8, -8))
    for d in (-2, -1, 1, 2):
        aligned = EarlyFusion._aligned(x, to_prev, to_next, 2, d)
        assert float((aligned - x[:, 2])[inner].abs().max()) < 1e-4, d
        unaligned = float((x[:, 2 + d] - x[:, 2])[inner].abs().mean())
        assert unaligned > 0.01
    assert torch.equal(EarlyFusion._aligned(x, to_prev, to_next, 0, -1), x[:, 0])  # outside: the frame itself
    out = EarlyFusion(8)(x, (to_prev, to_next), [2, 0])
    assert out.shape == (2, 8, 32, 48) and float(out.detach().abs().max()) == 0.0  # zero-initialised


def test_merged_attention_equals_two_softmaxes_over_own_and_joined_keys():
    """The query pass scores the own tokens once and merges the two softmaxes through their
    sums; it must equal attention over the own keys blended with attention over own + context."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    from vsrt_cli.model.query import _attention

    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(3, 1, 6, 32, generator=g, dtype=torch.float64) for _ in range(3))
    kc, vc = (torch.randn(3, 1, 24, 32, generator=g, dtype=torch.float64) for _ in range(2))
    kc[0] += 40.0  # one item whose context outscores its own tokens by far: no underflow
    gate = torch.tensor(0.3, dtype=torch.float64)
    own = sdpa(q, k, v)
    every = sdpa(q, torch.cat([k, kc], 2), torch.cat([v, vc], 2))
    got = _attention(q, k, v, (kc, vc), gate)
    torch.testing.assert_close(got, own + gate * (every - own), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(_attention(q, k, v, None, None), own, atol=1e-6, rtol=1e-6)


def test_large_tiles_attend_in_the_fused_kernels_with_the_same_result(monkeypatch):
    """Past FUSED_ABOVE the score matrices are not held: the fused kernels give the same."""
    from vsrt_cli.model import query

    g = torch.Generator().manual_seed(6)
    q, k, v = (torch.randn(2, 1, 6, 32, generator=g, dtype=torch.float64) for _ in range(3))
    kc, vc = (torch.randn(2, 1, 24, 32, generator=g, dtype=torch.float64) for _ in range(2))
    gate = torch.tensor(0.7, dtype=torch.float64)
    held, held_own = query._attention(q, k, v, (kc, vc), gate), query._attention(q, k, v, None, None)
    monkeypatch.setattr(query, "FUSED_ABOVE", 6 * 6 - 1)  # 6 x 6 own scores, 6 x 30 in all: over it
    torch.testing.assert_close(query._attention(q, k, v, (kc, vc), gate), held, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(query._attention(q, k, v, None, None), held_own, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("t, keep", [(5, [2]), (5, [0]), (5, [4]), (5, [1, 3]), (3, [1]), (2, [0]), (1, [0])])
def test_the_pass_reads_only_the_flows_it_names(t, keep):
    """Flows a pass does not read (``flows_read``) are left uncomputed by the pipeline, as NaN:
    with NaN there the output must be the same, finite frames."""
    torch.manual_seed(0)
    net = open_gates(small())
    x, flows = window(t=t)
    read_prev, read_next = net.flows_read(t, keep)
    assert len(read_prev) < t or len(read_next) < t or t <= 2
    holed = tuple(f.clone() for f in flows)
    for f, read in zip(holed, (read_prev, read_next)):
        for j in set(range(t)) - read:
            f[:, j] = float("nan")
    with torch.no_grad():
        want = net(x, flows, keep=keep)
        got = net(x, holed, keep=keep)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_a_joint_network_reads_every_flow():
    net = build_model(replace(get_config("vsrt-cpu-small"), flow="spynet")).eval()
    assert net.flows_read(5, [2]) == (set(range(5)), set(range(5)))


def test_fp16_attention_does_not_overflow_on_long_tokens():
    """fp16 holds at most 65504: a 2048-number dot product of values around 8 is about 131k, so
    the scores are scaled before the product, never after."""
    from vsrt_cli.model.query import _attention

    g = torch.Generator().manual_seed(7)
    q = (8 + torch.rand(1, 1, 4, 2048, generator=g)).half()
    k, v = q.clone(), torch.rand(1, 1, 4, 2048, generator=g).half()
    out = _attention(q, k, v, None, None)
    assert torch.isfinite(out).all()  # scaled after the product: inf scores, NaN weights
    assert float(out.min()) >= float(v.min()) - 1e-3 and float(out.max()) <= float(v.max()) + 1e-3  # an average of v
