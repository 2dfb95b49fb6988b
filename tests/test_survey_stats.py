"""The survey's statistics on known votes of one comparison group, against values worked out by hand: Wilson
intervals (closed form), binomial p-values (summed from the pmf), Holm's step-down, Bradley-Terry strengths with a
known answer. Several groups: tests/test_survey_groups.py."""

import math

import numpy as np
import pytest
from PIL import Image

from sweep.survey import REAL
from sweep.survey.bradley_terry import bootstrap_strengths, fit_strengths, mle_exists
from sweep.survey.render import markdown, plot
from sweep.survey.stats import metric_name, results_of_votes, wilson
from sweep.survey.store import Vote

Z = 1.959963984540054  # the 97.5% normal quantile


def wilson_by_hand(k, n):
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return centre - half, centre + half


def binomial_p_by_hand(k, n):
    """Two-sided exact test against 1/2: twice the smaller tail (the distribution is symmetric)."""
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2**n
    return min(1.0, 2 * tail)


def match(participant, a, b, a_wins, b_wins, ties=0, group=()):
    """Votes of one participant on a vs b in `group`, the sides alternating (a side never decides anything)."""
    out = []
    for i, choice in enumerate(["a"] * a_wins + ["b"] * b_wins + ["tie"] * ties):
        left, right = (a, b) if i % 2 == 0 else (b, a)
        side = "cant_tell" if choice == "tie" else ("left" if (choice == "a") == (left == a) else "right")
        out.append(Vote(participant, left, right, side, group))
    return out


def only_group(votes, **kwargs):
    """The results of votes that all belong to one comparison group."""
    (group,) = results_of_votes(votes, **kwargs).groups
    return group


def known_strengths(participants=("p1", "p2")):
    """Strengths 4 : 2 : 1 exactly: every pair's wins are its games times s_i / (s_i + s_j), split over participants.
    A-B 20:10, A-C 24:6, B-C 20:10 in total, and 3 "can't tell" on A-B."""
    n = len(participants)
    votes = []
    for p in participants:
        votes += match(p, "A", "B", 20 // n, 10 // n, 3 if p == participants[0] else 0)
        votes += match(p, "A", "C", 24 // n, 6 // n) + match(p, "B", "C", 20 // n, 10 // n)
    return votes


def test_wilson_matches_the_closed_form():
    for k, n in [(44, 60), (0, 12), (12, 12), (3, 10), (1, 2)]:
        rate = wilson(k, n)
        assert (rate.low, rate.high) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)
        assert rate.value == k / n
    empty = wilson(0, 0)
    assert math.isnan(empty.value) and math.isnan(empty.low)


def test_selection_rates_tests_and_holm_by_hand():
    res = only_group(known_strengths(), n_boot=50)
    assert res.group == ()
    assert [m.method for m in res.methods] == ["A", "B", "C"]  # ranked by Bradley-Terry strength
    by = {m.method: m for m in res.methods}
    for method, (k, n) in {"A": (44, 60), "B": (30, 60), "C": (16, 60)}.items():
        rate = by[method].selection
        assert (rate.k, rate.n) == (k, n)
        assert (rate.low, rate.high) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)
    assert (by["A"].cant_tell, by["B"].cant_tell, by["C"].cant_tell) == (3, 3, 0)

    p_ab, p_ac = binomial_p_by_hand(20, 30), binomial_p_by_hand(24, 30)
    pairs = {(p.a, p.b): p for p in res.pairs}
    assert (pairs["A", "B"].a_wins, pairs["A", "B"].b_wins, pairs["A", "B"].cant_tell) == (20, 10, 3)
    assert pairs["A", "B"].p == pytest.approx(p_ab, rel=1e-12)
    assert pairs["A", "C"].p == pytest.approx(p_ac, rel=1e-12)
    assert pairs["B", "C"].p == pytest.approx(p_ab, rel=1e-12)
    # Holm: smallest p times 3, the next two times 2 (and never below an earlier adjusted p).
    assert pairs["A", "C"].p_holm == pytest.approx(3 * p_ac, rel=1e-12)
    assert pairs["A", "B"].p_holm == pytest.approx(max(3 * p_ac, 2 * p_ab), rel=1e-12)
    assert pairs["B", "C"].p_holm == pytest.approx(max(3 * p_ac, 2 * p_ab), rel=1e-12)

    assert (res.participants, res.votes, res.cant_tell, res.real_votes) == (2, 93, 3, 0)


def test_bradley_terry_recovers_known_strengths():
    res = only_group(known_strengths(), n_boot=50)
    assert [m.strength for m in res.methods] == pytest.approx([4 / 7, 2 / 7, 1 / 7], abs=1e-9)
    assert res.bt_mle_exists
    # Both participants voted alike, so every resample has the same proportions: the interval is the point.
    for m in res.methods:
        assert (m.strength_low, m.strength_high) == pytest.approx((m.strength, m.strength), abs=1e-9)
    assert res.boot_used == 50


def test_two_methods_strength_is_the_selection_rate():
    res = only_group(match("p1", "X", "Y", 15, 5) + match("p2", "X", "Y", 3, 7), n_boot=100)
    for m in res.methods:
        assert m.strength == pytest.approx(m.selection.value, abs=1e-9)
    assert res.methods[0].method == "X" and res.methods[0].strength == pytest.approx(18 / 30, abs=1e-9)


