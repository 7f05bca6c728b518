"""Text encoders: prompts -> token embeddings, a mask and a pooled embedding, behind one interface.

Both encoders mirror the paper's T2I setup (App. A.1, after Ma et al. 2024): base token embeddings,
then 2 trainable transformer layers that adapt them to the diffusion model.

- `embedded`: a word-level tokenizer over the dataset's vocabulary (stored in the config) and a token
  table trained jointly with the model (`sgbench.text.words`).
- `open_clip`: an open_clip text tower from a local weights file, frozen, its outputs cached per
  prompt (`sgbench.text.clip`), projected to the trainable layers' width.

Every prompt starts with a start token that is never masked, so the empty prompt (the null condition,
trained by dropping 10% of captions) is a real, learnable encoding and attention always has a key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from sgbench.utils.errors import SgbenchError
from sgbench.utils.numerics import PerSampleLinear

ENCODERS = ("embedded", "open_clip")  # the single source of the encoder names
# How B prompts' tokens become one vector per prompt (the adaLN condition): "mean" over the real tokens
# (the same for "a cat left of a dog" and "a dog left of a cat"), or the "start" token's output, which
# attends to every word at its position and so can keep word order (as CLIP's end-of-text token).
POOLINGS = ("mean", "start")


@dataclass(frozen=True)
class TextConfig:
    encoder: str  # one of ENCODERS
    width: int = 128  # D_text: width of the trainable layers (and of the embedded token table)
    layers: int = 2  # trainable transformer layers on the base embeddings (the paper's 2)
    heads: int = 4
    max_length: int = 16  # L: tokens per prompt, start token included; longer prompts are refused
    vocabulary: tuple[str, ...] = ()  # embedded: the words (token ids 2.. in this order)
    open_clip_model: str = ""  # open_clip: architecture, e.g. ViT-B-32
    open_clip_weights: str = ""  # open_clip: local weights file, loaded as pretrained=PATH
    pooling: str = "mean"  # one of POOLINGS; "mean" for configs stored before the option existed

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise SgbenchError(f"Expected a text encoder in {', '.join(ENCODERS)} but got '{self.encoder}'")
        if self.pooling not in POOLINGS:
            raise SgbenchError(f"Expected text pooling in {', '.join(POOLINGS)} but got '{self.pooling}'")
        if self.width % self.heads:
            raise SgbenchError(f"text width {self.width} is not divisible by text heads {self.heads}")
        if self.max_length < 2:
            raise SgbenchError(f"Expected text max_length >= 2 (the start token and a word) but got {self.max_length}")
        if self.encoder == "embedded" and (not self.vocabulary or self.open_clip_model or self.open_clip_weights):
            raise SgbenchError("The embedded text encoder needs a vocabulary and takes no open_clip_model/open_clip_weights")
        if self.encoder == "open_clip" and (not self.open_clip_model or not self.open_clip_weights or self.vocabulary):
            raise SgbenchError("The open_clip text encoder needs open_clip_model and open_clip_weights, and no vocabulary")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TextConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise SgbenchError(f"Unknown text config keys {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**{**d, "vocabulary": tuple(d.get("vocabulary", ()))})


@dataclass
class TextEmbedding:
    """What an encoder returns for B prompts, and what a text model takes as its condition."""

    tokens: torch.Tensor  # (B, L, D_text), zero at padding
    mask: torch.Tensor  # (B, L) bool, True for real tokens (the start token always)
    pooled: torch.Tensor  # (B, D_text), the masked mean of the tokens or the start token (TextConfig.pooling)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def select(self, ids: torch.Tensor) -> "TextEmbedding":
        """Rows `ids` (B',) of this embedding, e.g. each sample's prompt out of a prompt set."""
        ids = ids.to(self.tokens.device)
        return TextEmbedding(self.tokens[ids], self.mask[ids], self.pooled[ids])

    def to(self, device) -> "TextEmbedding":
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    @staticmethod
    def cat(parts: Sequence["TextEmbedding"]) -> "TextEmbedding":
        """Concatenate along the batch (the layout of batched guidance branches)."""
        return TextEmbedding(
            torch.cat([p.tokens for p in parts]), torch.cat([p.mask for p in parts]), torch.cat([p.pooled for p in parts])
        )


# ----------------------------------------------------------------------------------------------------
# The trainable layers


class TextLayer(nn.Module):
    """A pre-norm transformer layer with bidirectional self-attention over the real tokens."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = PerSampleLinear(dim, 3 * dim)
        self.proj = PerSampleLinear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = PerSampleLinear(dim, int(dim * mlp_ratio))
        self.fc2 = PerSampleLinear(int(dim * mlp_ratio), dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        B, L, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, H, L, D/H)
        x = x + self.proj(a.transpose(1, 2).reshape(B, L, D))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class TextEncoder(nn.Module):
    """Base token embeddings (`base`: prompts -> (B, L, D_text), mask) + trainable layers + pooling."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.config = config
        if config.encoder == "embedded":
            from sgbench.text.words import WordEmbeddings

            self.base = WordEmbeddings(config)
        else:
            from sgbench.text.clip import OpenClipEmbeddings

            self.base = OpenClipEmbeddings(config)
        self.layers = nn.ModuleList([TextLayer(config.width, config.heads) for _ in range(config.layers)])

    def initialize_weights(self) -> None:
        """Residual branches start at zero, so every token starts as its own normalised base embedding
        (without this, GELU's positive mean gives every token one shared direction: cosine 0.9)."""
        for layer in self.layers:
            for linear in (layer.proj, layer.fc2):
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)

    def forward(self, prompts: Sequence[str]) -> TextEmbedding:
        """B prompts -> TextEmbedding with tokens (B, L, D_text), mask (B, L), pooled (B, D_text)."""
        x, mask = self.base(list(prompts))
        for layer in self.layers:
            x = layer(x, mask)
        # No final norm: the layers' outputs share a direction that grows fast (it shifts c the same
        # way for every prompt, which the blocks can use at once); a norm would shrink the prompt-
        # specific rest in proportion (measured: cosine 0.999 between prompts after 300 steps).
        keep = mask.unsqueeze(-1).to(x.dtype)
        x = x * keep
        pooled = x[:, 0] if self.config.pooling == "start" else x.sum(1) / keep.sum(1)
        return TextEmbedding(x, mask, pooled)
