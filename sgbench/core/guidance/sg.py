"""Sparse guidance (the paper, Eq. 6-7)."""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.core.guidance.base import (
    Branch,
    GuidanceMethod,
    Schedule,
    check_order,
    check_sparsity,
    interval_field,
    register,
    scale_field,
    sparsity_field,
)


@register
@dataclass(frozen=True)
class SparseGuidance(GuidanceMethod):
    """Sparse guidance, "Sparse Guidance" (this benchmark's reference paper), Eq. 6-7.

        v = v(c; gw) + w (v(c; gs) - v(c; gw)),   0 <= gs < gw < 1   (gs, gw = gamma_strong, gamma_weak)

    BOTH branches are conditional: the guidance
    signal is the capacity gap between two token sparsities of one model. (The official TREAD sample
    code drops the class in both branches; that is a bug, not reproduced here.) The blocks before the
    first route see identical inputs in both branches and run once (shared prefix).

    Parameters:
        scale (float, default 1.5): w; the paper sweeps 1.3-1.9 for FID, 2.5 for samples.
        gs (schedule, default 0.5): gamma_strong, fraction of tokens dropped in the strong branch; 0-0.5.
        gw (schedule, default 0.9): gamma_weak; 0.6-0.95. gs 0.5 / gw 0.9 is the paper's SG_FLOPS.
        interval (t_lo:t_hi, default 0:1): guidance interval; outside it only the strong branch runs.
    Schedules: VALUE, linear:START:END or cosine:START:END over t (t = 0 noise).
    """

    name = "sg"
    summary = "v(c;gw) + w (v(c;gs) - v(c;gw))"

    scale: float = scale_field(typical="1.3-2.5", search=(1.5, 2.0, 2.5, 3.0))
    gs: Schedule = sparsity_field(0.5, "gamma_strong: tokens dropped in the strong branch", "0-0.5",
                                  search=(0.0, 0.2, 0.5))
    gw: Schedule = sparsity_field(0.9, "gamma_weak: tokens dropped in the weak branch (> gs)", "0.6-0.95",
                                  search=(0.7, 0.8, 0.9))
    interval: tuple[float, float] = interval_field()

    def validate(self) -> None:
        super().validate()
        check_sparsity("gs", self.gs)
        check_sparsity("gw", self.gw)
        check_order(self.gs, self.gw, strict=True, method=self.name)

    def strong(self, t: float) -> Branch:
        return Branch("main", "cond", self.gs(t), "strong")

    def weak(self, t: float) -> Branch:
        return Branch("main", "cond", self.gw(t), "weak")
