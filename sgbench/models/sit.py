"""SiT/DiT backbone with token routing (TREAD) and token masking (MaskDiT).

One transformer with adaLN-Zero conditioning (Peebles & Xie, 2023) that runs at any inference-time
token sparsity gamma (docs/design.md, "Sparsity"):

- routing: for each route (start, end), blocks start..end INCLUSIVE process only the kept tokens;
  the dropped ones skip those blocks and are put back unchanged after block `end`.
- masking: dropped tokens leave the encoder for good; a decoder sees a learned mask token in their
  place (MaskDiT's encoder/decoder split).

A model imported from EDM-trained code (MaskDiT, TREAD's edm.py) keeps its network F and declares the
preconditioning in its config (`EDM`); the forward then still returns a velocity in our convention.

kept = N - floor(N * gamma) (the official TREAD router's rounding), and gamma = 0 is exactly the
dense forward. Which tokens are kept comes from one CPU generator per sample, so a sample's selection
never depends on the rest of its batch.

Conditioning is a class label (an embedding added to the timestep embedding for adaLN) or, for a text
model (`ModelConfig.text`), a prompt encoded by the model's own text encoder (`sgbench.text`):
- the pooled text embedding goes through an MLP and is added to the timestep embedding for adaLN;
- the text tokens reach the image tokens through cross-attention in every block, after self-attention
  (PixArt-alpha's layout), with the padding masked out.
Cross-attention rather than joint attention (MMDiT) because it keeps the routed token set simple: a
route or a mask gathers and scatters image tokens only, and every block, routed or not, reads the full,
unchanged text tokens as keys and values. So text tokens are never dropped, and gamma = 0 is still
exactly the dense forward. Class models have no cross-attention: their code path and parameter names
are what they were before text conditioning.

The model predicts a velocity; guidance lives in `sgbench.core.guidance`, never here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from sgbench.models.config import (  # noqa: F401  the model's configuration, importable from here as before
    EDM, PRESETS, Masking, ModelConfig, Route, check_rate, num_kept, parse_route, preset, validate_config,
)
from sgbench.models.layers import (  # noqa: F401  likewise
    DiTBlock, FinalLayer, PatchEmbed, PerSampleLinear, TimestepEmbedder, gather_tokens, modulate, scatter_tokens,
    TextContext, select_tokens, sincos_pos_embed,
)
from sgbench.text.encoder import TextEmbedding, TextEncoder
from sgbench.utils.errors import SgbenchError

# ----------------------------------------------------------------------------------------------------
# The model


@dataclass
class Prefix:
    """What every sparsity shares: tokens after the dense blocks before the first sparse one."""

    h: torch.Tensor  # (B, N, D)
    c: torch.Tensor  # (B, D) conditioning (timestep + class, or timestep + pooled text)
    next_block: int  # index of the first block not yet run
    x: torch.Tensor  # (B, C, H, W) the input x_t, for the EDM output conversion
    t: torch.Tensor  # (B,) the input t
    context: TextContext | None = None  # text models only



def edm_inputs(x: torch.Tensor, t: torch.Tensor, edm: EDM) -> tuple[torch.Tensor, torch.Tensor]:
    """EDM's network inputs at our (x_t, t): c_in x_edm = x_t / sqrt(den) and c_noise = log(sigma) / 4.

    With sigma = (1 - t) / t and x_edm = x_t / t: c_in x_edm = x_t / sqrt((1 - t)^2 + sigma_data^2 t^2).
    """
    t = t.float()
    den = (1 - t) ** 2 + edm.sigma_data**2 * t**2
    sigma = ((1 - t) / t).clamp(edm.sigma_min, edm.sigma_max)  # inf at t = 0 and 0 at t = 1 otherwise
    return x / den.sqrt().reshape(-1, 1, 1, 1).to(x.dtype), sigma.log() / 4


def edm_velocity(x: torch.Tensor, t: torch.Tensor, F_x: torch.Tensor, edm: EDM) -> torch.Tensor:
    """v = (D - x_t) / (1 - t) for D = c_skip x_edm + c_out F (EDM Table 1), simplified to be finite on [0, 1]:

    v = ((sd^2 t - (1 - t)) x_t + sd sqrt(den) F) / den,  den = (1 - t)^2 + sd^2 t^2,  sd = sigma_data.
    """
    sd = edm.sigma_data
    t = t.float().reshape(-1, 1, 1, 1)
    den = (1 - t) ** 2 + sd**2 * t**2
    return (((sd**2 * t - (1 - t)) * x.float() + sd * den.sqrt() * F_x.float()) / den).to(F_x.dtype)


# 1 - t is clamped here (JiT's choice, 0.05) so that training near t = 1 does not divide by zero. Euler
# and Heun evaluate t <= 1 - 1/steps: unclamped up to 20 steps; longer samplers meet the clamp in their
# last steps, as JiT's do.
MIN_DATA_DENOMINATOR = 0.05


def velocity_from_data(x_t: torch.Tensor, t: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """v = (x_hat - x_t) / max(1 - t, MIN_DATA_DENOMINATOR): x_hat = x_t + (1 - t) v solved for v (docs/design.md,
    "Time and flow"), with 1 - t clamped."""
    one_minus_t = (1 - t.clamp_max(1 - MIN_DATA_DENOMINATOR)).reshape(-1, *([1] * (x_t.ndim - 1))).to(x_t.dtype)
    return (x_hat - x_t) / one_minus_t


class SiT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = cfg = config
        D = cfg.hidden_size
        self.x_embedder = PatchEmbed(cfg.in_channels, D, cfg.patch_size)
        self.t_embedder = TimestepEmbedder(D, time_scale=cfg.time_scale)
        context_dim = None
        if cfg.text is None:
            self.y_embedder = nn.Embedding(cfg.num_classes + 1, D)  # last row: the null class
        else:
            self.text_encoder = TextEncoder(cfg.text)
            self.pooled_embedder = nn.Sequential(PerSampleLinear(cfg.text.width, D), nn.SiLU(), PerSampleLinear(D, D))
            self.context_embedder = PerSampleLinear(cfg.text.width, D)
            context_dim = D
        grid = cfg.input_size // cfg.patch_size
        self.register_buffer("pos_embed", sincos_pos_embed(D, grid)[None], persistent=False)
        self.blocks = nn.ModuleList([DiTBlock(D, cfg.num_heads, cfg.mlp_ratio, D, context_dim) for _ in range(cfg.depth)])
        width = D
        if cfg.masking is not None:
            m = cfg.masking
            width = m.decoder_width
            if m.embed_adaln:
                self.decoder_embed_norm = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
                self.decoder_embed_modulation = nn.Sequential(nn.SiLU(), PerSampleLinear(D, 2 * D))
            self.decoder_embed = PerSampleLinear(D, width)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
            self.register_buffer("decoder_pos_embed", sincos_pos_embed(width, grid)[None], persistent=False)
            self.decoder_blocks = nn.ModuleList(
                [DiTBlock(width, m.decoder_heads, cfg.mlp_ratio, D, context_dim) for _ in range(m.decoder_depth)]
            )
        self.final_layer = FinalLayer(width, cfg.patch_size, cfg.out_channels, D)
        self.initialize_weights()

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def initialize_weights(self) -> None:
        """DiT's initialisation: Xavier linears, zeroed adaLN modulation and output (adaLN-Zero)."""

        def basic(module):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(basic)
        w = self.x_embedder.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.bias)
        if self.config.text is None:
            nn.init.normal_(self.y_embedder.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in [*self.blocks, *getattr(self, "decoder_blocks", [])]:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
            if hasattr(block, "cross_attn"):  # zero output, as PixArt: every block starts as the identity
                nn.init.zeros_(block.cross_attn.proj.weight)
                nn.init.zeros_(block.cross_attn.proj.bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)
        if self.config.masking is not None:
            nn.init.normal_(self.mask_token, std=0.02)
        if self.config.text is not None:
            # Text enters at zero, as adaLN-Zero does: a caption-dependent shift of c that the blocks
            # cannot use yet is noise, and the jointly trained encoder then collapses to a constant
            # (measured: cosine 0.995 between the pooled embeddings of any two prompts after 2,400 steps).
            nn.init.zeros_(self.pooled_embedder[-1].weight)
            nn.init.zeros_(self.pooled_embedder[-1].bias)
            self.text_encoder.initialize_weights()

    # -- forward pieces ------------------------------------------------------------------------------

    @property
    def shared_prefix_depth(self) -> int:
        """Blocks before the first sparse one: identical at every sparsity, so computable once."""
        return self.config.routes[0].start if self.config.routes else 0

    def encode_text(self, prompts) -> TextEmbedding:
        """A text model's condition for B prompts (strings; "" is the null condition). Encode once per
        prompt and reuse the result across sampling steps and guidance branches."""
        if self.config.text is None:
            raise SgbenchError(f"Model {self.config.name} is class-conditional: it takes class labels, not prompts")
        return self.text_encoder(prompts)

    def prefix(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | TextEmbedding) -> Prefix:
        """Embed and run the dense blocks before the first route. x: (B, C, H, W), t: (B,), y: class
        labels (B,) long, or for a text model a TextEmbedding of B prompts (`encode_text`)."""
        x_in, t_in = (x, t) if self.config.edm is None else edm_inputs(x, t, self.config.edm)
        h = self.x_embedder(x_in) + self.pos_embed  # (B, N, D)
        context = None
        if self.config.text is None:
            c = self.t_embedder(t_in) + self.y_embedder(y)  # (B, D)
        else:
            c = self.t_embedder(t_in) + self.pooled_embedder(y.pooled)  # (B, D)
            context = TextContext(self.context_embedder(y.tokens), y.mask)  # (B, L, D), (B, L)
        for block in self.blocks[: self.shared_prefix_depth]:
            h = block(h, c, context)
        return Prefix(h, c, self.shared_prefix_depth, x, t, context)

    def suffix(
        self,
        prefix: Prefix,
        *,
        sparsity: float | None,
        generators: list[torch.Generator] | None = None,
        keep: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        """Everything after the shared prefix at one sparsity; returns the velocity (B, C, H, W).

        sparsity: gamma for every route / the mask; None means each route's (or the mask's) training
            rate. keep: explicit kept-token indices, overriding sparsity and generators: for masking
            one (B, K) tensor (the masked training loss needs to know it), for routing a tuple with
            one (B, K_r) tensor per route (parity with other code's token selections). Tokens are
            processed in the order given.
        """
        cfg = self.config
        h, c, context = prefix.h, prefix.c, prefix.context  # context: never sparsified
        B, N, _ = h.shape
        if cfg.masking is not None:
            gamma = cfg.masking.rate if sparsity is None else sparsity
            if keep is None and gamma > 0:
                keep = select_tokens(B, N, gamma, generators, h.device)
            if keep is not None:
                h = gather_tokens(h, keep)
            for block in self.blocks:
                h = block(h, c, context)
            if cfg.masking.embed_adaln:  # MaskDiT's decoder layer
                shift, scale = self.decoder_embed_modulation(c).chunk(2, dim=1)
                h = modulate(self.decoder_embed_norm(h), shift, scale)
            h = self.decoder_embed(h)
            if keep is not None:
                h = scatter_tokens(self.mask_token.to(h.dtype).expand(B, N, -1), keep, h)
            h = h + self.decoder_pos_embed
            for block in self.decoder_blocks:
                h = block(h, c, context)
        else:
            if keep is not None and (not isinstance(keep, (tuple, list)) or len(keep) != len(cfg.routes)):
                raise SgbenchError(f"Expected keep= as a tuple of one index tensor per route ({len(cfg.routes)}) for a routed model")
            routes = {r.start: k for k, r in enumerate(cfg.routes)}
            full, idx, route = None, None, None
            for i in range(prefix.next_block, cfg.depth):
                if i in routes:
                    route = cfg.routes[routes[i]]
                    gamma = route.rate if sparsity is None else sparsity
                    if keep is not None:
                        idx = keep[routes[i]]
                    elif gamma > 0:
                        idx = select_tokens(B, N, gamma, generators, h.device)
                    if idx is not None:
                        full, h = h, gather_tokens(h, idx)
                h = self.blocks[i](h, c, context)
                if route is not None and i == route.end:
                    if idx is not None:
                        h = scatter_tokens(full, idx, h)  # dropped tokens come back unchanged
                    full, idx, route = None, None, None
        out = self.final_layer(h, c)  # (B, N, p*p*C_out)
        out = self.unpatchify(out)[:, : cfg.in_channels]
        if cfg.edm is not None:
            return edm_velocity(prefix.x, prefix.t, out, cfg.edm)
        if cfg.prediction == "data":
            return velocity_from_data(prefix.x, prefix.t, out)
        return out

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | TextEmbedding,
        *,
        sparsity: float | None = 0.0,
        generators: list[torch.Generator] | None = None,
        keep: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        """Velocity v(x_t, t, y; gamma). x: (B, C, H, W), t: (B,) in [0, 1], y: (B,) long class labels
        or a TextEmbedding of B prompts."""
        return self.suffix(self.prefix(x, t, y), sparsity=sparsity, generators=generators, keep=keep)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, p*p*C) -> (B, C, H, W)."""
        p, g = self.config.patch_size, self.config.input_size // self.config.patch_size
        C = x.shape[-1] // (p * p)
        x = x.reshape(x.shape[0], g, g, p, p, C)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], C, g * p, g * p)
