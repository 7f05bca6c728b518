"""Solvers: Euler (default) and Heun on the uniform grid t_k = k / steps, from t = 0 (noise) to t = 1
(data) (docs/design.md, "Time and flow"). A solver only sees `velocity(x, t, eval_index)`; guidance
methods plug in there. Where a solver evaluates the model is `sgbench.core.flow.eval_times`, which the
FLOPs count sums over."""

from __future__ import annotations

from typing import Callable

import torch

from sgbench.core.flow import SOLVERS, check_solver, eval_times  # noqa: F401  the solvers' names and grid

VelocityFn = Callable[[torch.Tensor, float, int], torch.Tensor]  # (x, t, eval_index) -> v


def integrate(velocity: VelocityFn, z: torch.Tensor, *, steps: int = 40, solver: str = "euler") -> torch.Tensor:
    """Integrate from noise z at t = 0 to t = 1. Evaluation indices count 0, 1, ... in time order."""
    check_solver(solver, steps)
    x, n = z, 0
    for k in range(steps):
        t, t_next = k / steps, (k + 1) / steps
        v = velocity(x, t, n)
        n += 1
        if solver == "heun" and k < steps - 1:
            x_pred = x + (t_next - t) * v
            v_next = velocity(x_pred, t_next, n)
            n += 1
            x = x + (t_next - t) * 0.5 * (v + v_next)
        else:
            x = x + (t_next - t) * v
    return x
