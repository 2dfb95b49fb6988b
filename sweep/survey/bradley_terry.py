"""Bradley-Terry strengths from pairwise wins, and their bootstrap over participants.

The model: P(i is chosen over j) = s_i / (s_i + s_j). It is fitted by maximum likelihood as a binomial GLM
(statsmodels) with one row per pair of methods, the design +1 for i and -1 for j (the last method is the reference,
log-strength 0), and (wins of i, wins of j) as the response. Strengths are reported as exp(log-strength) scaled to
sum to 1, so with two methods a method's strength is its selection rate.

The maximum-likelihood strengths exist only when every method beats, directly or through others, every other method
(the directed graph of wins is strongly connected). When it is not, the fit runs to the limit (a method that never
won goes to 0) and `mle_exists` says so.
"""

from __future__ import annotations

import warnings

import numpy as np
import statsmodels.api as sm
from scipy.sparse.csgraph import connected_components
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning


def fit_strengths(wins: np.ndarray) -> np.ndarray:
    """Strengths (summing to 1) from `wins[i, j]` = times method i was chosen over method j.

    NaN for every method when the methods' comparisons do not connect them all (no common scale exists).
    """
    wins = np.asarray(wins, dtype=float)
    k = len(wins)
    games = wins + wins.T
    if connected_components(games > 0, directed=False)[0] != 1:
        return np.full(k, np.nan)
    i, j = np.nonzero(np.triu(games, 1))
    design = np.zeros((len(i), k))
    design[np.arange(len(i)), i] = 1.0
    design[np.arange(len(i)), j] = -1.0
    response = np.column_stack([wins[i, j], wins[j, i]])
    # Separation is expected when the MLE does not exist (see mle_exists); a pair per parameter leaves IRLS's working
    # scale 0/0, which the binomial family does not use.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        fit = sm.GLM(response, design[:, :-1], family=sm.families.Binomial()).fit()
    log_strength = np.append(fit.params, 0.0)
    strength = np.exp(log_strength - log_strength.max())
    return strength / strength.sum()


def mle_exists(wins: np.ndarray) -> bool:
    """Whether the Bradley-Terry maximum-likelihood strengths exist: the graph i -> j for each win of i over j
    reaches every method from every other (Zermelo 1929; Ford 1957)."""
    return connected_components(np.asarray(wins) > 0, directed=True, connection="strong")[0] == 1


def bootstrap_strengths(wins_by_participant: np.ndarray, n_boot: int = 1000, seed: int = 0,
                        level: float = 0.95) -> tuple[np.ndarray, np.ndarray, int]:
    """Percentile intervals of the strengths, resampling participants with replacement.

    `wins_by_participant[p, i, j]`: participant p's choices of method i over j. Returns (low, high, used): per-method
    bounds, and how many of the `n_boot` resamples could be fitted (a resample whose comparisons do not connect all
    methods has no strengths and is left out).
    """
    wins_by_participant = np.asarray(wins_by_participant, dtype=float)
    n, k = wins_by_participant.shape[0], wins_by_participant.shape[1]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        weights = np.bincount(rng.integers(0, n, n), minlength=n)
        strength = fit_strengths(np.tensordot(weights, wins_by_participant, axes=1))
        if not np.isnan(strength).any():
            draws.append(strength)
    if not draws:
        return np.full(k, np.nan), np.full(k, np.nan), 0
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.array(draws), [tail, 100 - tail], axis=0)
    return low, high, len(draws)
