"""An exponential moving average of a network's weights (the model a long run ships)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``avg = decay * avg + (1 - decay) * weights`` after every step, on every floating
    tensor of the state (parameters and buffers); a frozen SPyNet is copied, not averaged."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.decay = decay
        self.net = copy.deepcopy(net).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        mine = self.net.state_dict()
        for key, value in net.state_dict().items():
            if value.is_floating_point():
                mine[key].lerp_(value, 1.0 - self.decay)
            else:
                mine[key].copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(state, strict=False)
