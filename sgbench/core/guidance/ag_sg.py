"""Autoguidance combined with sparse guidance (the paper's SG_FID, Sec. 4.2 and App. B.1)."""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.core.guidance.base import (
    Branch,
    GuidanceMethod,
    Schedule,
    check_sparsity,
    interval_field,
    register,
    scale_field,
    sparsity_field,
)


@register
@dataclass(frozen=True)
class AutoguidanceSparse(GuidanceMethod):
    """Autoguidance with sparsity on both models: the paper's SG_FID (FID 1.58, 173.16 GFLOPs).

        v = v_guide(c; guide_sparsity) + w (v(c; gs) - v_guide(c; guide_sparsity))

    The guide is an early checkpoint of the same run (the paper: 50k iterations) given with --guide.
    SG_FID decays the guide's sparsity with a cosine from 0.6 to 0.0 over sampling and gives the main
    model "the inverse", read here as the mirrored cosine 0.0 -> 0.6, so the two always sum to 0.6.
    Sparsity tunes the capacity gap to the guide's quality (an earlier guide wants a sparser main model,
    the paper's Fig. 7). No order between gs and guide_sparsity is required: the models differ.

    Parameters:
        scale (float, default 1.5): w; typical 1.5-2.5.
        gs (schedule, default cosine:0:0.6): main model's gamma; 0-0.6.
        guide_sparsity (schedule, default cosine:0.6:0): the guide's gamma; 0-0.6.
        interval (t_lo:t_hi, default 0:1): guidance interval; outside it only the main model runs.
    """

    name = "ag+sg"
    summary = "v_guide(c;gg) + w (v(c;gs) - v_guide(c;gg))"
    needs_guide = True

    scale: float = scale_field(typical="1.5-2.5", search=(1.5, 2.0, 2.5, 3.0))
    gs: Schedule = sparsity_field("cosine:0:0.6", "gamma of the main (strong) model", "0-0.6")
    guide_sparsity: Schedule = sparsity_field("cosine:0.6:0", "gamma of the guide (weak) model", "0-0.6")
    interval: tuple[float, float] = interval_field()

    def validate(self) -> None:
        super().validate()
        check_sparsity("gs", self.gs)
        check_sparsity("guide_sparsity", self.guide_sparsity)

    def strong(self, t: float) -> Branch:
        return Branch("main", "cond", self.gs(t), "strong")

    def weak(self, t: float) -> Branch:
        return Branch("guide", "cond", self.guide_sparsity(t), "weak")
