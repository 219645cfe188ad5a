"""The model equals the official code on the reference tensors (float32, CPU)."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import load_reference
from vsrt_cli.model import load_official, load_official_spynet
from vsrt_cli.model.layers import positional_encoding

TOL = 1e-5


def flow_tol(reference: torch.Tensor) -> float:
    """Flows are in pixels (up to 17 px here) after six pyramid levels of 7x7 convs, so they are
    compared relative to their size: the order of float32 sums differs between CPU kernels (an
    AVX2-only AMD EPYC is 3.3e-5 off on a 16.8 px flow, 2e-6 of it; AVX-512 Xeons less)."""
    return TOL * max(1.0, reference.abs().max().item())


pytestmark = pytest.mark.usefixtures("reference_threads")


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"{tuple(a.shape)} != {tuple(b.shape)}"
    return (a.float() - b.float()).abs().max().item()


@pytest.fixture(scope="module")
def small_model(golden_small):
    return load_official(golden_small["state_dict"], **golden_small["config"])


@torch.no_grad()
def test_output_matches_official(small_model, golden_small):
    out = small_model(golden_small["input"])
    assert max_diff(out, golden_small["output"]) <= TOL


@torch.no_grad()
def test_heads2_output_matches_official(golden_small):
    case = golden_small["heads2"]
    model = load_official(golden_small["state_dict"], **case["config"])
    assert model.config.heads == 2
    out = model(golden_small["input"])
    assert max_diff(out, case["output"]) <= TOL
    # heads changes no parameter, so the two outputs must really differ
    assert max_diff(case["output"], golden_small["output"]) > 1e-2


@torch.no_grad()
def test_window_flows_match_official(small_model, golden_small):
    to_prev, to_next = small_model.compute_flows(golden_small["input"])
    assert max_diff(to_prev, golden_small["flows_forward"]) <= flow_tol(golden_small["flows_forward"])
    assert max_diff(to_next, golden_small["flows_backward"]) <= flow_tol(golden_small["flows_backward"])
    # the boundary self-pairs go through SPyNet and are not zero for this network
    assert to_prev[:, 0].abs().max() > 0
    assert to_next[:, -1].abs().max() > 0


@torch.no_grad()
def test_intermediates_match_official(small_model, golden_small, golden_intermediates):
    x = golden_small["input"]
    gi = golden_intermediates
    pos = positional_encoding(5, 5, 64, 64, 64)
    assert max_diff(pos, gi["pos_embedding"]) == 0.0
    feat = small_model.embed(x)
    assert max_diff(feat, gi["feat_after_pos"]) <= TOL
    block = small_model.blocks[0]
    # each stage is fed the official input so a regression is located, not only detected
    assert max_diff(block.attend(gi["feat_after_pos"]), gi["attn1_out"]) <= TOL
    flows = (golden_small["flows_forward"], golden_small["flows_backward"])
    assert max_diff(block.feed_forward(gi["attn1_out"], x, flows), gi["ff1_out"]) <= TOL


@torch.no_grad()
def test_heads2_attention_matches_official(golden_small, golden_intermediates):
    model = load_official(golden_small["state_dict"], **golden_small["heads2"]["config"])
    out = model.blocks[0].attend(golden_intermediates["feat_after_pos"])
    assert max_diff(out, golden_intermediates["heads2_attn1_out"]) <= TOL


def test_positional_encoding_t7_exact():
    ref = load_reference("golden_posenc_t7.pt")
    _, t, c, h, w = ref["input_shape"]
    pos = positional_encoding(ref["T"], t, c, h, w)
    assert torch.equal(pos, ref["pos_embedding"])
    # the newer interleaved sin/cos layout would differ in frames 1, 2, 5 and 6
    assert not torch.equal(pos[0, 1], pos[0, 2])


@pytest.mark.parametrize("case", ["a_64x64", "b_128x96", "c_72x100_resized"])
@torch.no_grad()
def test_spynet_matches_official(golden_spynet, case):
    spynet = load_official_spynet(golden_spynet["state_dict"])
    data = golden_spynet["cases"][case]
    residuals: list[torch.Tensor] = []
    hooks = [level.register_forward_hook(lambda m, i, o: residuals.append(o)) for level in spynet.levels]
    try:
        flow = spynet(data["ref"], data["supp"])
    finally:
        for hook in hooks:
            hook.remove()
    assert max_diff(flow, data["flow"]) <= flow_tol(data["flow"])
    assert len(residuals) == len(data["level_residuals"]) == 6
    for ours, theirs in zip(residuals, data["level_residuals"]):
        assert max_diff(ours, theirs) <= flow_tol(theirs)
    h, w = data["working_size"]
    ref = torch.nn.functional.interpolate(data["ref"], size=(h, w), mode="bilinear", align_corners=False)
    supp = torch.nn.functional.interpolate(data["supp"], size=(h, w), mode="bilinear", align_corners=False)
    assert max_diff(spynet.compute_flow(ref, supp), data["compute_flow_out"]) <= flow_tol(data["compute_flow_out"])


@torch.no_grad()
def test_spynet_batched_call_matches_official(golden_spynet):
    spynet = load_official_spynet(golden_spynet["state_dict"])
    data = golden_spynet["cases"]["a_64x64"]
    ref = torch.cat([data["ref"], data["supp"]])
    supp = torch.cat([data["supp"], data["ref"]])
    assert max_diff(spynet(ref, supp), data["flow_batched_ref_supp_and_swapped"]) <= TOL
