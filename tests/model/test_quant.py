"""A network told its input's quantiser (``quant_film``): it starts as the network it is
warm-started from, reads each batch item's own quantiser, and the unknown is a value of its own."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.conftest import TINY
from vsrt_cli.model import build_model
from vsrt_cli.model.vsrt import get_config

NAN = float("nan")


@pytest.mark.parametrize("preset", ["vsrt-cpu-small-5f", "vsrt-cpu-small-1f"])
def test_a_warm_start_from_unconditioned_weights_computes_what_they_did(preset):
    torch.manual_seed(0)
    plain, told = build_model(preset).eval(), build_model(preset + "-q").eval()
    missing, unexpected = told.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("quant.") for k in missing)
    assert get_config(preset + "-q") == dataclasses.replace(get_config(preset), quant_film=True)
    x = torch.rand(2, plain.config.num_frame, 3, 16, 24)
    with torch.no_grad():
        want = plain(x)
        for quant in (None, 0.0, 35.0, torch.tensor([NAN, 51.0])):
            assert torch.equal(told(x, quant=quant), want)


@pytest.mark.parametrize("queries", [False, True])
def test_each_item_reads_its_own_quantiser(queries):
    torch.manual_seed(1)
    config = dataclasses.replace(TINY, quant_film=True, centre_first=queries, neighbour_gates=queries,
                                 per_frame_queries=queries, use_flow=False)
    net = build_model(config).eval()
    torch.nn.init.normal_(net.quant.mlp[2].weight, std=0.2)  # as if trained
    x = torch.rand(3, 5, 3, 16, 16)
    quant = torch.tensor([0.0, 40.0, NAN])
    with torch.no_grad():
        together = net(x, quant=quant)
        alone = [net(x[i : i + 1], quant=float(quant[i])) for i in range(3)]
        kept = net(x, quant=quant, keep=[2])
        unknown = net(x[2:3], quant=None)
    for i in range(3):
        assert torch.allclose(together[i : i + 1], alone[i], atol=1e-5)
    assert torch.allclose(kept, together[:, [2]], atol=1e-5)
    assert torch.allclose(unknown, alone[2], atol=1e-5)  # None is the unknown (NaN)
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)  # clean and QP 40 differ
    assert not torch.allclose(alone[0], net(x[:1], quant=NAN), atol=1e-3)  # and the unknown is neither


def test_a_plain_network_ignores_the_quantiser():
    torch.manual_seed(2)
    net = build_model(TINY).eval()
    assert net.quant is None
    x = torch.rand(1, 5, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x, quant=30.0), net(x))


def test_a_blend_network_runs_its_clean_weights_exactly_on_clean_input_and_its_offsets_elsewhere():
    from vsrt_cli.model.quant import FULL_QP, UNKNOWN_BLEND, ZERO_QP, blend_scale

    torch.manual_seed(3)
    config = dataclasses.replace(TINY, quant_film=True, quant_blend=True, use_flow=False)
    net = build_model(config).eval()
    plain = build_model(dataclasses.replace(TINY, use_flow=False)).eval()
    net.load_state_dict(plain.state_dict(), strict=False)
    for d in net.delta.values():
        torch.nn.init.normal_(d, std=0.05)  # as if trained
    torch.nn.init.normal_(net.quant.mlp[2].weight, std=0.2)
    x = torch.rand(4, 5, 3, 16, 16)
    mid = (ZERO_QP + FULL_QP) / 2
    quant = torch.tensor([0.0, 40.0, NAN, mid])
    with torch.no_grad():
        together = net(x, quant=quant)
        assert torch.equal(together[:1], plain(x[:1]))  # known clean: the clean network, bit for bit
        for i in range(1, 4):
            alone = net(x[i : i + 1], quant=float(quant[i]))
            assert torch.allclose(together[i : i + 1], alone, atol=1e-5)
            assert not torch.allclose(alone, plain(x[i : i + 1]), atol=1e-3)
        # the offsets themselves, as one network with W + s * delta
        offset = build_model(dataclasses.replace(TINY, quant_film=True, use_flow=False)).eval()
        own = {n: p for n, p in net.named_parameters() if not n.startswith("delta.")}
        half = {n: own[n] + 0.5 * net.delta["__".join(n.split("."))] if not n.startswith("quant.") else own[n] for n in own}
        offset.load_state_dict(half)
        assert torch.allclose(offset(x[3:], quant=mid), together[3:], atol=1e-5)
    assert blend_scale(torch.tensor([0.0, ZERO_QP, mid, FULL_QP, 45.0, NAN])).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0, UNKNOWN_BLEND]