def test_bootstrap_resamples_participants():
    wins = np.zeros((3, 2, 2))
    wins[0, 0, 1], wins[0, 1, 0] = 9, 1  # participants who disagree: the interval is wide
    wins[1, 0, 1], wins[1, 1, 0] = 5, 5
    wins[2, 0, 1], wins[2, 1, 0] = 2, 8
    low, high, used = bootstrap_strengths(wins, n_boot=300, seed=0)
    point = fit_strengths(wins.sum(axis=0))
    assert used == 300 and point[0] == pytest.approx(16 / 30)
    assert np.all(low < point) and np.all(point < high)
    # The extremes are resamples of one participant only: all three times the 9:1 voter, or the 2:8 voter.
    assert low[0] >= 0.2 - 1e-9 and high[0] <= 0.9 + 1e-9
    again = bootstrap_strengths(wins, n_boot=300, seed=0)
    assert np.array_equal(again[0], low) and np.array_equal(again[1], high)  # fixed seed


def test_no_mle_when_a_method_never_wins():
    votes = match("p1", "A", "B", 20, 10) + match("p1", "A", "C", 5, 0) + match("p1", "B", "C", 5, 0)
    res = only_group(votes, n_boot=100)
    by = {m.method: m for m in res.methods}
    assert not res.bt_mle_exists and by["C"].strength < 1e-6
    assert by["A"].strength / (by["A"].strength + by["B"].strength) == pytest.approx(2 / 3, abs=1e-6)
    assert "maximum-likelihood strengths do not exist" in markdown(results_of_votes(votes, n_boot=10))
    assert "do not exist" not in markdown(results_of_votes(known_strengths(), n_boot=10))


def test_disconnected_comparisons_have_no_strengths():
    wins = np.zeros((4, 4))
    wins[0, 1] = wins[1, 0] = wins[2, 3] = wins[3, 2] = 5  # A-B and C-D, never across
    assert np.isnan(fit_strengths(wins)).all() and not mle_exists(wins)


def test_realism_rate_counts_method_against_real_only():
    votes = known_strengths() + match("p3", "A", REAL, 3, 7, 2) + match("p3", "B", REAL, 0, 0, 1)
    res = only_group(votes, n_boot=50)
    by = {m.method: m for m in res.methods}
    assert (by["A"].realism.k, by["A"].realism.n, by["A"].real_cant_tell) == (3, 10, 2)
    assert (by["A"].realism.low, by["A"].realism.high) == pytest.approx(wilson_by_hand(3, 10), abs=1e-12)
    assert by["A"].selection.n == 60  # real pairs are not in the selection rate
    assert by["B"].realism.n == 0 and math.isnan(by["B"].realism.value) and by["B"].real_cant_tell == 1
    assert (res.participants, res.real_votes, res.cant_tell) == (3, 13, 6)
    assert res.boot_used == 50  # p3 compared no two methods: not a unit of the Bradley-Terry bootstrap
    assert "realism rate" in markdown(results_of_votes(votes, n_boot=10))
    assert "realism rate" not in markdown(results_of_votes(known_strengths(), n_boot=10))


def test_metrics_are_flat_finite_and_named_for_mlflow():
    labels = {"A": "contrast+hflip@200", "B": "none", "C": "hflip:0.25@100"}
    votes = [Vote(v.participant, labels.get(v.left, v.left), labels.get(v.right, v.right), v.choice)
             for v in known_strengths() + match("p3", "A", REAL, 3, 7)]
    res = results_of_votes(votes, n_boot=50)
    metrics = res.metrics()
    assert metrics["survey_selection_rate_contrast_hflip_200"] == pytest.approx(44 / 60)
    low, high = wilson_by_hand(16, 60)
    assert metrics["survey_selection_rate_hflip_0.25_100_ci_low"] == pytest.approx(low)
    assert metrics["survey_selection_rate_hflip_0.25_100_ci_high"] == pytest.approx(high)
    assert metrics["survey_bt_strength_none"] == pytest.approx(2 / 7)
    assert metrics["survey_realism_rate_contrast_hflip_200"] == pytest.approx(0.3)
    assert "survey_realism_rate_none" not in metrics  # never shown against a real photo: no value, no key
    assert metrics["survey_p_holm_contrast_hflip_200_vs_hflip_0.25_100"] == pytest.approx(
        3 * binomial_p_by_hand(24, 30))
    assert (metrics["survey_participants"], metrics["survey_votes"], metrics["survey_cant_tell"]) == (3, 103, 3)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert all(set(k) <= set("abcdefghijklmnopqrstuvwxyz0123456789_.-") for k in metrics)
    assert metric_name("a+b@1") == "a_b_1"


def test_metric_names_that_collide_are_an_error():
    res = results_of_votes(match("p", "a+b", "a@b", 3, 1), n_boot=10)
    with pytest.raises(ValueError, match="two methods map to one MLflow metric name"):
        res.metrics()


def test_markdown_and_plot(tmp_path):
    res = results_of_votes(known_strengths() + match("p3", "A", REAL, 3, 7), n_boot=50)
    text = markdown(res)
    first_column = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert first_column[:4] == ["method", "A", "B", "C"]  # ranked by strength
    assert "| A | 44 / 60 | 73.3% |" in text and "| A vs C | 30 | 24 : 6 | 0 |" in text
    assert "3 / 10 | 30.0%" in text and "| C | 16 / 60 | 26.7% |" in text
    assert "###" not in text  # one group, no group sections
    png = plot(res, tmp_path / "out" / "selection_rate.png")
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 3 * img.height / 2  # three panels side by side


def test_no_decided_votes_is_an_error():
    with pytest.raises(ValueError, match="no decided vote between two methods"):
        results_of_votes([])
    with pytest.raises(ValueError, match="no decided vote between two methods"):
        results_of_votes(match("p", "A", "B", 0, 0, 4) + match("p", "A", REAL, 2, 0))
