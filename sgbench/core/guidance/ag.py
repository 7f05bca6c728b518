"""Autoguidance (Karras et al., 2024)."""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.core.guidance.base import Branch, GuidanceMethod, interval_field, register, scale_field


@register
@dataclass(frozen=True)
class Autoguidance(GuidanceMethod):
    """Autoguidance, "Guiding a Diffusion Model with a Bad Version of Itself" (Karras et al., 2024).

        v = v_guide(c; 0) + w (v(c; 0) - v_guide(c; 0))

    The guide is a smaller or less trained checkpoint (option --guide) with the same inputs and classes;
    EDM2 recommends about 1/16 of the main model's training. Same condition in both branches.

    Parameters:
        scale (float, default 1.5): w; typical 1.5-3.
        interval (t_lo:t_hi, default 0:1): guidance interval; outside it only the main model runs.
    """

    name = "ag"
    summary = "v_guide(c;0) + w (v(c;0) - v_guide(c;0))"
    needs_guide = True

    scale: float = scale_field(typical="1.5-3", search=(1.5, 2.0, 2.5, 3.0))
    interval: tuple[float, float] = interval_field()

    def strong(self, t: float) -> Branch:
        return Branch("main", "cond", 0.0, "strong")

    def weak(self, t: float) -> Branch:
        return Branch("guide", "cond", 0.0, "weak")
