"""The one streaming pass over images: extractor outputs -> running statistics and kept per-sample rows.

Memory stays bounded by one batch of images plus the statistics and the kept rows: features for
precision/recall, KID and the bootstrap (N x D float32, e.g. 50,000 x 2048 = 400 MB for Inception),
and, where asked, logits (IS, class accuracy) and spatial features (sFID intervals).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sgbench.metrics.base import Extractor, to_rgb_nchw
from sgbench.metrics.fd import RunningStats
from sgbench.progress import track


@dataclass
class FeaturePass:
    stats: RunningStats = field(default_factory=RunningStats)
    spatial: RunningStats | None = None
    features: np.ndarray | None = None          # (len(keep), D) float32, rows in `keep` order
    logits: np.ndarray | None = None            # (N, K) float32, every image, when asked
    spatial_features: np.ndarray | None = None  # (N, S) float32, every image, when asked


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
    kept, logits, spatial = [], [], []
    start = 0
    batches = track(source.batches(batch_size), total=-(-n // batch_size), description=description)
    with torch.inference_mode():
        for images in batches:
            stop = start + len(images)
            y = extractor.extract(to_rgb_nchw(images))
            features = y["features"].double().numpy()
            out.stats.update(features)
            if out.spatial is not None:
                out.spatial.update(y["spatial"].double().numpy())
                if keep_spatial:
                    spatial.append(y["spatial"].float().numpy())
            rows = keep[(keep >= start) & (keep < stop)] - start
            if len(rows):
                kept.append(features[rows].astype(np.float32))
            if keep_logits:
                logits.append(y["logits"].float().numpy())
            start = stop
    dim = out.stats.sum.shape[0] if out.stats.sum is not None else 0
    out.features = np.concatenate(kept) if kept else np.zeros((0, dim), np.float32)
    out.logits = np.concatenate(logits) if logits else None
    out.spatial_features = np.concatenate(spatial) if spatial else None
    return out
