"""No guidance: the conditional model at full density, v(c; 0)."""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.core.guidance.base import Branch, GuidanceMethod, register


@register
@dataclass(frozen=True)
class Unguided(GuidanceMethod):
    """The conditional velocity v(x_t, t, c; gamma = 0); one forward per step. Takes no parameters.

    For the sparse model without guidance (the paper's Fig. 4) use `sg` with scale 1: only its strong
    branch runs.
    """

    name = "unguided"
    summary = "v(c; 0)"

    def strong(self, t: float) -> Branch:
        return Branch("main", "cond", 0.0, "strong")
