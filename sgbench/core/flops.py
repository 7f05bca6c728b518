"""Analytic FLOPs of a forward at any token sparsity, and of a guidance method per step and per image.

Conventions (docs/design.md, "FLOPs"), always labelled in output:
- `paper`: multiply-accumulates (MACs) of linear and conv layers: patch embed, timestep MLP, adaLN
  modulations (once per image), qkv/proj/MLP of every block at its token count, the final layer. The
  label embedding is a lookup (0); norms, activations, softmax and attention score matmuls are 0.
  The SG paper's Table 2 convention.
- `macs`: `paper` plus the two attention matmuls QK^T and AV (n^2 d each per block): DiT's Gflops.
- `flops`: 2 x `macs`, the convention of torch.utils.flop_counter.

Text models (docs/design.md, "Text-to-image"): every block's cross-attention is counted in every
forward (q and output projections per image token, k/v projections per text token, QK^T and AV of
n x L under `macs`), with the pooled-text MLP and the text-token projection in the prefix. The text
encoder runs once per image, not per step or branch (its output is reused): `text_encoder_ops`,
reported separately and added to the per-image totals, never to the per-step numbers. The empty
prompt and ICG's prompts come from the run's prompt set, encoded once per run, and add nothing per image.

Costs follow `sgbench.core.guidance.plan` exactly: branches batched into one forward cost the sum of their
images, and a prefix shared between sparsities (`SiT.prefix`: embeddings and the dense blocks before
the first route) is counted once per condition ("shared prefix") or once per branch ("no sharing").

Reproduction of Table 2 (SiT-XL/2, route 2..24 inclusive, Euler 40 steps, `paper`): dense 114.394
(paper 114.42, -0.02%), CFG 228.787 (228.84), SG 0.5/0.9 97.659 (97.67, -0.01%); DiT-XL/2 dense
118.62 under `macs` (118.6). These need: the route's end block INCLUSIVE (exclusive gives 102.9 for SG),
kept = N - floor(N gamma), and the final layer at 2C output channels (learned sigma; the model computes
them and discards half; counting C gives 114.389, equally within 0.1%). The remaining 0.02% is below
what any layer we know of accounts for (the paper's counter is not published).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Sequence

from sgbench.utils.errors import SgbenchError
from sgbench.core.guidance.base import REGISTRY, Branch, GuidanceMethod, Models, check_sparse_backbone, plan
from sgbench.models.sit import ModelConfig, num_kept
from sgbench.text.encoder import TextConfig

CONVENTIONS = ("paper", "macs", "flops")
FREQ_DIM = 256  # TimestepEmbedder's sinusoidal width


@dataclass(frozen=True)
class Ops:
    """MACs split by kind, so that every convention derives from one count."""

    linear: float = 0.0  # linear and conv MACs
    attention: float = 0.0  # QK^T and AV MACs

    def __add__(self, other: "Ops") -> "Ops":
        return Ops(self.linear + other.linear, self.attention + other.attention)

    def __mul__(self, k: float) -> "Ops":
        return Ops(self.linear * k, self.attention * k)

    __rmul__ = __mul__

    def gflops(self, convention: str = "paper") -> float:
        if convention not in CONVENTIONS:
            raise SgbenchError(f"Expected a FLOPs convention in {', '.join(CONVENTIONS)} but got '{convention}'")
        macs = self.linear + (0.0 if convention == "paper" else self.attention)
        return (2 * macs if convention == "flops" else macs) / 1e9


# ----------------------------------------------------------------------------------------------------
# Layers (MACs per image)


def block_ops(
    n: int, width: int, heads_dim_mlp: float, cond_dim: int, context: tuple[int, int] | None = None
) -> Ops:
    """A DiT block on n tokens: qkv 3d^2 + proj d^2 + MLP 2 d h per token; adaLN 6d from cond per image.

    context (L, C), text models: cross-attention to L text tokens of width C: q and proj 2 d^2 per image
    token, k and v 2 C d per text token; QK^T and AV n L d each.
    """
    hidden = int(width * heads_dim_mlp)
    per_token = 4 * width * width + 2 * width * hidden
    ops = Ops(n * per_token + cond_dim * 6 * width, 2 * n * n * width)
    if context is not None:
        L, C = context
        ops += Ops(n * 2 * width * width + L * C * 2 * width, 2 * n * L * width)
    return ops


def text_context(cfg: ModelConfig) -> tuple[int, int] | None:
    """(L, D): the text tokens every block of a text model cross-attends to, or None."""
    return (cfg.text.max_length, cfg.hidden_size) if cfg.text is not None else None


def prefix_ops(cfg: ModelConfig) -> Ops:
    """`SiT.prefix`: patch embed (conv), timestep MLP, label lookup (0) or the pooled-text MLP and the
    text-token projection, dense blocks before the route."""
    N, D = cfg.num_tokens, cfg.hidden_size
    embed = N * cfg.patch_size**2 * cfg.in_channels * D + FREQ_DIM * D + D * D
    if cfg.text is not None:
        embed += cfg.text.width * D + D * D + cfg.text.max_length * cfg.text.width * D
    depth = cfg.routes[0].start if cfg.routes else 0
    return Ops(embed) + depth * block_ops(N, D, cfg.mlp_ratio, D, text_context(cfg))


def suffix_ops(cfg: ModelConfig, gamma: float) -> Ops:
    """`SiT.suffix` at sparsity gamma: the rest of the blocks (at kept tokens where sparse), final layer."""
    N, D = cfg.num_tokens, cfg.hidden_size
    kept = num_kept(N, gamma)
    context = text_context(cfg)  # text tokens are never dropped: L in every block
    ops = Ops()
    if cfg.masking is not None:  # encoder at kept tokens, decoder (embed at kept) at all N
        m = cfg.masking
        width = m.decoder_width
        ops += cfg.depth * block_ops(kept, D, cfg.mlp_ratio, D, context)
        ops += Ops(kept * D * width + (D * 2 * D if m.embed_adaln else 0))  # embed (+ MaskDiT's adaLN)
        ops += m.decoder_depth * block_ops(N, width, cfg.mlp_ratio, D, context)
    else:
        width = D
        for i in range(cfg.routes[0].start if cfg.routes else 0, cfg.depth):
            routed = any(r.start <= i <= r.end for r in cfg.routes)  # route blocks are inclusive
            ops += block_ops(kept if routed else N, D, cfg.mlp_ratio, D, context)
    final = 2 * width * D + N * width * cfg.patch_size**2 * cfg.out_channels  # adaLN + linear (2C if learn_sigma)
    return ops + Ops(final)


def text_layer_ops(n: int, width: int, mlp_ratio: float = 4.0) -> Ops:
    """A transformer layer on n text tokens: qkv + proj 4 d^2, MLP 2 d h per token; QK^T and AV."""
    return Ops(n * (4 * width * width + 2 * width * int(width * mlp_ratio)), 2 * n * n * width)


def text_encoder_ops(text: TextConfig) -> Ops:
    """The text encoder on one prompt (`SiT.encode_text`), counted once per image.

    embedded: token lookup (0) + the trainable layers on L tokens. open_clip: the frozen tower on its
    full context (its layers, and the projection of its pooled output, which open_clip computes), the
    projection of L tokens to the trainable width, and the trainable layers.
    """
    L, w = text.max_length, text.width
    ops = text.layers * text_layer_ops(L, w)
    if text.encoder == "open_clip":
        from sgbench.text.clip import tower_config

        tower = tower_config(text.open_clip_model)
        n, W = tower["context_length"], tower["width"]
        ops += tower["layers"] * text_layer_ops(n, W, tower["mlp_ratio"])
        ops += Ops(W * tower["embed_dim"] + L * W * w)
    return ops


def forward_ops(cfg: ModelConfig, gamma: float = 0.0) -> Ops:
    return prefix_ops(cfg) + suffix_ops(cfg, gamma)


def forward_gflops(cfg: ModelConfig, gamma: float = 0.0, convention: str = "paper") -> float:
    """GFLOPs of one forward of one image at sparsity gamma."""
    return forward_ops(cfg, gamma).gflops(convention)


# ----------------------------------------------------------------------------------------------------
# Guidance: per step and per image


def step_ops(
    branches: Sequence[Branch], main: ModelConfig, guide: ModelConfig | None = None, *, shared_prefix: bool = True
) -> Ops:
    """Per-image MACs of one step that runs `branches`, executed as `guidance.plan` batches them."""
    configs = {"main": main, "guide": guide or main}
    if not shared_prefix:
        return sum((forward_ops(configs[b.model], b.sparsity) for b in branches), Ops())
    ops = Ops()
    for fwd in plan(branches):
        cfg, n = configs[fwd.model], len(fwd.conditions)
        ops += n * prefix_ops(cfg)
        for gamma in fwd.sparsities:
            ops += n * suffix_ops(cfg, gamma)
    return ops


def check_costable(
    methods: Sequence[GuidanceMethod], main_config: ModelConfig, eval_times: Sequence[float], guide_config: ModelConfig | None = None
) -> None:
    """Refuse what `sgbench sample` refuses, so that `flops` never prices a run that cannot happen: a guide
    model for methods that run none, and a token-dropping branch on a model with no routes and no masking
    (the very check sampling runs, guidance.base.check_sparse_backbone)."""
    if guide_config is not None and not any(m.needs_guide for m in methods):
        guided = [name for name, cls in REGISTRY.items() if cls.needs_guide]
        raise SgbenchError(f"--guide-model is a preset for {' and '.join(guided)}; "
                           f"{', '.join(m.name for m in methods)} run{'s' if len(methods) == 1 else ''} no guide model: drop --guide-model")
    for m in methods:
        guide = (guide_config or main_config) if m.needs_guide else None  # no guide config: the main model's architecture
        # check_sparse_backbone reads only model.config; flops has configs, not weights
        models = Models(main=SimpleNamespace(config=main_config), guide=SimpleNamespace(config=guide) if guide else None)
        check_sparse_backbone(m, models, eval_times)


def cost_report(
    method: GuidanceMethod, main_config: ModelConfig, eval_times: Sequence[float], guide_config: ModelConfig | None = None
) -> dict:
    """GFLOPs of `method` under every convention, for run.json (JSON-serialisable).

    per_step: at each evaluation time, the branches that ran and the GFLOPs per image with and without
    the shared prefix. mean_per_step: their mean (the paper's "GFLOPs per image per step").
    text_encoder_per_image: text models' encoders, once per image (the main model's, and the guide's
    for methods with a guide: its text layers are its own). per_image: the sum over eval_times plus
    the text encoders. delta_to_unguided: against the dense conditional model (with its text encoder).
    A guide_config of None means a guide of the main model's architecture (the paper's AG and SG_FID).
    """
    if not eval_times:
        raise SgbenchError("Expected at least one evaluation time but got none")
    guide = guide_config if method.needs_guide else None
    if method.needs_guide and guide is None:
        guide = main_config

    def by_convention(ops: Ops) -> dict:
        return {c: ops.gflops(c) for c in CONVENTIONS}

    steps, shared_total, plain_total = [], Ops(), Ops()
    for t in eval_times:
        branches = method.branches(t)
        shared = step_ops(branches, main_config, guide, shared_prefix=True)
        plain = step_ops(branches, main_config, guide, shared_prefix=False)
        shared_total, plain_total = shared_total + shared, plain_total + plain
        steps.append({
            "t": float(t),
            "branches": [b.__dict__ for b in branches],
            "forwards": len(plan(branches)),
            "gflops_shared_prefix": by_convention(shared),
            "gflops_no_sharing": by_convention(plain),
        })
    n = len(eval_times)
    main_text = text_encoder_ops(main_config.text) if main_config.text is not None else Ops()
    text = main_text
    if guide is not None and guide.text is not None:
        text = text + text_encoder_ops(guide.text)
    unguided = forward_ops(main_config, 0.0) * n + main_text
    steps_shared, steps_plain = shared_total, plain_total
    shared_total, plain_total = shared_total + text, plain_total + text
    return {
        "method": method.name,
        "params": method.params,
        "model": main_config.name,
        "guide_model": guide.name if guide is not None else None,
        "conventions": {
            "paper": "MACs of linear and conv layers (SG paper Table 2)",
            "macs": "paper + attention matmuls (DiT)",
            "flops": "2 x macs (torch.utils.flop_counter)",
        },
        "num_evals": n,
        "per_step": steps,
        "per_image": {"shared_prefix": by_convention(shared_total), "no_sharing": by_convention(plain_total)},
        "mean_per_step": {
            "shared_prefix": by_convention(steps_shared * (1 / n)),
            "no_sharing": by_convention(steps_plain * (1 / n)),
        },
        "text_encoder_per_image": by_convention(text),
        "unguided_per_image": by_convention(unguided),
        "delta_to_unguided_per_image": {
            "shared_prefix": by_convention(shared_total + unguided * -1),
            "no_sharing": by_convention(plain_total + unguided * -1),
        },
    }
