"""The statistics of a sweep's comparisons: means with t intervals over seeds, paired tests against a baseline, and
Holm's correction across the arms of a group. scipy does the maths (Holm is written out; see `holm`).

Seeds are the unit of replication. An interval needs two seeds (`MIN_SEEDS`); a test needs two pairs. Nothing here
invents a number for n = 1: it returns NaN, and the report says why. Shares of scored samples (leakage) are pooled
over seeds as counts and get a Wilson interval (`pooled_share`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05  # a difference "holds" when its Holm-adjusted p-value is below this
MIN_SEEDS = 2  # an interval, a test and a rank need at least this many finished seeds


def finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_ci(values, level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the `level` t interval, n) of the finite values; the half-width is NaN when n < 2."""
    from scipy import stats

    xs = finite(values)
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(np.mean(xs))
    if n < 2:
        return mean, math.nan, n
    sem = float(stats.sem(xs))
    return mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * sem, n


@dataclass(frozen=True)
class Paired:
    """An arm against its baseline, paired by seed."""

    n: int  # seeds where both finished with a finite score
    delta: float  # mean of (arm - baseline) over those seeds
    ci: float  # half-width of the 95% t interval of the mean difference (NaN when n < 2)
    p: float  # two-sided paired t-test p-value (NaN when n < 2)


def paired(arm: dict, baseline: dict) -> Paired:
    """Compare {seed: score} of an arm with {seed: score} of its baseline on the seeds both have.

    The test is a paired t-test (`scipy.stats.ttest_rel`): with 3-5 seeds a sign-flip permutation test cannot reach
    p < 0.05 at all (its smallest p with 3 pairs is 0.25), so the t-test's normality assumption is the price of
    an answer. Identical differences (zero spread, up to float rounding) give p = 0 when the difference is non-zero,
    NaN when it is zero.
    """
    from scipy import stats

    seeds = sorted(s for s in set(arm) & set(baseline) if math.isfinite(arm[s]) and math.isfinite(baseline[s]))
    diffs = [arm[s] - baseline[s] for s in seeds]
    delta, ci, n = mean_ci(diffs)
    if n < 2:
        return Paired(n, delta, math.nan, math.nan)
    tol = 1e-12 * max(1.0, *(abs(arm[s]) for s in seeds), *(abs(baseline[s]) for s in seeds))  # float rounding
    if np.ptp(diffs) <= tol:
        return Paired(n, delta, 0.0, 0.0 if abs(delta) > tol else math.nan)
    p = float(stats.ttest_rel([arm[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
    return Paired(n, delta, ci, p)


def holm(pvalues) -> list[float]:
    """Holm-adjusted p-values (family-wise error control across one group's comparisons); NaN stays NaN.

    Holm's step-down: sort the m p-values, multiply the i-th smallest by (m - i), carry the running maximum, cap at
    1. Written out here because statsmodels' `multipletests(method="holm")` (which the tests compare against) runs a
    full `gc.collect()` on every call: 0.4 s each with torch and Ray loaded, seconds per report.
    """
    pvalues = np.asarray([float(p) for p in pvalues], dtype=float)
    out = np.full(len(pvalues), math.nan)
    tested = np.flatnonzero(np.isfinite(pvalues))
    if len(tested):
        order = tested[np.argsort(pvalues[tested], kind="stable")]
        m = len(order)
        out[order] = np.minimum(np.maximum.accumulate(pvalues[order] * (m - np.arange(m))), 1.0)
    return out.tolist()


def wilson(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """(share, low, high): a proportion with its Wilson score interval (NaNs when n = 0)."""
    from scipy import stats

    if n == 0:
        return math.nan, math.nan, math.nan
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return successes / n, float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Share:
    """A proportion pooled over seeds: every seed's scored samples counted together."""

    k: int  # samples called positive, summed over seeds
    n: int  # samples scored, summed over seeds
    share: float  # k / n (NaN when n = 0)
    low: float  # 95% Wilson interval of k / n
    high: float  # (low, high): its ends


def pooled_share(parts) -> Share:
    """Pool (share, n) per seed into one proportion: k = sum of round(share x n), n = sum of n, with its Wilson
    interval. A share that is not a whole number of samples out of n (more than 1e-6 off) means n is not the count it
    was measured on: ValueError, rather than a wrong interval."""
    k = n = 0
    for share, size in parts:
        count = share * size
        if abs(count - round(count)) > 1e-6 * max(1, size):
            raise ValueError(f"share {share} is not a whole number of samples out of {size}")
        k, n = k + int(round(count)), n + int(size)
    return Share(k, n, *wilson(k, n))
