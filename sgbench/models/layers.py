"""The backbone's layers: token selection (gather and scatter of kept tokens), embedders, the
batch-invariant per-sample layers, and the adaLN-Zero transformer blocks with optional cross-attention
(docs/design.md, "Sparsity" and "Numerics")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sgbench.models.config import num_kept
from sgbench.utils.numerics import PerSampleLinear, per_sample_linear

# ----------------------------------------------------------------------------------------------------
# Token selection


def select_tokens(
    batch: int, num_tokens: int, gamma: float, generators: list[torch.Generator] | None, device
) -> torch.Tensor:
    """Indices of the kept tokens, (batch, kept), sorted ascending.

    Each sample's selection is a uniformly random subset drawn from its own generator (or from the
    global RNG in training, where `generators` is None).
    """
    kept = num_kept(num_tokens, gamma)
    if generators is None:
        idx = torch.rand(batch, num_tokens, device=device).argsort(dim=1)[:, :kept]
    else:
        assert len(generators) == batch, "one generator per sample"
        idx = torch.stack([torch.randperm(num_tokens, generator=g)[:kept] for g in generators]).to(device)
    return idx.sort(dim=1).values


def gather_tokens(h: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """h: (B, N, D), idx: (B, K) -> (B, K, D)."""
    return torch.gather(h, 1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))


def scatter_tokens(full: torch.Tensor, idx: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """Put part (B, K, D) back into a copy of full (B, N, D) at idx (B, K)."""
    return full.scatter(1, idx.unsqueeze(-1).expand(-1, -1, full.shape[-1]), part)


# ----------------------------------------------------------------------------------------------------
# Embedders


def sincos_pos_embed(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2D sine-cosine position embedding, (grid*grid, dim), as in MAE/DiT."""
    assert dim % 4 == 0
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
    ys, xs = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")

    def embed_1d(pos):
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    # DiT's order: the first half embeds the width coordinate, the second the height coordinate.
    emb = np.concatenate([embed_1d(xs), embed_1d(ys)], axis=1)
    return torch.from_numpy(emb).float()


# ----------------------------------------------------------------------------------------------------
# Batch invariance: every linear layer is a PerSampleLinear (sgbench.utils.numerics says why)


class PatchEmbed(nn.Conv2d):
    """The patch embedding: a Conv2d with kernel = stride = p (its parameters and their names), computed
    as a linear over each token's p x p x C values (B, C, H, W) -> (B, N, D), N row-major."""

    def __init__(self, in_channels: int, dim: int, patch_size: int):
        super().__init__(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        p = self.kernel_size[0]
        patches = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)
        return per_sample_linear(patches, self.weight.reshape(self.out_channels, -1), self.bias)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size: int, freq_dim: int = 256, time_scale: float = 1000.0):
        super().__init__()
        self.freq_dim, self.time_scale = freq_dim, time_scale
        self.mlp = nn.Sequential(PerSampleLinear(freq_dim, hidden_size), nn.SiLU(), PerSampleLinear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = (t.float() * self.time_scale)[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


# ----------------------------------------------------------------------------------------------------
# Blocks


@dataclass
class TextContext:
    """The text tokens every block of a text model cross-attends to: never sparsified."""

    tokens: torch.Tensor  # (B, L, D), projected to the model's width
    mask: torch.Tensor  # (B, L) bool, True for real tokens


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = PerSampleLinear(dim, 3 * dim)
        self.proj = PerSampleLinear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, D/H)
        return self.proj(x.transpose(1, 2).reshape(B, N, D))


class CrossAttention(nn.Module):
    """Image tokens (queries) attend to the text tokens (keys and values); padding is masked out."""

    def __init__(self, dim: int, context_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = PerSampleLinear(dim, dim)
        self.kv = PerSampleLinear(context_dim, 2 * dim)
        self.proj = PerSampleLinear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D), context: (B, L, C), mask: (B, L) bool -> (B, N, D)."""
        B, N, D = x.shape
        H = self.num_heads
        q = self.q(x).reshape(B, N, H, D // H).transpose(1, 2)  # (B, H, N, D/H)
        k, v = self.kv(context).reshape(B, -1, 2, H, D // H).permute(2, 0, 3, 1, 4)  # (B, H, L, D/H) each
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, H, N, D/H)
        return self.proj(x.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = PerSampleLinear(dim, hidden)
        self.fc2 = PerSampleLinear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning on c (cond_dim may differ from dim), and for text
    models (context_dim set) cross-attention to the text tokens between self-attention and MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, cond_dim: int, context_dim: int | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.cross_attn = CrossAttention(dim, context_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), PerSampleLinear(cond_dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, context: TextContext | None = None) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        if context is not None:
            x = x + self.cross_attn(self.norm_cross(x), context.tokens, context.mask)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch_size: int, out_channels: int, cond_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = PerSampleLinear(dim, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), PerSampleLinear(cond_dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


