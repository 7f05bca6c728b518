"""95% bootstrap intervals for every number computed from samples (docs/design.md, "Error bars").

A replicate draws N of the N samples with replacement (as multinomial counts, so no sample is copied;
replicates are generated one at a time, so memory holds one row of N counts, not R x N) and
recomputes the metric from what the evaluation already has, per-sample features and predictions:
no new sampling, and the reference side is held fixed. The interval is the 2.5 and 97.5 percentiles of
the replicates. Replicates are seeded, so an evaluation's intervals are reproducible.

Precision is a mean over samples of "inside the reference manifold", so it resamples directly.
Recall counts reference points inside the *sample* manifold, whose balls depend on which samples were
drawn: a replicate uses the distinct drawn samples and their k-NN radii within that set (duplicates add
no ball). That needs the sample-sample distance matrix, so recall intervals are computed for up to
RECALL_MAX_SAMPLES samples and left out (None) beyond.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch


DEFAULT_REPLICATES = 200
RECALL_MAX_SAMPLES = 4000
LEVEL = 0.95


class Draws:
    """`replicates` rows of multinomial draw counts over n samples, each summing to n, generated one row
    at a time from `seed`: the rows of rng.multinomial(n, [1/n] * n, size=replicates), without ever
    holding them all (at 50,000 samples and 200 replicates that array is 80 MB)."""

    def __init__(self, n: int, replicates: int, seed: int = 0):
        self.n, self.replicates, self.seed = n, replicates, seed

    def __len__(self) -> int:
        return self.replicates

    def __iter__(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        p = np.full(self.n, 1.0 / self.n)
        for _ in range(self.replicates):
            yield rng.multinomial(self.n, p)


def counts(n: int, replicates: int, seed: int = 0) -> Draws:
    """The replicates' draw counts, (n,) per replicate, seeded."""
    return Draws(n, replicates, seed)


