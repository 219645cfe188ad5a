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
