"""What every feature extractor and scorer shares: the `Extractor` protocol and image layout helpers.

An extractor is a torch-fidelity `FeatureExtractorBase` (so torch-fidelity's own machinery can run it
under the name `sgbench-<name>`) with one more method, `extract`, that the streaming metrics use:

    extract(images uint8 (B, 3, H, W)) -> {"features": (B, D) for FD / precision / recall / KID,
                                          "logits":   (B, K) for IS and class accuracy,
                                          "spatial":  (B, S) for sFID, only when `has_spatial`}

plus the attributes `extractor_name` (the sgbench name), `weights_sha256` (of the weights file;
RANDOM_INIT_SHA for tests), `num_classes` and `labels_are_classes` (its logits index the dataset's class
labels, so class accuracy is defined).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

RANDOM_INIT_SHA = "random-init"


class Extractor(Protocol):
    extractor_name: str
    weights_sha256: str
    has_spatial: bool
    labels_are_classes: bool
    num_classes: int

    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]: ...


def to_rgb_nchw(images_nhwc: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, C) with C = 1 or 3 -> uint8 (B, 3, H, W); grayscale is replicated (torch-fidelity's input)."""
    x = torch.from_numpy(images_nhwc.copy()).permute(0, 3, 1, 2)
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x.contiguous()
