"""Shared fixtures. ``../shared`` (reference tensors, real clips) is referenced, never copied.

Tests that need it skip with a reason on a user's machine without it, and fail under CI
(``CI=true``), where it is always present.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VSRT_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"

torch.set_num_threads(min(2, torch.get_num_threads()))
REFERENCE_THREADS = 2  # the official goldens were computed with 2 threads


@pytest.fixture(autouse=True)
def _restore_threads():
    """Code under test (training) may change torch's thread count; give it back after each test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def reference_threads():
    """Run with the reduction order of the goldens: float sums depend on the thread count (the
    resized SPyNet case moves by ~1e-5 with one thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(REFERENCE_THREADS)
    yield
    torch.set_num_threads(before)


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips the test (fails under CI) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{path} is missing, and CI must run every test")
        pytest.skip(f"{path} not present (the project's ../shared folder)")
    return path


def load_reference(name: str) -> dict:
    return torch.load(shared_path("reference", name), map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def golden_small() -> dict:
    return load_reference("golden_small.pt")


@pytest.fixture(scope="session")
def golden_intermediates() -> dict:
    return load_reference("golden_small_intermediates.pt")


@pytest.fixture(scope="session")
def golden_spynet() -> dict:
    return load_reference("golden_spynet.pt")


from vsrt_cli.model import VSRTConfig, build_model  # noqa: E402
from vsrt_cli.zoo.weights import save_weights  # noqa: E402

TINY = VSRTConfig(
    num_feat=8, num_frame=5, depth=1, heads=1, patch_size=8, extract_blocks=1,
    reconstruct_blocks=1, ff_blocks=1, norm="channel",
)
# The file-level tests check containers, timestamps and audio; SPyNet (the costliest part of a
# tiny model) is switched off there and exercised by the image-folder and tiling tests instead.
NO_FLOW = VSRTConfig(**{**TINY.__dict__, "use_flow": False})


@pytest.fixture(scope="session")
def tiny_model():
    torch.manual_seed(0)
    return build_model(NO_FLOW).eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, tiny_model):
    """A vsrt weights file of :func:`tiny_model`, for ``--weights`` in CLI tests."""
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    save_weights(tiny_model, path)
    return path


@pytest.fixture
def fake_cuda(monkeypatch):
    """``fake_cuda(cards=[(8, 0), (7, 5)], free=None, current=0)``: installs the strict
    ``torch.cuda`` stand-in of :mod:`tests.cuda_fake` (after setting CUDA_VISIBLE_DEVICES, if
    wanted, with ``monkeypatch.setenv``) and returns it."""
    from tests.cuda_fake import FakeCuda

    def make(cards=((8, 0),), free=None, current: int = 0, names=None) -> FakeCuda:
        return FakeCuda(list(cards), free=None if free is None else list(free), names=names, current=current).install(monkeypatch)

    return make
