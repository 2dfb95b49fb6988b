"""What a survey's votes say: selection rates, head-to-head tests, Bradley-Terry strengths, realism rates.

Counting rules (a vote is one participant's answer to one pair; "can't tell" answers are counted, never decided):

- **selection rate** of a method (the published study's figure): times chosen / times shown, over the decided
  method-vs-method pairs it was in; 95% Wilson interval (scipy `binomtest(...).proportion_ci("wilson")`).
- **head to head**: for each pair of methods, the decided votes between the two; two-sided exact binomial test of
  "each is chosen half the time" (scipy `binomtest`), p-values Holm-adjusted over the pairs that have votes
  (`sweep.stats.holm`).
- **Bradley-Terry strength** (`bradley_terry`): one scale for all methods, strengths summing to 1; 95% percentile
  bootstrap interval resampling participants (fixed seed).
- **realism rate** of a method: times its sample was chosen over a real photo / decided method-vs-real pairs; 95%
  Wilson interval. The pairwise counterpart of HYPE's realism rate (Zhou et al. 2019): 0.5 means people preferred
  its samples as often as the photos.

Wilson intervals and binomial tests treat votes as independent; one participant's votes are not quite, which is
why the Bradley-Terry intervals resample whole participants.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweep import stats
from sweep.survey.pool import REAL
from sweep.survey.store import Vote, read_votes

NAN = float("nan")


@dataclass(frozen=True)
class Rate:
    """k of n, with its 95% Wilson interval (NaN when n is 0)."""

    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else NAN


@dataclass(frozen=True)
class MethodResult:
    method: str
    selection: Rate  # chosen / shown in decided method-vs-method pairs
    cant_tell: int  # method-vs-method "can't tell" answers it was in
    strength: float  # Bradley-Terry, strengths of all methods sum to 1
    strength_low: float  # 95% bootstrap interval over participants
    strength_high: float
    realism: Rate  # chosen over a real photo / decided method-vs-real pairs (n = 0 without real photos)
    real_cant_tell: int


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    a_wins: int
    b_wins: int
    cant_tell: int
    p: float  # two-sided exact binomial test of a_wins among a_wins + b_wins against 1/2; NaN without votes
    p_holm: float  # Holm-adjusted over the pairs with votes


@dataclass(frozen=True)
class SurveyResults:
    """The survey's figures. `methods` is ordered by Bradley-Terry strength, strongest first."""

    methods: tuple[MethodResult, ...]
    pairs: tuple[PairResult, ...]
    participants: int  # who voted at least once
    votes: int  # every recorded vote, "can't tell" and real-photo pairs included
    cant_tell: int
    real_votes: int  # votes on a method-vs-real pair
    bt_mle_exists: bool
    n_boot: int
    boot_used: int  # resamples that could be fitted
    seed: int

    @property
    def has_real(self) -> bool:
        return self.real_votes > 0

    def markdown(self) -> str:
        from sweep.survey.render import markdown

        return markdown(self)

    def plot(self, path) -> Path:
        from sweep.survey.render import plot

        return plot(self, path)

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: `survey_participants`, `survey_votes`, `survey_cant_tell`, and per method
        `survey_selection_rate_<m>`, `survey_bt_strength_<m>`, `survey_realism_rate_<m>` (each with `_ci_low`,
        `_ci_high`), per pair `survey_p_holm_<a>_vs_<b>`; <m> is the arm label with characters MLflow does not
        allow in a key replaced by '_'. Values that do not exist (no votes) are left out."""
        keys = {m.method: metric_name(m.method) for m in self.methods}
        if len(set(keys.values())) < len(keys):
            raise ValueError(f"two methods map to one MLflow metric name: {keys}")
        out = {"survey_participants": self.participants, "survey_votes": self.votes,
               "survey_cant_tell": self.cant_tell}
        for m in self.methods:
            key = keys[m.method]
            for name, (value, low, high) in {
                "selection_rate": (m.selection.value, m.selection.low, m.selection.high),
                "bt_strength": (m.strength, m.strength_low, m.strength_high),
                "realism_rate": (m.realism.value, m.realism.low, m.realism.high),
            }.items():
                out.update({f"survey_{name}_{key}": value, f"survey_{name}_{key}_ci_low": low,
                            f"survey_{name}_{key}_ci_high": high})
        for p in self.pairs:
            out[f"survey_p_holm_{keys[p.a]}_vs_{keys[p.b]}"] = p.p_holm
        return {k: float(v) for k, v in out.items() if math.isfinite(v)}


def metric_name(label: str) -> str:
    """An arm label as MLflow allows it in a metric key: 'contrast+hflip@200' -> 'contrast_hflip_200'."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", label)


