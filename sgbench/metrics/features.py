"""The one streaming pass over images: extractor outputs -> running statistics (and kept features).

Memory stays bounded by one batch of images plus the statistics and the kept feature rows (for
precision/recall and KID: N x D float32, e.g. 50,000 x 2048 = 400 MB for Inception).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sgbench.metrics.extractor import Extractor, to_rgb_nchw
from sgbench.metrics.fd import RunningStats
from sgbench.metrics.isc import RunningClassAccuracy, RunningInceptionScore
from sgbench.metrics.progress import track


@dataclass
class FeaturePass:
    stats: RunningStats = field(default_factory=RunningStats)
    spatial: RunningStats | None = None
    features: np.ndarray | None = None  # (len(keep), D) float32, rows in `keep` order
    inception_score: RunningInceptionScore | None = None
    class_accuracy: RunningClassAccuracy | None = None


def stream_features(
    source,                                # ArrayImages | FolderImages | NpzImages
    extractor: Extractor,
    *,
    batch_size: int,
    keep: np.ndarray | None = None,        # sorted indices of images whose features are kept; None = all
    labels: np.ndarray | None = None,      # requested classes -> class accuracy (extractor.labels_are_classes)
    inception_score: bool = False,
    description: str = "features",
) -> FeaturePass:
    n = source.num_images
    keep = np.arange(n) if keep is None else np.asarray(keep)
    out = FeaturePass(spatial=RunningStats() if extractor.has_spatial else None)
    if inception_score:
        out.inception_score = RunningInceptionScore(n)
    if labels is not None:
        out.class_accuracy = RunningClassAccuracy()
    kept: list[np.ndarray] = []
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
            rows = keep[(keep >= start) & (keep < stop)] - start
            if len(rows):
                kept.append(features[rows].astype(np.float32))
            if out.inception_score is not None:
                out.inception_score.update(y["logits"])
            if out.class_accuracy is not None:
                out.class_accuracy.update(y["logits"], labels[start:stop])
            start = stop
    dim = out.stats.sum.shape[0] if out.stats.sum is not None else 0
    out.features = np.concatenate(kept) if kept else np.zeros((0, dim), np.float32)
    return out
