"""A strict stand-in for ``torch.cuda`` on machines without a GPU: it says no where the real one
says no, so the CUDA logic can be tested on the CPU without the permissive mocks that let
``set_device(torch.device("cuda"))`` through (the real one raises ``ValueError``, checked with
torch 2.13, before touching the driver).

``FakeCuda(cards=[(8, 0), (7, 5)], free=[...])`` is a machine with those physical cards (compute
capabilities), of which ``CUDA_VISIBLE_DEVICES`` (read when installed, like the CUDA runtime reads
it once) shows some: numbers or ``GPU-`` UUIDs, up to the first invalid entry. Indices are then
those of the visible cards, 0-based. ``install(monkeypatch)`` patches ``torch.cuda``; what was
asked is kept in :attr:`calls`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


@dataclass
class FakeStream:
    device: torch.device


@dataclass
class FakeEvent:
    """``record(stream=None)`` records on the *current device's* stream, as CUDA's does."""

    cuda: "FakeCuda"
    stream: FakeStream | None = None

    def record(self, stream: FakeStream | None = None) -> None:
        self.stream = stream if stream is not None else self.cuda.current_stream()

    def synchronize(self) -> None:
        if self.stream is None:
            raise RuntimeError("synchronize() on an event never recorded")


@dataclass
class FakeCuda:
    cards: list[tuple[int, int]]
    free: list[int] | None = None  # free bytes per physical card (default 8 GiB each)
    names: list[str] | None = None
    current: int = 0
    calls: list[tuple] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.visible = self._visible(os.environ.get("CUDA_VISIBLE_DEVICES"))

    def _visible(self, mask: str | None) -> list[int]:
        """Physical indices CUDA_VISIBLE_DEVICES shows, in its order (UUIDs: ``GPU-<index>``)."""
        if mask is None:
            return list(range(len(self.cards)))
        shown: list[int] = []
        for entry in mask.split(","):
            entry = entry.strip()
            if entry.startswith("GPU-") and entry[4:].isdigit():
                index = int(entry[4:])
            elif entry.isdigit():
                index = int(entry)
            else:
                break  # CUDA stops at the first invalid entry
            if index >= len(self.cards) or index in shown:
                break
            shown.append(index)
        return shown

    # --- the torch.cuda functions ---------------------------------------------------------

    def is_available(self) -> bool:
        return bool(self.visible)

    def device_count(self) -> int:
        return len(self.visible)

    def _index(self, device, what: str, *, optional: bool = True) -> int:
        """The visible index ``device`` names (``None``: the current device, where allowed)."""
        if not self.visible:
            raise RuntimeError("Found no NVIDIA driver on your system (fake)")
        if device is None and optional:
            return self.current
        if isinstance(device, str):
            device = torch.device(device)
        if isinstance(device, torch.device):
            if device.type != "cuda":
                raise ValueError(f"Expected a cuda device, but got: {device}")
            if device.index is None:
                if not optional:
                    raise ValueError(f"Expected a cuda device with a specified index or an integer, but got:{device}")
                return self.current
            device = device.index
        if not isinstance(device, int) or not 0 <= device < len(self.visible):
            raise RuntimeError(f"CUDA error: invalid device ordinal ({what} {device!r})")
        return device

    def set_device(self, device) -> None:
        self.calls.append(("set_device", device))
        self.current = self._index(device, "set_device", optional=False)

    def current_device(self) -> int:
        self.calls.append(("current_device",))
        self._index(None, "current_device")
        return self.current

    def get_device_capability(self, device=None) -> tuple[int, int]:
        self.calls.append(("get_device_capability", device))
        return self.cards[self.visible[self._index(device, "get_device_capability")]]

    def get_device_name(self, device=None) -> str:
        physical = self.visible[self._index(device, "get_device_name")]
        return (self.names or [f"Fake GPU {i}" for i in range(len(self.cards))])[physical]

    def mem_get_info(self, device=None) -> tuple[int, int]:
        self.calls.append(("mem_get_info", device))
        physical = self.visible[self._index(device, "mem_get_info")]
        free = (self.free or [8 << 30] * len(self.cards))[physical]
        return free, max(free, 16 << 30)

    def synchronize(self, device=None) -> None:
        self.calls.append(("synchronize", device))
        self._index(device, "synchronize")

    def empty_cache(self) -> None:
        self.calls.append(("empty_cache",))

    def current_stream(self, device=None) -> FakeStream:
        return FakeStream(torch.device("cuda", self._index(device, "current_stream")))

    def Event(self, *args, **kwargs) -> FakeEvent:  # noqa: N802 - torch's name
        return FakeEvent(self)

    def install(self, monkeypatch) -> "FakeCuda":
        for name in ("is_available", "device_count", "set_device", "current_device", "get_device_capability",
                     "get_device_name", "mem_get_info", "synchronize", "empty_cache", "current_stream", "Event"):
            monkeypatch.setattr(torch.cuda, name, getattr(self, name))
        return self

    def touched(self) -> list[tuple]:
        """The calls that would have created a CUDA context or read a card's state."""
        return [c for c in self.calls if c[0] != "device_count"]
