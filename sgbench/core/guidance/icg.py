"""Independent condition guidance (Sadat et al., 2024)."""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.core.guidance.base import Branch, GuidanceMethod, interval_field, register, scale_field


@register
@dataclass(frozen=True)
class IndependentConditionGuidance(GuidanceMethod):
    """Independent condition guidance, "No Training, No Problem: Rethinking Classifier-Free Guidance
    for Diffusion Models" (Sadat et al., 2024).

        v = v(c_rand; 0) + w (v(c; 0) - v(c_rand; 0)),   c_rand ~ U{0..K-1} independent of c

    c_rand is drawn per sample and step from the stream `seeding.ICG_LABEL`; both branches run as one
    batched forward. Needs no null class.

    Parameters:
        scale (float, default 1.5): w; typical 1.25-3.
        interval (t_lo:t_hi, default 0:1): guidance interval; outside it only the conditional branch runs.
    """

    name = "icg"
    summary = "v(c_rand;0) + w (v(c;0) - v(c_rand;0))"

    scale: float = scale_field(typical="1.25-3", search=(1.5, 2.0, 2.5, 3.0))
    interval: tuple[float, float] = interval_field()

    def strong(self, t: float) -> Branch:
        return Branch("main", "cond", 0.0, "strong")

    def weak(self, t: float) -> Branch:
        return Branch("main", "random", 0.0, "weak")