def percentile_interval(values: np.ndarray) -> list[float]:
    lo, hi = np.percentile(values, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return [float(lo), float(hi)]


def fd_interval(features: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray, draws: Draws) -> list[float]:
    """Interval of FD(samples, reference) over resampled samples, reference fixed."""
    return percentile_interval(fd_replicates(features, ref_mu, ref_sigma, draws))


BLOCK = 4096  # drawn rows per block when a replicate's moments are accumulated


def fd_replicates(features: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray, draws: Draws) -> np.ndarray:
    """FD of each replicate: features (N, D) with the draws' counts as weights, against the reference.

    FD = |mu - mu_r|^2 + tr S + tr S_r - 2 tr (A S A)^(1/2) with A = S_r^(1/2), computed once, and
    Y = (X - shift) A kept in float32 beside the features (shift: their mean, so that the moments below do
    not cancel). A replicate with m distinct draws needs one eigendecomposition of size min(m, D):
    m <= D: the m x m Gram matrix of the centred, count-weighted drawn rows of Y has the nonzero
    eigenvalues of A S A; m > D: A S A = (sum_i w_i y_i y_i^T - n ybar ybar^T) / (n - 1), accumulated in
    float64 over blocks of rows, so memory holds one block and never a copy of the drawn rows.
    """
    x = np.asarray(features, dtype=np.float32)  # the feature pass's own array, not a copy
    dim = x.shape[1]
    sigma_r = torch.from_numpy(np.asarray(ref_sigma, dtype=np.float64))
    mu_r = torch.from_numpy(np.asarray(ref_mu, dtype=np.float64))
    eigenvalues, vectors = torch.linalg.eigh(sigma_r)
    a = (vectors * eigenvalues.clamp_min(0).sqrt()) @ vectors.T
    shift = torch.from_numpy(x.mean(0, dtype=np.float64))
    y = np.empty_like(x)
    for i in range(0, len(x), BLOCK):
        y[i : i + BLOCK] = ((torch.from_numpy(x[i : i + BLOCK]).double() - shift) @ a).float().numpy()
    trace_r = float(torch.trace(sigma_r))

    def rows_of(array: np.ndarray, rows: np.ndarray, centre: torch.Tensor | None = None) -> torch.Tensor:
        block = torch.from_numpy(array[rows]).double()
        return block if centre is None else block - centre

    values = []
    for c in draws:
        rows = np.flatnonzero(c)
        w = torch.from_numpy(c[rows]).double()
        n = float(w.sum())
        if len(rows) <= dim:
            xs, ys = rows_of(x, rows, shift), rows_of(y, rows)
            mean_x, mean_y = w @ xs / n, w @ ys / n
            trace = float(w @ ((xs - mean_x) ** 2).sum(1)) / (n - 1)
            half = (ys - mean_y) * (w / (n - 1)).sqrt()[:, None]  # (m, D): A S A = half^T half
            tr_covmean = float(torch.linalg.eigvalsh(half @ half.T).clamp_min(0).sqrt().sum())
        else:
            sum_x, sum_y = torch.zeros(dim, dtype=torch.float64), torch.zeros(dim, dtype=torch.float64)
            squares, gram = 0.0, torch.zeros(dim, dim, dtype=torch.float64)
            for i in range(0, len(rows), BLOCK):
                wb, xs, ys = w[i : i + BLOCK], rows_of(x, rows[i : i + BLOCK], shift), rows_of(y, rows[i : i + BLOCK])
                sum_x += wb @ xs
                sum_y += wb @ ys
                squares += float(wb @ (xs * xs).sum(1))
                gram += (ys * wb[:, None]).T @ ys
            mean_x, mean_y = sum_x / n, sum_y / n
            trace = (squares - n * float(mean_x @ mean_x)) / (n - 1)
            covariance = (gram - n * torch.outer(mean_y, mean_y)) / (n - 1)  # A S A
            tr_covmean = float(torch.linalg.eigvalsh(covariance).clamp_min(0).sqrt().sum())
        values.append(float(((shift + mean_x - mu_r) ** 2).sum()) + trace + trace_r - 2 * tr_covmean)
    return np.asarray(values)


def mean_interval(per_sample: np.ndarray, draws: Draws) -> list[float]:
    """Interval of the mean of a per-sample quantity (0/1 indicators: precision, class accuracy, GenEval)."""
    x = np.asarray(per_sample, dtype=np.float64)
    return percentile_interval(np.asarray([c @ x for c in draws]) / draws.n)


def stratified_replicates(groups: dict[str, np.ndarray], replicates: int) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """A stratified bootstrap of a mean over groups (GenEval's tasks, HPSv3's prompt categories): per group the
    replicates of its mean, drawing within the group (the k-th group's draws seeded k), and the replicates of
    the unweighted mean over the groups, each the mean of the groups' replicates, so every replicate keeps
    the groups' weights. ({}, None) without replicates or groups."""
    if not replicates or not groups:
        return {}, None
    per_group = {}
    for k, (group, x) in enumerate(groups.items()):
        per_group[group] = np.asarray([c @ x / len(x) for c in counts(len(x), replicates, seed=k)])
    return per_group, np.mean(list(per_group.values()), axis=0)


def statistic_interval(per_sample: np.ndarray, statistic: Callable[[np.ndarray], float], draws: Draws) -> list[float]:
    """Interval of any statistic of the resampled rows (e.g. the Inception Score of resampled logits)."""
    index = np.arange(draws.n)
    return percentile_interval(np.asarray([statistic(per_sample[np.repeat(index, c)]) for c in draws]))


def recall_interval(ref: np.ndarray, samples: np.ndarray, draws: Draws, k: int = 3) -> list[float] | None:
    """Recall over replicates: reference points inside the union of the distinct drawn samples' k-NN balls."""
    if len(samples) > RECALL_MAX_SAMPLES:
        return None
    from sgbench.evaluation.prc import pairwise_sq_dists

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
