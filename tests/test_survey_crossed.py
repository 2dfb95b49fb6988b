"""sweep.survey.crossed on simulated surveys with known answers: no true difference between two methods, a
per-seed quality spread and rater clustering; the crossed test keeps its false-positive rate at nominal 0.05 within
0.07 where the vote-level binomial test does not, and it still sees a large true difference."""

import numpy as np
import pytest
from scipy.stats import binomtest

from sweep.survey.crossed import crossed_test

SEEDS, RATERS, VOTES = 5, 20, 40  # generators per method; 20 raters x 40 votes
SURVEYS = 120  # simulated surveys per setting: a binomial 95% band of +-0.04 around 0.05


def simulate(rng, seed_sd: float, rater_sd: float = 0.1, effect: float = 0.0):
    """One survey: P(a chosen) = 1/2 + effect + quality(a's generator) - quality(b's generator) + bias(rater)."""
    qa, qb, bias = rng.normal(0, seed_sd, SEEDS), rng.normal(0, seed_sd, SEEDS), rng.normal(0, rater_sd, RATERS)
    rater = np.repeat(np.arange(RATERS), VOTES)
    a, b = rng.integers(0, SEEDS, rater.size), rng.integers(0, SEEDS, rater.size)
    p = np.clip(0.5 + effect + qa[a] - qb[b] + bias[rater], 0, 1)
    return rater, a, b, rng.random(rater.size) < p


@pytest.mark.parametrize("seed_sd", [0.03, 0.05])
def test_false_positive_rate_over_generators_and_raters(seed_sd):
    rng = np.random.default_rng(int(seed_sd * 100))
    crossed, binomial = [], []
    for i in range(SURVEYS):
        rater, a, b, won = simulate(rng, seed_sd)
        crossed.append(crossed_test(rater, a, b, won, n_boot=200, seed=i).p < 0.05)
        binomial.append(binomtest(int(won.sum()), won.size).pvalue < 0.05)
    assert np.mean(crossed) <= 0.07
    assert np.mean(binomial) > 0.15  # the vote-level test: 0.24-0.38 in a 300-survey run


def test_a_large_true_difference_is_seen_and_the_counts_are_stated():
    rng = np.random.default_rng(7)
    rater, a, b, won = simulate(rng, seed_sd=0.03, effect=0.25)
    res = crossed_test(rater, a, b, won, n_boot=200)
    assert res.p < 0.05 and res.low > 0.5
    assert (res.votes, res.raters, res.generators_a, res.generators_b, res.df) == (800, 20, 5, 5, 8)


def test_too_few_generators_is_one_line():
    with pytest.raises(ValueError, match="at least 2 raters and 2 generators of each method; got 2 raters, 1 and 2"):
        crossed_test([0, 1], [0, 0], [0, 1], [1, 0])


def test_survey_results_test_pairs_over_the_trials_behind_the_images():
    """A vote's generator is the samples table its image came from: with 5 trials per method and 20 raters the head
    to head is the crossed test (same p as calling it directly); votes without tables fall back to the binomial."""
    from sweep.survey.stats import results_of_votes
    from sweep.survey.store import Vote

    rng = np.random.default_rng(3)
    rater, a, b, won = simulate(rng, seed_sd=0.04)
    flip = rng.random(rater.size) < 0.5  # A shown on the right half the time
    votes = [Vote(f"p{r:02d}", *(("B", "A") if f else ("A", "B")), ("right" if f else "left") if w else
                  ("left" if f else "right"), (), *((f"B/{j}.parquet", f"A/{i}.parquet") if f else
                                                     (f"A/{i}.parquet", f"B/{j}.parquet")))
             for r, i, j, w, f in zip(rater, a, b, won, flip)]
    (pair,) = results_of_votes(votes, n_boot=50).groups[0].pairs
    direct = crossed_test(rater, a, b, won)
    assert (pair.test, pair.generators_a, pair.generators_b, pair.raters) == ("crossed", 5, 5, 20)
    assert pair.a_wins == int(won.sum()) and pair.p == pytest.approx(direct.p) and pair.p_holm == pair.p
    plain = [Vote(v.participant, v.left, v.right, v.choice) for v in votes]
    (pair,) = results_of_votes(plain, n_boot=50).groups[0].pairs
    assert pair.test == "binomial" and pair.p == pytest.approx(binomtest(int(won.sum()), won.size).pvalue)


def test_the_survey_tables_state_generators_and_raters():
    from sweep.survey.render import markdown
    from sweep.survey.stats import results_of_votes
    from sweep.survey.store import Vote

    rng = np.random.default_rng(5)
    rater, a, b, won = simulate(rng, seed_sd=0.04)
    votes = [Vote(f"p{r:02d}", "A", "B", "left" if w else "right", (), f"A/{i}", f"B/{j}")
             for r, i, j, w in zip(rater, a, b, won)]
    res = results_of_votes(votes, n_boot=20)
    assert [m.generators for m in res.groups[0].methods] == [5, 5]
    text = markdown(res)
    assert "generators | raters |" in text and " | 5 | 20 |" in text  # the methods table's last two columns
    assert "| A vs B | 800 |" in text and "| 5 : 5 | 20 |" in text and "| crossed |" in text
