"""Flow matching: interpolant, conversions and training losses (docs/design.md, "Time and flow"; paper Eq. 1-2).

t in [0, 1], t = 0 is noise and t = 1 is data:  x_t = (1 - t) z + t x,  target v* = x - z.
Data estimate x_hat = x_t + (1 - t) v.
"""

from __future__ import annotations

import torch

from sgbench.models.sit import num_kept, select_tokens
from sgbench.utils.errors import SgbenchError


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def interpolate(x: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) z + t x (Eq. 1)."""
    t = _bcast(t, x)
    return (1 - t) * z + t * x


def target_velocity(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """v* = x - z (Eq. 2)."""
    return x - z


def x_hat_from_velocity(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Data estimate x_hat = x_t + (1 - t) v."""
    return x_t + (1 - _bcast(t, x_t)) * v


def velocity_from_x_hat(x_t: torch.Tensor, x_hat: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Inverse of x_hat_from_velocity; undefined at t = 1, where the samplers never evaluate it."""
    return (x_hat - x_t) / (1 - _bcast(t, x_t))


def _unwrap(model):
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


def flow_matching_loss(
    model, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, t: torch.Tensor,
    *, sparsity: float | None = None, generators: list[torch.Generator] | None = None,
) -> torch.Tensor:
    """Plain flow matching: E ||v_theta(x_t, t, y) - (x - z)||^2, mean over pixels and batch.

    Used for dense and routed models (routing needs no auxiliary loss, TREAD / paper App. C).
    sparsity=None trains each route at its own rate; z (noise) and t (B,) come from the caller so
    that every sample's randomness can be seeded per sample.
    """
    v = model(interpolate(x, z, t), t, y, sparsity=sparsity, generators=generators)
    return (v.float() - target_velocity(x, z).float()).pow(2).mean()


def token_mask_to_pixels(keep: torch.Tensor, num_tokens: int, patch_size: int, grid: int) -> torch.Tensor:
    """Kept-token indices (B, K) -> visible-pixel mask (B, 1, grid*p, grid*p), 1 where visible."""
    B = keep.shape[0]
    visible = torch.zeros(B, num_tokens, device=keep.device)
    visible.scatter_(1, keep, 1.0)
    visible = visible.reshape(B, 1, grid, grid)
    return visible.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)


def masked_flow_matching_loss(
    model, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, t: torch.Tensor,
    *, mae_weight: float = 1.0, generators: list[torch.Generator] | None = None,
) -> torch.Tensor:
    """MaskDiT's objective under flow matching (paper App. C, Eq. A4).

    L = ||(1 - M) * (v - v*)||^2 + lambda * (1 - t)^2 ||M * (v - v*)||^2, with M = 1 on masked tokens.
    The second term is the MAE reconstruction ||M * (x_hat - x)||^2 of Eq. A1, since
    x_hat - x = x_t + (1 - t) v - x = (1 - t)(v - v*). (Eq. A3 as printed drops the target v*; the
    derivation from A1 keeps it.) Each term is averaged over its own pixels.
    """
    cfg = _unwrap(model).config
    assert cfg.masking is not None, "masked loss needs a masking model"
    B, N = x.shape[0], cfg.num_tokens
    keep = select_tokens(B, N, cfg.masking.rate, generators, x.device)
    v = model(interpolate(x, z, t), t, y, keep=keep)
    err = (v.float() - target_velocity(x, z).float()).pow(2)
    visible = token_mask_to_pixels(keep, N, cfg.patch_size, cfg.input_size // cfg.patch_size)
    masked = 1 - visible
    fm = (err * visible).sum() / (visible.sum() * x.shape[1])
    if num_kept(N, cfg.masking.rate) == N:
        return fm
    mae = ((1 - _bcast(t, x)) ** 2 * err * masked).sum() / (masked.sum() * x.shape[1])
    return fm + mae_weight * mae


# ----------------------------------------------------------------------------------------------------
# The sampling grid: Euler (default) and Heun on t_k = k / steps. The solvers (sgbench.sampling.solvers)
# integrate on it and the FLOPs count (sgbench.core.flops) sums over the same evaluation times.

SOLVERS = ("euler", "heun")


def eval_times(steps: int, solver: str = "euler") -> list[float]:
    """The times at which the solver evaluates the velocity (what the FLOPs count sums over)."""
    check_solver(solver, steps)
    ts = [k / steps for k in range(steps)]
    if solver == "euler":
        return ts
    # Heun: a corrector at t_{k+1} for every step but the last (t = 1 is never evaluated, as in EDM).
    out = []
    for k in range(steps):
        out.append(ts[k])
        if k < steps - 1:
            out.append((k + 1) / steps)
    return out


def check_solver(solver: str, steps: int) -> None:
    if solver not in SOLVERS:
        raise SgbenchError(f"Unknown solver '{solver}'; expected one of {', '.join(SOLVERS)}")
    if steps < 1:
        raise SgbenchError(f"Expected --steps >= 1 but got {steps}")
