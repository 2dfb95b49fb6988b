"""The statistics of a sweep's comparisons: means with t intervals over seeds, paired tests against a baseline
(exact sign-flip where the seeds allow it, t otherwise), effect sizes with the smallest difference a comparison could
detect, and Holm's correction within a family. scipy and statsmodels do the maths (Holm is written out; see `holm`).

Seeds are the unit of replication: every interval and test here is over per-seed values, never over pooled samples.
An interval needs two seeds (`MIN_SEEDS`); a test needs two pairs. Nothing here invents a number for n = 1: it
returns NaN, and the report says why. A p-value is never 0: identical differences get the exact sign-flip p.
"""

from __future__ import annotations

import functools
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


ALTERNATIVES = ("two-sided", "greater", "less")  # what a comparison asks: any difference, arm above, arm below
POWER = 0.8  # the power at which the report states the smallest detectable difference
EXACT_MAX = 16  # seeds up to which the sign-flip test enumerates all 2^n assignments (65536 of them)


def smallest_p(n: int, alternative: str = "two-sided") -> float:
    """The smallest p the exact sign-flip test can give on n pairs: 2^-n one-sided, 2^(1-n) two-sided (only the
    observed signs, and for two-sided their mirror image, are as extreme as the data)."""
    return 2.0 ** -n * (2 if alternative == "two-sided" else 1)


def sign_flip_allowed(n: int, alternative: str = "two-sided", family: int = 1) -> bool:
    """Whether n seeds let the exact sign-flip test reach Holm's first threshold ALPHA / family at all; where they
    do not, no difference however large could hold with it, so the paired t-test is used instead."""
    return n >= MIN_SEEDS and smallest_p(n, alternative) <= ALPHA / max(1, family)


def sign_flip_p(diffs, alternative: str = "two-sided") -> float:
    """Exact sign-flip permutation p of the mean of paired differences: every one of the 2^n sign assignments, as
    `scipy.stats.permutation_test(permutation_type="samples")` enumerates them for one sample (ties within float
    tolerance count as at least as extreme, so identical differences give 2^-n one-sided, never 0); past
    `EXACT_MAX` seeds a seeded random sample of assignments."""
    from scipy import stats

    xs = np.asarray(finite(diffs), dtype=float)
    exact = len(xs) <= EXACT_MAX  # beyond it, 10^5 random sign assignments (seeded) stand for the 2^n
    res = stats.permutation_test((xs,), np.mean, permutation_type="samples",
                                 n_resamples=np.inf if exact else 100_000, alternative=alternative, vectorized=True,
                                 axis=-1, rng=None if exact else np.random.default_rng(0))
    return float(res.pvalue)


@functools.lru_cache(maxsize=None)
def detectable_dz(n: int, alternative: str = "two-sided", family: int = 1, power: float = POWER) -> float:
    """The smallest standardized paired effect d_z = mean / sd of the differences that a paired t-test on n seeds
    detects with `power` at Holm's first threshold ALPHA / family (statsmodels' `TTestPower`, solved for the effect
    size; at the large effects of 2-3 seeds its solver lands within 0.002 of the power asked). For the exact
    sign-flip test it is an approximation: on a few seeds its power is near the t-test's, not equal to it. NaN for
    fewer than `MIN_SEEDS` seeds."""
    if n < MIN_SEEDS:
        return math.nan
    from statsmodels.stats.power import TTestPower

    alt = "two-sided" if alternative == "two-sided" else "larger"
    return abs(float(TTestPower().solve_power(effect_size=None, nobs=n, alpha=ALPHA / max(1, family), power=power,
                                              alternative=alt)))


@dataclass(frozen=True)
class Paired:
    """An arm against its baseline, paired by seed: the effect, its interval, its test and what it could detect."""

    n: int  # seeds where both finished with a finite score
    delta: float  # mean of (arm - baseline) over those seeds
    ci: float  # half-width of the 95% t interval of the mean difference (NaN when n < 2)
    p: float  # the test's p-value for `alternative` before any correction (NaN when n < 2)
    d_z: float = math.nan  # delta / sd of the differences (±inf for identical non-zero differences)
    sd: float = math.nan  # standard deviation of the differences (ddof 1)
    test: str = ""  # "sign-flip" (exact), "t" (paired t-test) or "" (untested: fewer than MIN_SEEDS pairs)
    alternative: str = "two-sided"  # the question asked (`ALTERNATIVES`)
    family: int = 1  # size of the Holm family the comparison belongs to (what `detectable` is computed for)

    @property
    def reachable(self) -> bool:
        """Whether any difference could reach ALPHA / family with this test on these seeds (a t-test always can;
        the exact sign-flip test only from `smallest_p` <= ALPHA / family)."""
        return self.test == "t" or (self.test == "sign-flip" and sign_flip_allowed(self.n, self.alternative,
                                                                                    self.family))

    @property
    def detectable_dz(self) -> float:
        """The smallest d_z this comparison could detect at 80% power (`detectable_dz`); NaN when not `reachable`."""
        return detectable_dz(self.n, self.alternative, self.family) if self.reachable else math.nan

    @property
    def detectable(self) -> float:
        """`detectable_dz` in the metric's units at the observed spread of the differences."""
        return self.detectable_dz * self.sd


def paired(arm: dict, baseline: dict, alternative: str = "two-sided", family: int = 1) -> Paired:
    """Compare {seed: score} of an arm with {seed: score} of its baseline on the seeds both have.

    The test: the exact sign-flip permutation test (`sign_flip_p`) where the seeds let it reach ALPHA / family
    (`sign_flip_allowed`), the paired t-test (`scipy.stats.ttest_1samp` of the differences) otherwise; identical
    differences (zero spread up to float rounding) always get the exact sign-flip p, where a t statistic does not
    exist. `family` is the size of the Holm family the p-value will be adjusted in.
    """
    from scipy import stats

    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative {alternative!r} is unknown; allowed: {', '.join(ALTERNATIVES)}")
    seeds = sorted(s for s in set(arm) & set(baseline) if math.isfinite(arm[s]) and math.isfinite(baseline[s]))
    diffs = [arm[s] - baseline[s] for s in seeds]
    delta, ci, n = mean_ci(diffs)
    if n < MIN_SEEDS:
        return Paired(n, delta, math.nan, math.nan, alternative=alternative, family=family)
    tol = 1e-12 * max(1.0, *(abs(arm[s]) for s in seeds), *(abs(baseline[s]) for s in seeds))  # float rounding
    if np.ptp(diffs) <= tol:
        same = 0.0 if abs(delta) <= tol else delta
        p = sign_flip_p([same] * n, alternative)
        d_z = math.nan if same == 0 else math.copysign(math.inf, same)
        return Paired(n, same, 0.0, p, d_z, 0.0, "sign-flip", alternative, family)
    sd = float(np.std(diffs, ddof=1))
    if sign_flip_allowed(n, alternative, family):
        p, test = sign_flip_p(diffs, alternative), "sign-flip"
    else:
        p, test = float(stats.ttest_1samp(diffs, 0.0, alternative=alternative).pvalue), "t"
    return Paired(n, delta, ci, p, delta / sd, sd, test, alternative, family)


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
