"""Batch invariance (docs/design.md, "Numerics"): linear layers whose result for a sample never depends
on the batch it is computed in.

A sample's image must not depend on the batch it was drawn in. CPU BLAS picks a matmul's kernel by its
shape, and kernels sum a row's products in different orders: for nn.Linear on (B x M, K) rows that is
the row count B x M. Per-sample vectors (timestep, pooled text, adaLN modulation: M = 1) differed
between B = 1, 3 and 10 on AVX-512, AVX2 and the default kernels; on an Intel Xeon (MKL, AVX-512) so
did per-token layers whenever few tokens run a block (M <= 5 at K = 128: SG's weak branch keeping 4
of 16 tokens), while the AMD EPYC the project began on kept those equal. So every linear layer of the
model is a `PerSampleLinear`: one (M, K) x (K, N) product per sample through a batched matmul, the
same shape whatever the batch. The patch embedding (a 1x1 convolution for latent models, also
batch-dependent in oneDNN) is the same: a per-sample linear over each token's p x p x C values.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class PerSampleLinear(nn.Linear):
    """nn.Linear (its parameters and their names) on (B, ..., K) -> (B, ..., N), computed as B products
    of a fixed shape, one per sample: a sample's result never depends on the batch it is in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_sample_linear(x, self.weight, self.bias)


def per_sample_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias) for x (B, ..., K), as one (M, K) x (K, N) matmul per sample."""
    B, K = x.shape[0], x.shape[-1]
    rows = x.reshape(B, -1, K)
    y = torch.bmm(rows, weight.t().expand(B, -1, -1))  # (B, M, N); bf16 under autocast, as nn.Linear
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.reshape(*x.shape[:-1], weight.shape[0])
