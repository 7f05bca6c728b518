"""Inception Score (Salimans et al. 2016) of a set of logits, as ADM and torch-fidelity compute it.

IS = exp(E_x KL(p(y|x) || p(y))), mean and std over 10 contiguous splits in file order (ADM: splits of
5,000 out of 50,000, no shuffling). With another extractor (the `animal` classifier) the same formula
runs on its logits, so the value is bounded by its class count.
"""

from __future__ import annotations

import numpy as np
import torch

from sgbench.utils.errors import SgbenchError

SPLITS = 10


def inception_score(logits: np.ndarray, splits: int = SPLITS) -> tuple[float, float]:
    """(mean, std) over `splits` contiguous splits of logits (N, K); split k is rows [k N/s, (k+1) N/s)."""
    n = len(logits)
    if n < splits:
        raise SgbenchError(f"Expected at least {splits} samples for an IS over {splits} splits but got {n}")
    log_p = torch.from_numpy(np.asarray(logits, dtype=np.float64)).log_softmax(1)
    bounds = [k * n // splits for k in range(splits + 1)]
    scores = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lp = log_p[lo:hi]
        log_marginal = torch.logsumexp(lp, 0) - np.log(hi - lo)
        kl = (lp.exp() * (lp - log_marginal)).sum(1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))
