"""DIS optical flow (vsrt_cli.model.dis): the flow estimator of the project's video models."""

import numpy as np
import pytest
import torch

from vsrt_cli.model import build_model, get_config
from vsrt_cli.model.dis import DISFlow, grey_u8
from vsrt_cli.model.layers import flow_warp


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB canvas, uint8 ``[h, w, 3]`` (texture at several scales)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3))
    for cells, amp in ((6, 1.0), (12, 0.6), (24, 0.35)):
        coarse = torch.from_numpy(rng.random((1, 3, cells, cells)))
        out += amp * torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
    out = (out - out.min()) / (out.max() - out.min())
    return (out * 255).round().astype(np.uint8)


def as_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


def test_dis_recovers_a_known_shift_and_aligns_the_neighbour():
    canvas = textured(112, 144)
    dx, dy = 3, 2  # the neighbour is the scene moved by (-dx, -dy): ref(p) = supp(p + (dx, dy))
    ref = canvas[16:80, 16:112]
    supp = canvas[16 - dy : 80 - dy, 16 - dx : 112 - dx]
    r, s = as_tensor([ref]), as_tensor([supp])
    flow = DISFlow()(r, s)
    assert flow.shape == (1, 2, 64, 96) and flow.dtype == torch.float32
    inner = flow[0, :, 8:-8, 8:-8]
    assert abs(float(inner[0].mean()) - dx) < 0.15 and abs(float(inner[1].mean()) - dy) < 0.15
    warped, unwarped = flow_warp(s, flow), s
    err = lambda a: float((a - r)[..., 8:-8, 8:-8].abs().mean())  # noqa: E731
    assert err(warped) < 0.25 * err(unwarped)


def test_dis_is_deterministic_zero_on_a_still_pair_and_takes_tiny_frames():
    a = as_tensor([textured(40, 56, 1), textured(40, 56, 2)])
    assert torch.equal(DISFlow()(a, a.flip(0)), DISFlow()(a, a.flip(0)))
    assert float(DISFlow()(a, a).abs().max()) == 0.0
    tiny = torch.rand(2, 3, 8, 8)  # below OpenCV's 12-px minimum: padded, then cut back
    assert DISFlow()(tiny, tiny.flip(0)).shape == (2, 2, 8, 8)


def test_grey_conversion_of_8_bit_frames_is_exact():
    frame = textured(16, 16)
    grey = grey_u8(as_tensor([frame]))[0]
    expected = np.round(frame @ np.array([0.299, 0.587, 0.114])).astype(np.int16)
    assert np.abs(grey.astype(np.int16) - expected).max() <= 1


def test_a_dis_network_has_no_spynet_and_its_window_flows_are_dis_flows():
    config = get_config("vsrt-cpu-small-5f")
    assert config.flow == "dis"
    net = build_model(config).eval()
    assert net.spynet is None and not any(k.startswith("spynet.") for k in net.state_dict())
    frames = as_tensor([textured(32, 48, i) for i in range(5)])[None]
    to_prev, to_next = net.compute_flows(frames)
    assert torch.equal(to_next[0, 1], DISFlow()(frames[0, 1:2], frames[0, 2:3])[0])
    assert torch.equal(to_prev[0, 3], DISFlow()(frames[0, 3:4], frames[0, 2:3])[0])
    with torch.no_grad():
        assert torch.equal(net(frames), net(frames, (to_prev, to_next)))


def test_single_frame_networks_have_no_flow_estimator():
    from vsrt_cli.errors import ConfigError

    net = build_model(get_config("vsrt-cpu-small-1f"))
    with pytest.raises(ConfigError, match="no flow"):
        net.flow_net  # noqa: B018
