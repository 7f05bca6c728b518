"""Paired comparisons are calibrated: equal methods separate about 5% of the time (A/A), and a known
shift that separate intervals cannot see is detected (docs/design.md, "Paired comparisons")."""

import numpy as np
import pytest

from sgbench.evaluation.bootstrap import Draws, fd_replicates, percentile_interval
from sgbench.evaluation.paired import bootstrap_p_value, check_pairable, holm, paired_difference, paired_tiers
from sgbench.utils.errors import SgbenchError

N, REPLICATES, EXPERIMENTS = 200, 200, 1000
NOISE = 0.3  # per-run noise around each sample's shared quality (variance 1): the runs are strongly paired


def paired_runs(rng, shift=0.0):
    """Per-sample scores of two runs sharing each sample's randomness (noise, label): x_i + e_i."""
    shared = rng.standard_normal(N)
    return shared + NOISE * rng.standard_normal(N), shared + NOISE * rng.standard_normal(N) + shift


def mean_replicates(scores, draws):
    return np.asarray([c @ scores for c in draws]) / draws.n


def counts(seed):
    """The replicates' draws at once (the rows `bootstrap.Draws(N, REPLICATES, seed)` yields one by one)."""
    return np.stack(list(Draws(N, REPLICATES, seed=seed)))


def rates(shift):
    """(how often the paired interval excludes 0, how often the separate intervals do not overlap)."""
    rng = np.random.default_rng(0)
    paired = separate = 0
    for e in range(EXPERIMENTS):
        a, b = paired_runs(rng, shift)
        c = counts(e)
        ra, rb = c @ a / N, c @ b / N
        paired += paired_difference(a.mean(), b.mean(), ra, rb).excludes_zero
        (a_lo, a_hi), (b_lo, b_hi) = percentile_interval(ra), percentile_interval(rb)
        separate += a_hi < b_lo or b_hi < a_lo
    return paired / EXPERIMENTS, separate / EXPERIMENTS


def test_equal_methods_separate_about_five_percent_of_the_time():
    paired, _ = rates(0.0)
    assert 0.02 <= paired <= 0.08, paired


def test_a_known_shift_is_seen_by_pairing_where_separate_intervals_overlap():
    paired, separate = rates(0.15)  # about 5 paired standard errors, about 1 unpaired interval half-width
    assert paired >= 0.95 and separate <= 0.2, (paired, separate)


def test_paired_fd_interval_is_narrower_than_either_runs_own():
    rng = np.random.default_rng(1)
    shared = rng.standard_normal((N, 8))  # features of strongly paired runs (same noise, label: similar images)
    a, b = shared + 0.1 * rng.standard_normal((N, 8)), shared + 0.1 * rng.standard_normal((N, 8)) + 0.05
    ref = rng.standard_normal((2000, 8))
    mu, sigma = ref.mean(0), np.cov(ref, rowvar=False)
    draws = Draws(N, REPLICATES, seed=3)
    ra, rb = fd_replicates(a, mu, sigma, draws), fd_replicates(b, mu, sigma, draws)
    d = paired_difference(ra.mean(), rb.mean(), ra, rb)
    own = min(np.subtract(*percentile_interval(ra)[::-1]), np.subtract(*percentile_interval(rb)[::-1]))
    assert d.hi - d.lo < own / 2


def test_p_value_and_interval_agree_and_holm_steps_down():
    deltas = np.linspace(-0.1, 1.9, 201)  # 11 of 201 replicates at or below 0
    assert bootstrap_p_value(deltas) == pytest.approx(2 * 11 / 201)
    assert bootstrap_p_value(deltas) > 0.05 and paired_difference(1.0, 0.0, deltas, np.zeros(201)).lo < 0  # both say: a tie
    assert holm([0.01, 0.04, 0.03], alpha=0.05) == [True, False, False]  # 0.01 <= 0.05/3; 0.03 > 0.05/2 stops
    assert holm([0.001, 0.02, 0.04], alpha=0.05) == [True, True, True]


def test_tiers_follow_paired_separations():
    rng = np.random.default_rng(2)
    shared = rng.standard_normal(N)
    rows = [shared + NOISE * rng.standard_normal(N) + s for s in (0.0, 0.01, 0.3, 0.31)]  # lower is better
    draws = Draws(N, REPLICATES, seed=0)
    reps = [mean_replicates(r, draws) for r in rows]
    assert paired_tiers([r.mean() for r in rows], reps, lower_is_better=True) == [1, 1, 2, 2]


def test_runs_that_do_not_share_their_draws_are_not_paired():
    check_pairable("a", {"labels": np.arange(4)}, "b", {"labels": np.arange(4)})
    with pytest.raises(SgbenchError, match=r"Cannot pair a with b: their samples differ in 'labels'"):
        check_pairable("a", {"labels": np.arange(4)}, "b", {"labels": np.arange(1, 5)})
    with pytest.raises(SgbenchError, match=r"differ in 'prompt_index'"):
        check_pairable("a", {"prompt_index": np.zeros(4)}, "b", {"prompt_index": np.zeros(5)})
