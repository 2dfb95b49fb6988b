"""sweep.report.stats against hand computations: t intervals, the paired t-test, Holm, Wilson."""

from __future__ import annotations

import math

import pytest

from sweep.report import stats


def test_mean_ci_needs_two_values():
    assert stats.mean_ci([]) == (pytest.approx(math.nan, nan_ok=True), pytest.approx(math.nan, nan_ok=True), 0)
    mean, half, n = stats.mean_ci([3.0])
    assert (mean, n) == (3.0, 1) and math.isnan(half)
    mean, half, n = stats.mean_ci([1.0, 2.0, 6.0, float("nan")])  # NaN is not a value
    sd = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2)
    assert (mean, n) == (3.0, 3) and half == pytest.approx(4.302652729911275 * sd / math.sqrt(3))


def test_paired_t_test_by_hand():
    arm = {0: 10.0, 1: 12.0, 2: 11.0, 3: 15.0}
    base = {0: 12.0, 1: 13.0, 2: 14.0, 4: 99.0}  # seed 3 and 4 have no partner
    result = stats.paired(arm, base)
    diffs = [-2.0, -1.0, -3.0]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    t_stat = mean / (sd / math.sqrt(3))
    from scipy.stats import t

    assert result.n == 3 and result.delta == pytest.approx(-2.0)
    assert result.p == pytest.approx(2 * t.sf(abs(t_stat), 2))
    assert result.ci == pytest.approx(t.ppf(0.975, 2) * sd / math.sqrt(3))
    one = stats.paired({0: 1.0}, {0: 2.0})
    assert one.n == 1 and math.isnan(one.p) and math.isnan(one.ci)
    constant = stats.paired({0: 1.0, 1: 2.0}, {0: 3.0, 1: 4.0})
    assert (constant.delta, constant.ci, constant.p) == (-2.0, 0.0, 0.0)


def test_holm_by_hand_and_against_statsmodels():
    # sorted p: 0.01, 0.02, 0.04 with m = 3 -> 0.03, 0.04, 0.04 (monotone), NaN passes through
    assert stats.holm([0.04, 0.01, float("nan"), 0.02]) == pytest.approx([0.04, 0.03, math.nan, 0.04], nan_ok=True)
    assert stats.holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])
    from statsmodels.stats.multitest import multipletests

    rng = __import__("numpy").random.default_rng(0)
    for m in (1, 2, 5, 12):
        p = rng.uniform(0, 0.2, m).tolist()
        assert stats.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_wilson_by_hand():
    k, n, z = 7, 20, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    share, low, high = stats.wilson(k, n)
    assert share == p and low == pytest.approx(centre - half) and high == pytest.approx(centre + half)


def test_pooled_share_counts_every_seed_with_its_own_sample_size():
    from statsmodels.stats.proportion import proportion_confint

    pooled = stats.pooled_share([(0.3, 10), (0.5, 20), (0.25, 4)])  # 3 + 10 + 1 of 34
    low, high = proportion_confint(14, 34, alpha=0.05, method="wilson")
    assert (pooled.k, pooled.n, pooled.share) == (14, 34, 14 / 34)
    assert (pooled.low, pooled.high) == (pytest.approx(low), pytest.approx(high))
    assert 0 <= pooled.low <= pooled.share <= pooled.high <= 1
    empty = stats.pooled_share([])
    assert (empty.k, empty.n) == (0, 0) and math.isnan(empty.share)
    with pytest.raises(ValueError, match="not a whole number of samples out of 10"):
        stats.pooled_share([(0.33, 10)])


def test_paired_differences_equal_up_to_rounding_have_no_spread():
    base = {0: 0.3, 1: 0.7, 2: 1.9}
    arm = {s: base[s] - 0.1 for s in base}  # the differences are not all equal in floating point
    assert len({arm[s] - base[s] for s in arm}) > 1
    result = stats.paired(arm, base)
    assert (result.delta, result.ci, result.p) == (pytest.approx(-0.1), 0.0, 0.0)
    same = stats.paired({0: 0.1 + 0.2, 1: 0.5}, {0: 0.3, 1: 0.5})
    assert math.isnan(same.p) and same.ci == 0.0
