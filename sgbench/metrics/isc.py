"""Inception Score and class accuracy, both accumulated batch by batch from logits.

IS = exp(E_x KL(p(y|x) || p(y))) per split, mean and std over 10 contiguous splits (ADM: splits of
5,000 out of 50,000, in file order, no shuffling). Per split we only need sum_x sum_y p log p and
sum_x p(y|x), since KL summed over a split = sum p log p - sum_y (sum_x p(y|x)) log p(y).
"""

from __future__ import annotations

import numpy as np
import torch

from sgbench.errors import SgbenchError


class RunningInceptionScore:
    """IS over `splits` contiguous splits of a stream of `num_samples` logits (split k: [k N/s, (k+1) N/s))."""

    def __init__(self, num_samples: int, splits: int = 10):
        if num_samples < splits:
            raise SgbenchError(f"Expected at least {splits} samples for an IS over {splits} splits but got {num_samples}")
        self.bounds = [k * num_samples // splits for k in range(splits + 1)]
        self.seen = 0
        self.plogp = np.zeros(splits)
        self.psum: np.ndarray | None = None

    def update(self, logits: torch.Tensor) -> None:
        logits = logits.double()
        p, log_p = logits.softmax(1), logits.log_softmax(1)
        if self.psum is None:
            self.psum = np.zeros((len(self.plogp), logits.shape[1]))
        index = np.arange(self.seen, self.seen + len(logits))
        split = np.searchsorted(self.bounds, index, side="right") - 1
        for k in np.unique(split):
            rows = torch.from_numpy(split == k)
            self.plogp[k] += float((p[rows] * log_p[rows]).sum())
            self.psum[k] += p[rows].sum(0).numpy()
        self.seen += len(logits)

    def result(self) -> tuple[float, float]:
        """(mean, std) over splits."""
        sizes = np.diff(self.bounds).astype(np.float64)
        marginal = self.psum / sizes[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where(self.psum > 0, self.psum * np.log(marginal), 0.0).sum(1)
        scores = np.exp((self.plogp - cross) / sizes)
        return float(scores.mean()), float(scores.std())


class RunningClassAccuracy:
    """Fraction of samples whose argmax class equals the label they were generated for."""

    def __init__(self) -> None:
        self.correct = 0
        self.n = 0

    def update(self, logits: torch.Tensor, labels: np.ndarray) -> None:
        self.correct += int((logits.argmax(1).numpy() == labels).sum())
        self.n += len(labels)

    def result(self) -> float:
        return self.correct / self.n
