"""The feature-extractor interface shared by every metric, and the registry of extractors.

An extractor is a torch-fidelity `FeatureExtractorBase` (so torch-fidelity's own machinery can run it
under the name `sgbench-<name>`) with one more method, `extract`, that the streaming metrics use:

    extract(images uint8 (B, 3, H, W)) -> {"features": (B, D) for FD / precision / recall / KID,
                                          "logits":   (B, K) for IS and class accuracy,
                                          "spatial":  (B, S) for sFID, only when `has_spatial`}

plus the attributes `extractor_name` (the sgbench name), `weights_sha256` (of the weights file; "random-init" for tests), and
`labels_are_classes` (its logits index the dataset's class labels, so class accuracy is defined).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Protocol

import torch

from sgbench.errors import SgbenchError

RANDOM_INIT_SHA = "random-init"


class Extractor(Protocol):
    extractor_name: str
    weights_sha256: str
    has_spatial: bool
    labels_are_classes: bool

    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]: ...


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def to_rgb_nchw(images_nhwc: "np.ndarray") -> torch.Tensor:  # noqa: F821
    """uint8 (B, H, W, C) with C = 1 or 3 -> uint8 (B, 3, H, W); grayscale is replicated (torch-fidelity's input)."""
    x = torch.from_numpy(images_nhwc.copy()).permute(0, 3, 1, 2)
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x.contiguous()


def _factories() -> dict[str, Callable[..., Extractor]]:
    from sgbench.metrics.animal_classifier import AnimalExtractor
    from sgbench.metrics.inception import InceptionExtractor

    return {"animal": AnimalExtractor.create, "inception": InceptionExtractor.create}


EXTRACTOR_NAMES = ("animal", "inception")


def create_extractor(name: str, *, weights: str | Path | None = None, random_init: bool = False) -> Extractor:
    """Build a registered extractor in eval mode. `weights` overrides its default weights file;
    `random_init=True` skips loading weights altogether (tests only: its numbers mean nothing)."""
    if name not in EXTRACTOR_NAMES:
        raise SgbenchError(f"Expected an extractor in {', '.join(EXTRACTOR_NAMES)} but got '{name}'")
    return _factories()[name](weights=weights, random_init=random_init)


def register_with_torch_fidelity() -> None:
    """Make `feature_extractor="sgbench-animal"` / `"sgbench-inception"` work in torch_fidelity.calculate_metrics."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    from sgbench.metrics.animal_classifier import AnimalExtractor
    from sgbench.metrics.inception import InceptionExtractor

    for cls in (AnimalExtractor, InceptionExtractor):
        if cls.TORCH_FIDELITY_NAME not in FEATURE_EXTRACTORS_REGISTRY:
            register_feature_extractor(cls.TORCH_FIDELITY_NAME, cls)
