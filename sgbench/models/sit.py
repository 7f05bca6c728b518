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

The model predicts a velocity; guidance lives in `sgbench.guidance`, never here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sgbench.errors import SgbenchError
from sgbench.text.encoder import TextConfig, TextEmbedding, TextEncoder

# ----------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Route:
    """Tokens skip blocks start..end (inclusive, 0-based); `rate` is the training drop rate."""

    start: int
    end: int
    rate: float = 0.5


@dataclass(frozen=True)
class Masking:
    """MaskDiT: drop `rate` of the tokens before the encoder; a decoder restores the full set."""

    rate: float = 0.5
    decoder_depth: int = 8
    decoder_width: int = 512
    decoder_heads: int = 16
    # MaskDiT's decoder input layer: an adaLN-modulated LayerNorm before the linear embedding (imported
    # MaskDiT checkpoints); False: the linear embedding alone (models trained by sgbench).
    embed_adaln: bool = False


@dataclass(frozen=True)
class EDM:
    """The network is EDM's F (Karras et al. 2022, Table 1): D(x; sigma) = c_skip x + c_out F(c_in x, c_noise).

    Our t maps to sigma = (1 - t) / t with x_edm = x_t / t; `SiT.forward` still returns the velocity
    v = (D - x_t) / (1 - t), written so that it is finite at t = 0 and t = 1 (see `edm_velocity`).
    c_noise = log(sigma) / 4 is infinite at t = 0 (pure noise) and t = 1: there sigma is clamped to EDM's
    sampling range [sigma_min, sigma_max], where EDM's own samplers start and end.
    """

    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0


