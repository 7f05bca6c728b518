"""Bootstrap intervals: replicates are exactly the metric of the resampled set, in constant memory."""

import numpy as np
import pytest

from sgbench.evaluation import bootstrap
from sgbench.evaluation.fd import frechet_distance


def test_draws_are_numpys_multinomial_rows_generated_one_at_a_time():
    draws = bootstrap.counts(50, 7, seed=3)
    rows = np.stack(list(draws))
    assert len(draws) == 7 and rows.shape == (7, 50) and (rows.sum(1) == 50).all()
    np.testing.assert_array_equal(rows, np.random.default_rng(3).multinomial(50, np.full(50, 1 / 50), size=7))
    np.testing.assert_array_equal(rows, np.stack(list(draws)))  # iterating again gives the same replicates


@pytest.mark.parametrize("n,dim", [(60, 8), (20, 64), (300, 16)])  # more distinct draws than dimensions, and fewer
def test_fd_replicates_are_the_fd_of_the_resampled_rows(n, dim, monkeypatch):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(n, dim)) * 0.5 + 3).astype(np.float32)  # an offset mean, as real features have
    m = rng.normal(size=(dim, dim))
    sigma_r, mu_r = m @ m.T / dim, rng.normal(size=dim)
    draws = bootstrap.counts(n, 5, seed=1)
    want = []
    for c in draws:
        rows = np.repeat(x.astype(np.float64), c, axis=0)
        want.append(frechet_distance(rows.mean(0), np.cov(rows, rowvar=False), mu_r, sigma_r))
    got = bootstrap.fd_replicates(x, mu_r, sigma_r, draws)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    monkeypatch.setattr(bootstrap, "BLOCK", 7)  # accumulated over blocks of drawn rows: the same numbers
    np.testing.assert_allclose(bootstrap.fd_replicates(x, mu_r, sigma_r, draws), got, rtol=1e-9)


def test_mean_and_statistic_intervals_resample_per_sample_values():
    values = np.random.default_rng(0).random(40)
    draws = bootstrap.counts(40, 30)
    means = [np.repeat(values, c).mean() for c in draws]
    assert bootstrap.mean_interval(values, draws) == pytest.approx(bootstrap.percentile_interval(np.asarray(means)))
    assert bootstrap.statistic_interval(values, np.mean, draws) == pytest.approx(bootstrap.mean_interval(values, draws))


def test_stratified_replicates_draw_within_each_group_and_average_the_groups():
    rng = np.random.default_rng(1)
    groups = {"a": rng.random(9), "b": rng.random(4), "c": (rng.random(13) < 0.5)}  # GenEval's tasks are bools
    per_group, overall = bootstrap.stratified_replicates(groups, 25)
    assert list(per_group) == ["a", "b", "c"]
    for k, (name, x) in enumerate(groups.items()):  # group k resamples only itself, its draws seeded k
        want = [np.repeat(x.astype(np.float64), c).mean() for c in bootstrap.counts(len(x), 25, seed=k)]
        np.testing.assert_allclose(per_group[name], want, rtol=1e-12)
    # each replicate of the mean over groups is the unweighted mean of the groups' replicates
    np.testing.assert_allclose(overall, (per_group["a"] + per_group["b"] + per_group["c"]) / 3, rtol=1e-12)
    assert bootstrap.stratified_replicates(groups, 0) == ({}, None)
    assert bootstrap.stratified_replicates({}, 25) == ({}, None)
