import os

import pytest
import torch

# Tests run on 2 CPU cores with pytest-xdist: one thread per worker keeps them from fighting.
torch.set_num_threads(1)
os.environ.setdefault("SGBENCH_NO_PROGRESS", "1")


# Forwards computed by other kernels (another CPU, another BLAS path) agree to float32's accuracy, not to the
# bit: max |a - b| <= FLOAT32_FORWARD_RTOL * max |b|. sqrt(K) eps for K <= 1024, over at most 80 matmuls in a
# row: sqrt(80) * 32 * 1.19e-7 = 3.4e-5 (docs/design.md, "Numerics").
FLOAT32_FORWARD_RTOL = 5e-5


def assert_float32_close(actual: torch.Tensor, expected: torch.Tensor, msg: str = "") -> None:
    """`actual` equals `expected` up to float32 rounding in a different order of additions."""
    assert actual.shape == expected.shape, (msg, actual.shape, expected.shape)
    error, scale = (actual - expected).abs().max().item(), expected.abs().max().item()
    assert error <= FLOAT32_FORWARD_RTOL * scale, f"{msg}: max |diff| {error:.3g} > {FLOAT32_FORWARD_RTOL:g} x max |expected| {scale:.3g}"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true", help="rewrite tests/golden/*.json from the current code")
