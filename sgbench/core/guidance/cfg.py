"""Classifier-free guidance (Ho & Salimans, 2022)."""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.core.guidance.base import Branch, GuidanceMethod, interval_field, register, scale_field


@register
@dataclass(frozen=True)
class ClassifierFreeGuidance(GuidanceMethod):
    """Classifier-free guidance, "Classifier-Free Diffusion Guidance" (Ho & Salimans, 2022); paper Eq. 3.

        v = v(null; 0) + w (v(c; 0) - v(null; 0))

    Both halves run as one batched forward. All latent channels are guided (DiT/SiT's reference
    samplers guide only 3 of 4).

    Parameters:
        scale (float, default 1.5): w; typical 1.25-4 (SiT-XL/2 FID is best near 1.5).
        interval (t_lo:t_hi, default 0:1): guidance interval (Kynkaanniemi et al., 2024); outside it only
            the conditional branch runs.
    """

    name = "cfg"
    summary = "v(null;0) + w (v(c;0) - v(null;0))"

    scale: float = scale_field(typical="1.25-4", search=(1.5, 2.0, 2.5, 3.0, 4.0))
    interval: tuple[float, float] = interval_field()

    def strong(self, t: float) -> Branch:
        return Branch("main", "cond", 0.0, "strong")

    def weak(self, t: float) -> Branch:
        return Branch("main", "null", 0.0, "weak")
