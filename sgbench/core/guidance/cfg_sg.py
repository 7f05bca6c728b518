"""Classifier-free guidance combined with sparse guidance (the paper, Eq. 8)."""

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
class CFGSparseGuidance(GuidanceMethod):
    """CFG + sparse guidance, the paper's Eq. 8: the weak branch is unconditional AND sparser.

        v = v(null; gw) + w (v(c; gs) - v(null; gw)),   0 <= gs <= gw < 1

    Unlike `sg`, gs = gw is allowed: the null condition already makes a gap, and gs = gw = 0 is
    exactly `cfg` (at gs = gw both halves run as one batched forward).

    Parameters:
        scale (float, default 1.5): w; the paper's GenEval setting uses 2.5.
        gs (schedule, default 0.2): gamma_strong; 0-0.5.
        gw (schedule, default 0.7): gamma_weak; 0.5-0.9. 0.2 / 0.7 is the paper's GenEval setting.
        interval (t_lo:t_hi, default 0:1): guidance interval; outside it only the strong branch runs.
    """

    name = "cfg+sg"
    summary = "v(null;gw) + w (v(c;gs) - v(null;gw))"

    scale: float = scale_field(typical="1.5-2.5", search=(1.5, 2.0, 2.5, 3.0))
    gs: Schedule = sparsity_field(0.2, "gamma_strong: tokens dropped in the conditional branch", "0-0.5",
                                  search=(0.0, 0.2, 0.5))
    gw: Schedule = sparsity_field(0.7, "gamma_weak: tokens dropped in the null branch (>= gs)", "0.5-0.9",
                                  search=(0.5, 0.7, 0.9))
    interval: tuple[float, float] = interval_field()

    def validate(self) -> None:
        super().validate()
        check_sparsity("gs", self.gs)
        check_sparsity("gw", self.gw)
        check_order(self.gs, self.gw, strict=False, method=self.name)

    def strong(self, t: float) -> Branch:
        return Branch("main", "cond", self.gs(t), "strong")

    def weak(self, t: float) -> Branch:
        return Branch("main", "null", self.gw(t), "weak")
