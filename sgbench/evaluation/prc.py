"""Improved precision and recall (Kynkäänniemi et al. 2019) with k = 3, as the ADM evaluator computes them.

Each set's manifold is the union of balls around its points, radius = distance to the k-th nearest
neighbour within the set (the point itself is neighbour 0). Precision = fraction of samples inside the
reference manifold; recall = fraction of reference points inside the sample manifold. Distances are
squared Euclidean, blockwise (ADM computes them in float16 when finite; we use float32 throughout).
"""

from __future__ import annotations

import numpy as np
import torch

BLOCK = 2048  # rows/columns per distance block (ADM: 10,000); only memory and speed depend on it


def pairwise_sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of a (M, D) and b (N, D) -> (M, N)."""
    d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return d.clamp_min_(0)


def manifold_radii(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Squared distance of each row to its k-th nearest neighbour in `features` (N, D) -> (N,).

    Each block of rows keeps its k + 1 smallest distances while the column blocks stream past, so
    memory is (BLOCK, BLOCK) whatever N (50,000 samples would need 400 MB per row block otherwise).
    """
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    if len(x) <= k:
        raise ValueError(f"Expected more than k={k} feature vectors but got {len(x)}")
    radii = torch.empty(len(x))
    for i in range(0, len(x), BLOCK):
        nearest = None  # (rows, <= k + 1) smallest distances so far
        for j in range(0, len(x), BLOCK):
            d = pairwise_sq_dists(x[i : i + BLOCK], x[j : j + BLOCK])
            d = d if nearest is None else torch.cat([nearest, d], dim=1)
            nearest = d.topk(min(k + 1, d.shape[1]), dim=1, largest=False).values
        radii[i : i + BLOCK] = nearest[:, k]  # index 0 is the point itself
    return radii.numpy()


def precision_recall(ref: np.ndarray, samples: np.ndarray, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of `samples` (N2, D) against `ref` (N1, D)."""
    inside, recalled = manifold_membership(ref, samples, k)
    return float(inside.double().mean()), float(recalled.double().mean())


def manifold_membership(ref: np.ndarray, samples: np.ndarray, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: inside the reference manifold (N2,) bool; per reference point: inside the sample manifold (N1,)."""
    ref_radii, sample_radii = torch.from_numpy(manifold_radii(ref, k)), torch.from_numpy(manifold_radii(samples, k))
    r = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32))
    s = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    sample_in = torch.zeros(len(s), dtype=torch.bool)  # inside some ref ball -> precise
    ref_in = torch.zeros(len(r), dtype=torch.bool)  # inside some sample ball -> recalled
    for i in range(0, len(r), BLOCK):
        for j in range(0, len(s), BLOCK):
            d = pairwise_sq_dists(r[i : i + BLOCK], s[j : j + BLOCK])  # (ref block, sample block)
            sample_in[j : j + BLOCK] |= (d <= ref_radii[i : i + BLOCK, None]).any(0)
            ref_in[i : i + BLOCK] |= (d <= sample_radii[None, j : j + BLOCK]).any(1)
    return sample_in, ref_in
