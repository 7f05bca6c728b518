"""Fréchet distance (FID, sFID) and the streaming Gaussian statistics it needs.

FD(N(mu1, S1), N(mu2, S2)) = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))   (Heusel et al. 2017)
(the ADM evaluator computes the same quantity with scipy.linalg.sqrtm; see `frechet_distance`).
"""

from __future__ import annotations

import numpy as np
import torch

from sgbench.utils.errors import SgbenchError


class RunningStats:
    """Mean and covariance (np.cov's unbiased estimate) accumulated batch by batch in float64.

    Sums are taken about a shift (the first batch's mean) so that large feature offsets do not cancel
    catastrophically; the result is independent of batch size up to float64 rounding.
    """

    def __init__(self) -> None:
        self.n = 0
        self.shift: np.ndarray | None = None
        self.sum: np.ndarray | None = None
        self.outer: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        """x: (B, D) features."""
        x = np.asarray(x, dtype=np.float64)
        if self.shift is None:
            self.shift = x.mean(axis=0)
            self.sum = np.zeros_like(self.shift)
            self.outer = np.zeros((x.shape[1], x.shape[1]))
        y = torch.from_numpy(x - self.shift)
        self.n += len(y)
        self.sum += y.sum(0).numpy()
        self.outer += (y.T @ y).numpy()  # torch: obeys torch.set_num_threads, like the rest of the pass

    def mu_sigma(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise SgbenchError(f"Expected at least 2 images for a covariance but got {self.n}")
        mean_y = self.sum / self.n
        sigma = (self.outer - self.n * np.outer(mean_y, mean_y)) / (self.n - 1)
        return self.shift + mean_y, sigma


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FD between two Gaussians; mu (D,), sigma (D, D) symmetric positive semi-definite.

    tr((S1 S2)^(1/2)) = sum sqrt(eig(A S2 A)) with A = S1^(1/2): S1 S2 and A S2 A share their eigenvalues,
    and the symmetric form needs only two `eigh` calls (4x faster than scipy.linalg.sqrtm at D = 2048, the
    ADM evaluator's route, with which it agrees to rounding) and no eps for singular covariances.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise SgbenchError(f"Expected statistics of equal dimension but got {mu1.shape[0]} and {mu2.shape[0]}")
    s1, s2 = torch.from_numpy(sigma1), torch.from_numpy(sigma2)
    eigenvalues, vectors = torch.linalg.eigh(s1)
    root1 = (vectors * eigenvalues.clamp_min(0).sqrt()) @ vectors.T
    tr_covmean = float(torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
