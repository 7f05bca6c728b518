"""Guidance methods: a registry of branches-plus-combination (docs/design.md, "Guidance").

`REGISTRY` maps each method name to its class and is the single source of truth for names (the CLI
reads its choices from it). Build a validated method with `build_guidance(name, **params)`.
"""

from sgbench.core.guidance.base import (
    REGISTRY,
    Branch,
    GuidanceMethod,
    Models,
    Schedule,
    build_guidance,
    combine,
    parse_spec,
    plan,
    run_branches,
)

# Each module registers its method on import; the order here is the order of `sgbench guidance list`.
from sgbench.core.guidance import unguided, cfg, ag, icg, apg, sg, cfg_sg, ag_sg  # noqa: E402,F401  isort: skip

__all__ = [
    "REGISTRY", "Branch", "GuidanceMethod", "Models", "Schedule",
    "build_guidance", "combine", "parse_spec", "plan", "run_branches",
]
