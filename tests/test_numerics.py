"""sgbench.utils.numerics: linear layers whose result for a sample never depends on its batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_float32_close
from sgbench.utils.numerics import PerSampleLinear


@pytest.mark.parametrize("K", [32, 128, 512])
@pytest.mark.parametrize("M", [1, 2, 4, 5, 16])
def test_a_samples_rows_give_the_same_bits_in_any_batch(M, K):
    """nn.Linear on (B x M, K) rows picks its kernel by B x M: on an Intel Xeon (MKL, AVX-512) M <= 5 at
    K = 128 gave other bits alone than in a batch of 3. One (M, K) product per sample does not."""
    torch.manual_seed(M * K)
    layer = PerSampleLinear(K, 32)
    x = torch.randn(7, M, K)
    batched = layer(x)
    assert torch.equal(batched, torch.cat([layer(x[i : i + 1]) for i in range(7)]))
    assert torch.equal(batched, torch.cat([layer(x[:3]), layer(x[3:])]))
    assert_float32_close(batched, F.linear(x, layer.weight, layer.bias))


def test_it_is_an_nn_linear_with_its_parameter_names_and_any_leading_shape():
    layer = PerSampleLinear(8, 4)
    assert isinstance(layer, torch.nn.Linear) and set(dict(layer.named_parameters())) == {"weight", "bias"}
    x = torch.randn(3, 2, 5, 8)
    assert layer(x).shape == (3, 2, 5, 4) and layer(x[:, 0, 0]).shape == (3, 4)
    assert_float32_close(layer(x), F.linear(x, layer.weight, layer.bias))
