"""The one streaming pass over images: extractor outputs -> running statistics and kept per-sample rows.

Memory stays bounded by one batch of images plus the statistics and the kept rows: features for
precision/recall, KID and the bootstrap (N x D float32, e.g. 50,000 x 2048 = 400 MB for Inception),
and, where asked, logits (IS, class accuracy) and spatial features (sFID intervals).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sgbench.utils.errors import SgbenchError
from sgbench.evaluation.base import Extractor, to_rgb_nchw
from sgbench.evaluation.fd import RunningStats
from sgbench.utils.progress import track


@dataclass
class FeaturePass:
    stats: RunningStats = field(default_factory=RunningStats)
    spatial: RunningStats | None = None
    features: np.ndarray | None = None          # (len(keep), D) float32, rows in `keep` order
    logits: np.ndarray | None = None            # (N, K) float32, every image, when asked
    spatial_features: np.ndarray | None = None  # (N, S) float32, every image, when asked


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch size below 1 (it would stream nothing, or divide by zero) before any work starts."""
    if batch_size < 1:
        raise SgbenchError(f"Expected --batch-size >= 1 but got {batch_size}")


def stream_features(
    source,                                # ArrayImages | FolderImages | NpzImages
    extractor: Extractor,
    *,
    batch_size: int,
    keep: np.ndarray | None = None,        # sorted indices of images whose features are kept; None = all
    keep_logits: bool = False,             # keep every image's logits (IS, class accuracy)
    keep_spatial: bool = False,            # keep every image's spatial features (sFID intervals)
    description: str = "features",
) -> FeaturePass:
    n = source.num_images
    keep = np.arange(n) if keep is None else np.asarray(keep)
    out = FeaturePass(spatial=RunningStats() if extractor.has_spatial else None)
    start = 0
    batches = track(source.batches(batch_size), total=-(-n // batch_size), description=description)
    with torch.inference_mode():
        for images in batches:
            stop = start + len(images)
            y = extractor.extract(to_rgb_nchw(images))
            features = y["features"].double().numpy()
            if start == 0:  # kept rows are filled in place: per-batch pieces kept alive between the batches'
                # large temporaries fragment the heap, and memory then creeps up with the number of batches
                out.features = np.empty((len(keep), features.shape[1]), np.float32)
                out.logits = np.empty((n, y["logits"].shape[1]), np.float32) if keep_logits else None
                out.spatial_features = np.empty((n, y["spatial"].shape[1]), np.float32) if keep_spatial and out.spatial is not None else None
            out.stats.update(features)
            if out.spatial is not None:
                out.spatial.update(y["spatial"].double().numpy())
            if out.spatial_features is not None:
                out.spatial_features[start:stop] = y["spatial"].float().numpy()
            at = np.searchsorted(keep, [start, stop])  # keep is sorted: its entries in [start, stop)
            out.features[at[0] : at[1]] = features[keep[at[0] : at[1]] - start]
            if out.logits is not None:
                out.logits[start:stop] = y["logits"].float().numpy()
            start = stop
    if out.features is None:
        out.features = np.zeros((0, 0), np.float32)
    return out