@dataclass(frozen=True)
class ModelConfig:
    input_size: int  # spatial size of the model's input (latent or pixel), square
    in_channels: int
    patch_size: int
    hidden_size: int
    depth: int
    num_heads: int
    num_classes: int  # the null class (for guidance) gets index num_classes; 0 for a text model
    mlp_ratio: float = 4.0
    learn_sigma: bool = False  # DiT/SiT checkpoints output 2C channels; the second half is ignored
    time_scale: float = 1000.0  # t in [0, 1] is multiplied by this before the sinusoidal embedding
    routes: tuple[Route, ...] = ()
    masking: Masking | None = None
    edm: EDM | None = None  # EDM preconditioning of an imported network; None: the network is the velocity
    name: str = "custom"
    text: TextConfig | None = None  # a text-to-image model: prompts instead of classes
    # What the network's output is: "velocity" (SiT) or "data", the clean image x_hat, turned into
    # v = (x_hat - x_t) / (1 - t) (`velocity_from_data`). Predicting data is what makes pixel patches far
    # wider than the model work (JiT: Li & He 2025, "Back to Basics: Let Denoising Generative Models
    # Denoise"): clean images lie near a low-dimensional manifold, noise and velocity do not.
    prediction: str = "velocity"

    def __post_init__(self):
        validate_config(self)

    @property
    def num_tokens(self) -> int:
        return (self.input_size // self.patch_size) ** 2

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def sparsity_kind(self) -> str:
        """'routing', 'masking' or 'dense'."""
        return "masking" if self.masking is not None else ("routing" if self.routes else "dense")

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.text is None:
            del d["text"]  # class models' stored configs stay what they were
        if self.prediction == "velocity":
            del d["prediction"]  # likewise for velocity models
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["routes"] = tuple(Route(**r) for r in d.get("routes", ()))
        if d.get("masking") is not None:
            d["masking"] = Masking(**d["masking"])
        if d.get("edm") is not None:
            d["edm"] = EDM(**d["edm"])
        if d.get("text") is not None:
            d["text"] = TextConfig.from_dict(d["text"])
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise SgbenchError(f"Unknown model config keys {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


PREDICTIONS = ("velocity", "data")


def validate_config(cfg: ModelConfig) -> None:
    if cfg.prediction not in PREDICTIONS:
        raise SgbenchError(f"Unknown prediction {cfg.prediction!r}; allowed: {', '.join(PREDICTIONS)}")
    if cfg.prediction == "data" and cfg.edm is not None:
        raise SgbenchError("An EDM-preconditioned network has its own output parameterisation: prediction must be 'velocity'")
    if cfg.input_size % cfg.patch_size:
        raise SgbenchError(f"input_size {cfg.input_size} is not divisible by patch_size {cfg.patch_size}")
    if cfg.hidden_size % cfg.num_heads:
        raise SgbenchError(f"hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}")
    if cfg.routes and cfg.masking is not None:
        raise SgbenchError("A model uses either routing (routes) or masking, not both")
    if cfg.text is not None and cfg.num_classes != 0:
        raise SgbenchError(f"A text model has no classes: expected num_classes 0 but got {cfg.num_classes}")
    last_end = -1
    for r in cfg.routes:
        if not (0 <= r.start <= r.end < cfg.depth):
            raise SgbenchError(
                f"Route {r.start}..{r.end} is outside the model's blocks: expected 0 <= start <= end <= {cfg.depth - 1}"
            )
        if r.start <= last_end:
            raise SgbenchError("Routes must be in block order and must not overlap")
        last_end = r.end
        check_rate(r.rate, "route rate")
    if cfg.masking is not None:
        check_rate(cfg.masking.rate, "masking rate")
        if cfg.masking.decoder_width % cfg.masking.decoder_heads:
            raise SgbenchError("masking decoder_width must be divisible by decoder_heads")


def check_rate(gamma: float, what: str = "sparsity") -> None:
    if not (0.0 <= float(gamma) < 1.0):
        raise SgbenchError(f"Expected {what} in [0, 1) (the fraction of tokens dropped) but got {gamma}")


# ----------------------------------------------------------------------------------------------------
# Token selection


def num_kept(num_tokens: int, gamma: float) -> int:
    """kept = N - floor(N * gamma): the official TREAD router's rounding."""
    return num_tokens - math.floor(num_tokens * gamma)


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
# Batch invariance (docs/design.md, "Numerics")
#
# A sample's image must not depend on the batch it was drawn in. Per-token layers see B x N rows, and
# BLAS runs them with one kernel whatever B is; but layers on per-sample vectors (timestep, pooled
# text, adaLN modulation) see only B rows, and CPU BLAS picks its kernel by the row count: M = 1, 3
# and 10 sum the products of a row in different orders (measured on AVX-512, AVX2 and the default
# kernels), so the last bits of c, and rarely a pixel, followed the batch size. The same holds for a
# 1x1 convolution. So per-sample vectors go through one (1, K) x (K, N) product each, and patches are
# embedded as a per-token linear: fixed shapes, whatever the batch.


class PerSampleLinear(nn.Linear):
    """nn.Linear on per-sample vectors (B, K) -> (B, N), computed as B products of one row each."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.bmm(x.unsqueeze(1), self.weight.t().expand(x.shape[0], -1, -1)).squeeze(1)  # (B, N)
        return y if self.bias is None else y + self.bias.to(y.dtype)  # bf16 under autocast, as nn.Linear


class PatchEmbed(nn.Conv2d):
    """The patch embedding: a Conv2d with kernel = stride = p (its parameters and their names), computed
    as a linear over each token's p x p x C values (B, C, H, W) -> (B, N, D), N row-major."""

    def __init__(self, in_channels: int, dim: int, patch_size: int):
        super().__init__(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        p = self.kernel_size[0]
        patches = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)
        return F.linear(patches, self.weight.reshape(self.out_channels, -1), self.bias)


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


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

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
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

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
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

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
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), PerSampleLinear(cond_dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


# ----------------------------------------------------------------------------------------------------
# The model


@dataclass
class TextContext:
    """The text tokens every block of a text model cross-attends to: never sparsified."""

    tokens: torch.Tensor  # (B, L, D), projected to the model's width
    mask: torch.Tensor  # (B, L) bool, True for real tokens


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
    """v = (x_hat - x_t) / max(1 - t, MIN_DATA_DENOMINATOR): flow.velocity_from_x_hat with t clamped."""
    from sgbench.flow import velocity_from_x_hat  # imported here: sgbench.flow imports this module

    return velocity_from_x_hat(x_t, x_hat, t.clamp_max(1 - MIN_DATA_DENOMINATOR))


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
            self.context_embedder = nn.Linear(cfg.text.width, D)
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
            self.decoder_embed = nn.Linear(D, width)
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


# ----------------------------------------------------------------------------------------------------
# Presets: DiT's sizes (S, B, L, XL with patch 2, 4, 8) for ImageNet-256 latents (32x32x4) and small
# ones for the embedded Animal-MNIST benchmark (32x32x1 pixels).

SIZES = {  # name: (hidden_size, depth, num_heads)
    "S": (384, 12, 6),
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "XL": (1152, 28, 16),
}

PRESETS: dict[str, ModelConfig] = {}
for _family in ("SiT", "DiT"):
    for _size, (_d, _depth, _heads) in SIZES.items():
        for _p in (2, 4, 8):
            _name = f"{_family}-{_size}/{_p}"
            PRESETS[_name] = ModelConfig(
                input_size=32, in_channels=4, patch_size=_p, hidden_size=_d, depth=_depth, num_heads=_heads,
                num_classes=1000, learn_sigma=True, time_scale=1.0 if _family == "SiT" else 1000.0, name=_name,
            )
# Embedded benchmark: 32x32 grayscale, 10 classes, patch 4 -> 64 tokens.
PRESETS["Animal-T/4"] = ModelConfig(
    input_size=32, in_channels=1, patch_size=4, hidden_size=128, depth=8, num_heads=4, num_classes=10,
    name="Animal-T/4",
)
PRESETS["Animal-S/4"] = ModelConfig(
    input_size=32, in_channels=1, patch_size=4, hidden_size=192, depth=8, num_heads=6, num_classes=10,
    name="Animal-S/4",
)
# Embedded text-to-image benchmark: 48x48 RGB animal scenes, patch 6 -> 64 tokens (recipes/t2i/);
# the text encoder comes from the recipe (model.text).
PRESETS["Scenes-T/6"] = ModelConfig(
    input_size=48, in_channels=3, patch_size=6, hidden_size=128, depth=8, num_heads=4, num_classes=0,
    name="Scenes-T/6",
)
PRESETS["Tiny-test"] = ModelConfig(  # for tests: a few thousand parameters
    input_size=8, in_channels=1, patch_size=2, hidden_size=32, depth=4, num_heads=2, num_classes=3, name="Tiny-test",
)


def preset(name: str, /, **overrides) -> ModelConfig:
    """A preset config with fields replaced, e.g. preset('SiT-XL/2', routes=(Route(2, 24, 0.5),))."""
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise SgbenchError(f"Unknown model preset '{name}'.{hint} Available: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def parse_route(spec: str, rate: float = 0.5) -> Route:
    """'2:24' or '2:24:0.5' -> Route(2, 24, rate)."""
    parts = spec.split(":")
    try:
        if len(parts) == 2:
            return Route(int(parts[0]), int(parts[1]), rate)
        if len(parts) == 3:
            return Route(int(parts[0]), int(parts[1]), float(parts[2]))
    except ValueError:
        pass
    raise SgbenchError(f"Expected a route as START:END or START:END:RATE (blocks inclusive, 0-based) but got '{spec}'")
