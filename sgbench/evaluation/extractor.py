"""The registry of feature extractors (the protocol they follow is in sgbench.evaluation.base)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sgbench.utils.errors import SgbenchError
from sgbench.evaluation.animal_classifier import AnimalExtractor
from sgbench.evaluation.base import Extractor
from sgbench.evaluation.inception import InceptionExtractor

EXTRACTORS: dict[str, Callable[..., Extractor]] = {"animal": AnimalExtractor.create, "inception": InceptionExtractor.create}
EXTRACTOR_NAMES = tuple(EXTRACTORS)


def create_extractor(name: str, *, weights: str | Path | None = None, random_init: bool = False) -> Extractor:
    """Build a registered extractor in eval mode. `weights` overrides its default weights file;
    `random_init=True` skips loading weights altogether (tests only: its numbers mean nothing)."""
    if name not in EXTRACTORS:
        raise SgbenchError(f"Expected an extractor in {', '.join(EXTRACTORS)} but got '{name}'")
    return EXTRACTORS[name](weights=weights, random_init=random_init)


def register_with_torch_fidelity() -> None:
    """Make `feature_extractor="sgbench-animal"` / `"sgbench-inception"` work in torch_fidelity.calculate_metrics."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    for cls in (AnimalExtractor, InceptionExtractor):
        if cls.TORCH_FIDELITY_NAME not in FEATURE_EXTRACTORS_REGISTRY:
            register_feature_extractor(cls.TORCH_FIDELITY_NAME, cls)


register_with_torch_fidelity()  # wherever extractors can be built, torch-fidelity knows them by name too
