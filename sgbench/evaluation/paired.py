"""Paired comparisons between runs of one board (docs/design.md, "Paired comparisons").

Every run of a board draws sample i's noise, label or prompt and token selections from the same
per-sample streams, so run A's sample i and run B's sample i share their randomness. The difference of
a statistic between the two runs then varies far less than either statistic, and is estimated by a
paired bootstrap: each replicate draws ONE set of sample indices (`bootstrap.Draws`, seeded) and
evaluates both runs on it, the reference side held fixed (Efron & Tibshirani 1993, ch. 13-14).

    delta  = stat(A) - stat(B)
    delta* = stat(A[draw]) - stat(B[draw])  for each replicate's draw
    interval = the 2.5 and 97.5 percentiles of delta*

Comparing k rows with the best row is k - 1 tests; Holm's step-down procedure (Holm 1979) controls the
family-wise error rate at `alpha` without assuming the tests independent (they are not: every row is
compared with the same best row). A bootstrap p-value for "delta = 0" is twice the smaller tail of
delta* beyond 0 (the percentile interval's own duality: p < 0.05 exactly when the 95% interval
excludes 0).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sgbench.evaluation.bootstrap import LEVEL, percentile_interval
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import atomic_savez


@dataclass(frozen=True)
class PairedDifference:
    """stat(A) - stat(B) with its paired bootstrap interval and two-sided p-value for 'no difference'."""

    delta: float
    lo: float
    hi: float
    p_value: float

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def paired_difference(value_a: float, value_b: float, replicates_a: np.ndarray, replicates_b: np.ndarray) -> PairedDifference:
    """The paired difference from the two runs' replicates computed on the SAME draws (the same
    `bootstrap.Draws`, same n and seed): replicates_a[r] and replicates_b[r] share draw r."""
    a, b = np.asarray(replicates_a, np.float64), np.asarray(replicates_b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"Expected two equal-length 1-D replicate arrays but got {a.shape} and {b.shape}")
    deltas = a - b
    lo, hi = percentile_interval(deltas)
    return PairedDifference(float(value_a - value_b), lo, hi, bootstrap_p_value(deltas))


def bootstrap_p_value(deltas: np.ndarray) -> float:
    """Two-sided p-value of 'delta = 0' from the replicates: 2 min(P(delta* <= 0), P(delta* >= 0)), at
    most 1. With R replicates the smallest value it can take is about 2 / R."""
    deltas = np.asarray(deltas, np.float64)
    below, above = float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))
    return min(1.0, 2.0 * min(below, above))


def holm(p_values: Sequence[float], alpha: float = 1 - LEVEL) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected at family-wise error `alpha`. The i-th smallest
    p-value (i = 0, 1, ...) is compared with alpha / (m - i); testing stops at the first that fails."""
    order = np.argsort(p_values, kind="stable")
    m, rejected = len(p_values), [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def paired_tiers(values: Sequence[float], replicates: Sequence[np.ndarray], *, lower_is_better: bool, alpha: float = 1 - LEVEL) -> list[int]:
    """Tiers of rows from paired comparisons: tier 1 is the best row and every row that Holm's procedure
    cannot separate from it; tier 2 the same among the rows left, and so on. `replicates[k]` are row k's
    bootstrap values, all on the same draws."""
    if len(values) != len(replicates):
        raise ValueError("Expected one replicate array per row")
    sign = 1.0 if lower_is_better else -1.0
    tiers = [0] * len(values)
    left, tier = list(range(len(values))), 1
    while left:
        best = min(left, key=lambda k: sign * values[k])
        others = [k for k in left if k != best]
        p = [paired_difference(values[k], values[best], replicates[k], replicates[best]).p_value for k in others]
        worse = {k for k, rejected in zip(others, holm(p, alpha)) if rejected}
        for k in left:
            if k not in worse:
                tiers[k] = tier
        left, tier = sorted(worse), tier + 1
    return tiers


def check_pairable(name_a: str, per_sample_a: dict[str, np.ndarray], name_b: str, per_sample_b: dict[str, np.ndarray]) -> None:
    """Two runs can be paired only when sample i is the same draw in both: the same number of samples
    and equal per-sample conditions (labels or prompt indices) and seeds. A one-line refusal otherwise."""
    for key in sorted(set(per_sample_a) | set(per_sample_b)):
        a, b = per_sample_a.get(key), per_sample_b.get(key)
        if a is None or b is None or np.shape(a) != np.shape(b) or not np.array_equal(a, b):
            raise SgbenchError(
                f"Cannot pair {name_a} with {name_b}: their samples differ in '{key}' (paired comparisons need the same "
                "seed, sample count and labels or prompts, so that sample i shares its noise and condition)"
            )


# ----------------------------------------------------------------------------------------------------
# What a paired FD needs from a run: its per-sample features (docs/design.md, "Paired comparisons")

PER_SAMPLE_DIR = "evaluation"


def per_sample_path(run_dir: str | Path, extractor: str) -> Path:
    """RUN/evaluation/<extractor>.npz: the features `eval fid` computed for each sample of the run."""
    return Path(run_dir) / PER_SAMPLE_DIR / f"{extractor}.npz"


def write_per_sample(run_dir: str | Path, name: str, arrays: dict[str, np.ndarray], *, weights_sha256: str,
                     samples_sha256: str) -> Path:
    """Store per-sample arrays in sample order (eval fid: 'features' float32 and, with labels, 'correct';
    GenEval: each image's 'correct' and 'task') atomically as RUN/evaluation/<name>.npz, bound to the
    samples' sha256 and the weights (extractor or judge) that computed them."""
    path = per_sample_path(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"extractor": name, "weights_sha256": weights_sha256, "samples_sha256": samples_sha256}
    atomic_savez(path, **{k: np.asarray(v) for k, v in arrays.items()}, meta=np.asarray([json.dumps(meta, sort_keys=True)]))
    return path


def read_per_sample(run_dir: str | Path, extractor: str, *, weights_sha256: str | None,
                    samples_sha256: str | None) -> dict[str, np.ndarray] | None:
    """The run's per-sample arrays ('features', and 'correct' where stored), or None when the file is
    missing, unreadable or stale: written for other samples or by other extractor weights is never used."""
    path = per_sample_path(run_dir, extractor)
    if not path.is_file():
        return None
    try:
        with np.load(path) as f:
            meta = json.loads(str(f["meta"].reshape(-1)[0]))
            if meta != {"extractor": extractor, "weights_sha256": weights_sha256, "samples_sha256": samples_sha256}:
                return None
            return {k: f[k] for k in f.files if k != "meta"}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