def wilson(k: int, n: int) -> Rate:
    _, low, high = stats.wilson(k, n)
    return Rate(k, n, low, high)


def survey_results(db_path, n_boot: int = 1000, seed: int = 0) -> SurveyResults:
    """The figures of the votes in a survey database (see the module docstring for what each one counts).

    FileNotFoundError when there is no database, ValueError when it holds no vote between two methods.
    """
    return results_of_votes(read_votes(db_path), n_boot=n_boot, seed=seed, where=str(db_path))


def results_of_votes(votes: list[Vote], n_boot: int = 1000, seed: int = 0, where: str = "the survey") -> SurveyResults:
    """`survey_results` on votes already read."""
    from scipy.stats import binomtest

    from sweep.survey.bradley_terry import bootstrap_strengths, fit_strengths, mle_exists

    methods = sorted({label for v in votes for label in (v.left, v.right)} - {REAL})
    head_to_head = [v for v in votes if REAL not in (v.left, v.right)]
    if not any(v.choice != "cant_tell" for v in head_to_head):
        raise ValueError(f"no decided vote between two methods in {where} yet: "
                         "let participants answer `gansweep survey` first")
    index = {m: i for i, m in enumerate(methods)}
    people = sorted({v.participant for v in head_to_head})  # the bootstrap's units
    person = {p: i for i, p in enumerate(people)}

    k = len(methods)
    wins_by = np.zeros((len(people), k, k))  # [participant, winner, loser]
    ties = np.zeros((k, k), dtype=int)  # symmetric
    for v in head_to_head:
        a, b = index[v.left], index[v.right]
        if v.choice == "cant_tell":
            ties[a, b] += 1
            ties[b, a] += 1
        else:
            winner, loser = (a, b) if v.choice == "left" else (b, a)
            wins_by[person[v.participant], winner, loser] += 1
    wins = wins_by.sum(axis=0).astype(int)

    strength = fit_strengths(wins)
    low, high, used = bootstrap_strengths(wins_by, n_boot=n_boot, seed=seed)

    pairs = []
    for a, b in itertools.combinations(range(k), 2):
        n = wins[a, b] + wins[b, a]
        p = binomtest(int(wins[a, b]), int(n), 0.5).pvalue if n else NAN
        pairs.append([methods[a], methods[b], int(wins[a, b]), int(wins[b, a]), int(ties[a, b]), p, NAN])
    tested = [row for row in pairs if not math.isnan(row[5])]
    for row, adjusted in zip(tested, stats.holm([row[5] for row in tested])):
        row[6] = adjusted

    rows = []
    for m in methods:
        i = index[m]
        against_real = [v for v in votes if REAL in (v.left, v.right) and m in (v.left, v.right)]
        decided = [v for v in against_real if v.choice != "cant_tell"]
        chosen = sum((v.choice == "left") == (v.left == m) for v in decided)
        rows.append(MethodResult(
            method=m, selection=wilson(int(wins[i].sum()), int(wins[i].sum() + wins[:, i].sum())),
            cant_tell=int(ties[i].sum()), strength=float(strength[i]), strength_low=float(low[i]),
            strength_high=float(high[i]), realism=wilson(chosen, len(decided)),
            real_cant_tell=len(against_real) - len(decided)))
    rows.sort(key=lambda r: (-r.strength if not math.isnan(r.strength) else math.inf, r.method))

    return SurveyResults(
        methods=tuple(rows), pairs=tuple(PairResult(*row) for row in pairs), participants=len({v.participant for v in votes}),
        votes=len(votes), cant_tell=sum(v.choice == "cant_tell" for v in votes),
        real_votes=sum(REAL in (v.left, v.right) for v in votes), bt_mle_exists=mle_exists(wins), n_boot=n_boot,
        boot_used=used, seed=seed)
