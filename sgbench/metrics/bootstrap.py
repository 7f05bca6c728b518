"""95% bootstrap intervals for every number computed from samples (docs/design.md, "Error bars").

A replicate draws N of the N samples with replacement (as multinomial counts, so no sample is copied)
and recomputes the metric from what the evaluation already has, per-sample features and predictions:
no new sampling, and the reference side is held fixed. The interval is the 2.5 and 97.5 percentiles of
the replicates. Replicates are seeded, so an evaluation's intervals are reproducible.

Precision is a mean over samples of "inside the reference manifold", so it resamples directly.
Recall counts reference points inside the *sample* manifold, whose balls depend on which samples were
drawn: a replicate uses the distinct drawn samples and their k-NN radii within that set (duplicates add
no ball). That needs the sample-sample distance matrix, so recall intervals are computed for up to
RECALL_MAX_SAMPLES samples and left out (None) beyond.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch


DEFAULT_REPLICATES = 200
RECALL_MAX_SAMPLES = 4000
LEVEL = 0.95


def counts(n: int, replicates: int, seed: int = 0) -> np.ndarray:
    """(replicates, n) multinomial draw counts, each row summing to n."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates)


def percentile_interval(values: np.ndarray) -> list[float]:
    lo, hi = np.percentile(values, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return [float(lo), float(hi)]


def fd_interval(features: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray, draws: np.ndarray) -> list[float]:
    """Interval of FD(samples, reference) over resampled samples, reference fixed.

    FD = |mu - mu_r|^2 + tr S + tr S_r - 2 tr (A S A)^(1/2) with A = S_r^(1/2), computed once. With
    Y = X A, the nonzero eigenvalues of A S A are those of the Gram matrix of the drawn, centred,
    count-weighted rows of Y, so a replicate costs one eigendecomposition of size min(distinct draws, D)
    instead of two of size D.
    """
    x = torch.from_numpy(np.asarray(features, dtype=np.float64))
    sigma_r = torch.from_numpy(np.asarray(ref_sigma, dtype=np.float64))
    mu_r = torch.from_numpy(np.asarray(ref_mu, dtype=np.float64))
    eigenvalues, vectors = torch.linalg.eigh(sigma_r)
    a = (vectors * eigenvalues.clamp_min(0).sqrt()) @ vectors.T
    y = x @ a
    trace_r = float(torch.trace(sigma_r))
    values = []
    for c in draws:
        rows = torch.from_numpy(np.flatnonzero(c))
        w = torch.from_numpy(c[rows.numpy()]).double()
        n = float(w.sum())
        mu = (w[:, None] * x[rows]).sum(0) / n
        xc, yc = x[rows] - mu, y[rows] - mu @ a
        trace = float((w * (xc * xc).sum(1)).sum()) / (n - 1)
        half = yc * (w / (n - 1)).sqrt()[:, None]  # (rows, D): A S A = half^T half
        gram = half @ half.T if len(rows) <= half.shape[1] else half.T @ half
        tr_covmean = float(torch.linalg.eigvalsh(gram).clamp_min(0).sqrt().sum())
        values.append(float(((mu - mu_r) ** 2).sum()) + trace + trace_r - 2 * tr_covmean)
    return percentile_interval(np.asarray(values))


def mean_interval(per_sample: np.ndarray, draws: np.ndarray) -> list[float]:
    """Interval of the mean of a per-sample quantity (0/1 indicators: precision, class accuracy, GenEval)."""
    return percentile_interval(draws @ np.asarray(per_sample, dtype=np.float64) / draws.shape[1])


def statistic_interval(per_sample: np.ndarray, statistic: Callable[[np.ndarray], float], draws: np.ndarray) -> list[float]:
    """Interval of any statistic of the resampled rows (e.g. the Inception Score of resampled logits)."""
    rows = [np.repeat(np.arange(draws.shape[1]), c) for c in draws]
    return percentile_interval(np.asarray([statistic(per_sample[r]) for r in rows]))


def recall_interval(ref: np.ndarray, samples: np.ndarray, draws: np.ndarray, k: int = 3) -> list[float] | None:
    """Recall over replicates: reference points inside the union of the distinct drawn samples' k-NN balls."""
    if len(samples) > RECALL_MAX_SAMPLES:
        return None
    from sgbench.metrics.prc import pairwise_sq_dists

    s = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    r = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32))
    d_ss = pairwise_sq_dists(s, s)
    d_rs = pairwise_sq_dists(r, s)
    values = []
    for c in draws:
        chosen = torch.from_numpy(np.flatnonzero(c))
        if len(chosen) <= k:
            continue
        radii = d_ss[chosen][:, chosen].topk(k + 1, dim=1, largest=False).values[:, k]
        values.append(float((d_rs[:, chosen] <= radii[None, :]).any(1).double().mean()))
    return percentile_interval(np.asarray(values))
