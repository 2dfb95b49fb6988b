"""sweep.report.stats against hand computations and independent references: t intervals, the paired t-test, the
exact sign-flip test against a brute-force enumeration of sign assignments, zero spread, d_z, the smallest detectable
effect against the noncentral t, Holm against statsmodels, Wilson."""

from __future__ import annotations

import itertools
import math

import numpy as np
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

    # 3 seeds: the sign-flip test's smallest two-sided p is 0.25, so the t-test answers
    assert result.n == 3 and result.delta == pytest.approx(-2.0) and result.test == "t"
    assert result.p == pytest.approx(2 * t.sf(abs(t_stat), 2))
    assert result.ci == pytest.approx(t.ppf(0.975, 2) * sd / math.sqrt(3))
    assert result.d_z == pytest.approx(mean / sd) and result.sd == pytest.approx(sd)
    assert stats.paired(arm, base, "less").p == pytest.approx(t.cdf(t_stat, 2))
    one = stats.paired({0: 1.0}, {0: 2.0})
    assert one.n == 1 and math.isnan(one.p) and math.isnan(one.ci) and one.test == ""
    with pytest.raises(ValueError, match="alternative 'bigger' is unknown; allowed: two-sided, greater, less"):
        stats.paired(arm, base, "bigger")


def brute_force_sign_flip(diffs, alternative):
    """p of the mean over all 2^n sign assignments, counted by hand (ties within 1e-12 count as extreme)."""
    obs = sum(diffs) / len(diffs)
    means = [sum(s * d for s, d in zip(signs, diffs)) / len(diffs)
             for signs in itertools.product((-1, 1), repeat=len(diffs))]
    tol = 1e-12
    greater = sum(m >= obs - tol for m in means) / len(means)
    less = sum(m <= obs + tol for m in means) / len(means)
    return {"greater": greater, "less": less, "two-sided": min(1.0, 2 * min(greater, less))}[alternative]


@pytest.mark.parametrize("n", [6, 7, 9])
def test_sign_flip_p_is_the_exact_enumeration(n):
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.4, 1.5):
        diffs = (rng.normal(shift, 1.0, n)).tolist()
        for alternative in stats.ALTERNATIVES:
            assert stats.sign_flip_p(diffs, alternative) == pytest.approx(brute_force_sign_flip(diffs, alternative))
    # paired() uses it where the seeds can reach alpha: 6 seeds one-sided reach 2^-6 < 0.05 / 2
    base = {s: float(s) for s in range(6)}
    arm = {s: base[s] + d for s, d in zip(range(6), [0.3, 0.1, 0.5, -0.1, 0.4, 0.2])}
    result = stats.paired(arm, base, "greater", family=2)
    assert result.test == "sign-flip"
    assert result.p == pytest.approx(brute_force_sign_flip([0.3, 0.1, 0.5, -0.1, 0.4, 0.2], "greater"))


def test_many_seeds_sample_the_sign_assignments():
    diffs = np.random.default_rng(3).normal(0.4, 1.0, stats.EXACT_MAX + 2).tolist()
    p = stats.sign_flip_p(diffs, "greater")
    assert p == stats.sign_flip_p(diffs, "greater")  # seeded
    from scipy.stats import ttest_1samp

    assert p == pytest.approx(ttest_1samp(diffs, 0, alternative="greater").pvalue, abs=0.02)  # the same question


def test_the_test_is_chosen_by_whether_the_seeds_can_reach_alpha():
    assert stats.smallest_p(6, "greater") == 2 ** -6 and stats.smallest_p(6) == 2 ** -5
    assert stats.sign_flip_allowed(6, "greater", family=2)  # 0.0156 <= 0.025
    assert not stats.sign_flip_allowed(5, "greater", family=2)  # 0.03125 > 0.025
    assert stats.sign_flip_allowed(5, "greater", family=1) and not stats.sign_flip_allowed(5, "two-sided")
    assert not stats.sign_flip_allowed(1, "greater")
    spread = {0: 0.1, 1: 0.3, 2: 0.2, 3: 0.6, 4: 0.5}
    zero = {s: 0.0 for s in spread}
    assert stats.paired(spread, zero, "greater", family=2).test == "t"
    assert stats.paired(spread, zero, "greater", family=1).test == "sign-flip"


@pytest.mark.parametrize("n", [2, 3, 6])
def test_zero_spread_gets_the_exact_p_never_zero(n):
    base = {s: 1.0 + s for s in range(n)}
    up = {s: v + 0.25 for s, v in base.items()}
    for alternative, p in (("greater", 2.0 ** -n), ("two-sided", 2.0 ** (1 - n)), ("less", 1.0)):
        result = stats.paired(up, base, alternative)
        assert (result.p, result.test, result.ci, result.d_z) == (pytest.approx(p), "sign-flip", 0.0, math.inf)
    same = stats.paired(base, dict(base), "greater")
    assert same.p == 1.0 and same.delta == 0.0 and math.isnan(same.d_z)


def test_detectable_effect_has_80_percent_power_by_the_noncentral_t():
    """The solved d_z gives power 0.8 by the closed form: P(T' > t_crit) with T' noncentral t (df n-1, nc d sqrt n)."""
    from scipy.stats import nct, t

    for n, alternative, family in ((3, "two-sided", 8), (6, "greater", 2), (10, "greater", 1), (4, "two-sided", 1)):
        d = stats.detectable_dz(n, alternative, family)
        alpha = stats.ALPHA / family
        if alternative == "greater":
            power = nct.sf(t.ppf(1 - alpha, n - 1), n - 1, d * math.sqrt(n))
        else:
            crit = t.ppf(1 - alpha / 2, n - 1)
            power = nct.sf(crit, n - 1, d * math.sqrt(n)) + nct.cdf(-crit, n - 1, d * math.sqrt(n))
        assert power == pytest.approx(0.8, abs=0.002), (n, alternative, family)  # statsmodels' solver tolerance
    assert stats.detectable_dz(3, "two-sided", 8) > 4.5  # the demo: 3 seeds, Holm over 8 arms
    assert math.isnan(stats.detectable_dz(1))
    result = stats.paired({0: 1.0, 1: 2.0, 2: 4.0}, {0: 0.0, 1: 0.0, 2: 0.0}, family=3)
    assert result.detectable == pytest.approx(stats.detectable_dz(3, "two-sided", 3) * result.sd)


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
    assert (result.delta, result.ci, result.p) == (pytest.approx(-0.1), 0.0, 0.25)  # 2 of 8 sign assignments
    same = stats.paired({0: 0.1 + 0.2, 1: 0.5}, {0: 0.3, 1: 0.5})
    assert same.p == 1.0 and same.ci == 0.0 and same.delta == 0.0
