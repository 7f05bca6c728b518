"""Analytic FLOPs of a forward at any token sparsity, and of a guidance method per step and per image.

Conventions (docs/design.md, "FLOPs"), always labelled in output:
- `paper`: multiply-accumulates (MACs) of linear and conv layers: patch embed, timestep MLP, adaLN
  modulations (once per image), qkv/proj/MLP of every block at its token count, the final layer. The
  label embedding is a lookup (0); norms, activations, softmax and attention score matmuls are 0.
  The SG paper's Table 2 convention.
- `macs`: `paper` plus the two attention matmuls QK^T and AV (n^2 d each per block): DiT's Gflops.
- `flops`: 2 x `macs`, the convention of torch.utils.flop_counter.

Costs follow `sgbench.guidance.plan` exactly: branches batched into one forward cost the sum of their
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
from typing import Sequence

from sgbench.errors import SgbenchError
from sgbench.guidance.base import Branch, GuidanceMethod, plan
from sgbench.models.sit import ModelConfig, num_kept

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


def block_ops(n: int, width: int, heads_dim_mlp: float, cond_dim: int) -> Ops:
    """A DiT block on n tokens: qkv 3d^2 + proj d^2 + MLP 2 d h per token; adaLN 6d from cond per image."""
    hidden = int(width * heads_dim_mlp)
    per_token = 4 * width * width + 2 * width * hidden
    return Ops(n * per_token + cond_dim * 6 * width, 2 * n * n * width)


def prefix_ops(cfg: ModelConfig) -> Ops:
    """`SiT.prefix`: patch embed (conv), timestep MLP, label lookup (0), dense blocks before the route."""
    N, D = cfg.num_tokens, cfg.hidden_size
    embed = N * cfg.patch_size**2 * cfg.in_channels * D + FREQ_DIM * D + D * D
    depth = cfg.routes[0].start if cfg.routes else 0
    return Ops(embed) + depth * block_ops(N, D, cfg.mlp_ratio, D)


def suffix_ops(cfg: ModelConfig, gamma: float) -> Ops:
    """`SiT.suffix` at sparsity gamma: the rest of the blocks (at kept tokens where sparse), final layer."""
    N, D = cfg.num_tokens, cfg.hidden_size
    kept = num_kept(N, gamma)
    ops = Ops()
    if cfg.masking is not None:  # encoder at kept tokens, decoder (embed at kept) at all N
        m = cfg.masking
        width = m.decoder_width
        ops += cfg.depth * block_ops(kept, D, cfg.mlp_ratio, D)
        ops += Ops(kept * D * width + (D * 2 * D if m.embed_adaln else 0))  # embed (+ MaskDiT's adaLN)
        ops += m.decoder_depth * block_ops(N, width, cfg.mlp_ratio, D)
    else:
        width = D
        for i in range(cfg.routes[0].start if cfg.routes else 0, cfg.depth):
            routed = any(r.start <= i <= r.end for r in cfg.routes)  # route blocks are inclusive
            ops += block_ops(kept if routed else N, D, cfg.mlp_ratio, D)
    final = 2 * width * D + N * width * cfg.patch_size**2 * cfg.out_channels  # adaLN + linear (2C if learn_sigma)
    return ops + Ops(final)


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


def euler_times(steps: int) -> list[float]:
    """Where an Euler sampler from t = 0 to 1 with `steps` steps evaluates the model."""
    return [i / steps for i in range(steps)]


def cost_report(
    method: GuidanceMethod, main_config: ModelConfig, eval_times: Sequence[float], guide_config: ModelConfig | None = None
) -> dict:
    """GFLOPs of `method` under every convention, for run.json (JSON-serialisable).

    per_step: at each evaluation time, the branches that ran and the GFLOPs per image with and without
    the shared prefix. per_image: the sum over eval_times; mean_per_step: per_image / len(eval_times)
    (the paper's "GFLOPs per image per step"). delta_to_unguided: against the dense conditional model.
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
    unguided = forward_ops(main_config, 0.0) * n
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
            "shared_prefix": by_convention(shared_total * (1 / n)),
            "no_sharing": by_convention(plain_total * (1 / n)),
        },
        "unguided_per_image": by_convention(unguided),
        "delta_to_unguided_per_image": {
            "shared_prefix": by_convention(shared_total + unguided * -1),
            "no_sharing": by_convention(plain_total + unguided * -1),
        },
    }
