"""What a survey's votes say, per comparison group: selection rates, head-to-head tests, Bradley-Terry strengths,
realism rates.

Methods are only ever compared within one comparison group (see `sweep.survey.pool`), so every figure is computed
per group, from that group's votes alone, and Holm's correction runs over the pairs of one group (the family the
study asks about: equal iterations, or equal time). Counting rules (a vote is one participant's answer to one pair;
"can't tell" answers are counted, never decided):

- **selection rate** of a method (the published study's figure): times chosen / times shown, over the decided
  method-vs-method pairs of its group it was in; 95% Wilson interval (scipy `binomtest(...).proportion_ci("wilson")`).
- **head to head**: for each pair of methods of a group, the decided votes between the two, tested for "each is
  chosen half the time" over generators and raters (`sweep.survey.crossed`: a bootstrap resampling raters and each
  method's generators, a generator being the trial whose samples table an image came from) where the votes rest on
  at least 2 generators of each method and 2 raters; otherwise the two-sided exact binomial test over votes (scipy
  `binomtest`), which treats votes as independent, and `test` says which. p-values Holm-adjusted over the group's
  pairs that have votes (`sweep.report.stats.holm`).
- **Bradley-Terry strength** (`bradley_terry`): one scale for the methods of a group, strengths summing to 1; 95%
  percentile bootstrap interval resampling the group's participants (fixed seed).
- **realism rate** of a method: times its sample was chosen over a real photo / decided method-vs-real pairs of its
  group; 95% Wilson interval. The pairwise counterpart of HYPE's realism rate (Zhou et al. 2019): 0.5 means people
  preferred its samples as often as the photos.

Wilson intervals and binomial tests treat votes as independent; one participant's votes are not quite, which is
why the Bradley-Terry intervals resample whole participants and the head-to-head test resamples generators and
raters where it can. How the figures look (Markdown, chart) is
`sweep.survey.render`'s business; this module never draws.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from sweep.report import stats
from sweep.survey.bradley_terry import bootstrap_strengths, fit_strengths, mle_exists
from sweep.survey.crossed import crossed_test
from sweep.survey.pool import REAL, Group, group_order
from sweep.survey.store import Vote, read_votes

NAN = float("nan")
RATE_COLUMNS = ["arm", "chosen", "decided", "cant_tell", "rate", "ci_low", "ci_high"]  # of `selection_table`


class NoVotes(ValueError):
    """The survey holds no decided vote between two methods yet."""


@dataclass(frozen=True)
class Rate:
    """k of n, with its 95% Wilson interval (NaN when n is 0)."""

    k: int  # successes (times chosen)
    n: int  # decided trials (times shown, "can't tell" left out)
    low: float  # 95% Wilson interval
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else NAN


@dataclass(frozen=True)
class MethodResult:
    """One method's figures within one comparison group."""

    method: str  # arm label
    selection: Rate  # chosen / shown in decided method-vs-method pairs
    cant_tell: int  # method-vs-method "can't tell" answers it was in
    strength: float  # Bradley-Terry, strengths of the group's methods sum to 1
    strength_low: float  # 95% bootstrap interval over participants
    strength_high: float
    realism: Rate  # chosen over a real photo / decided method-vs-real pairs (n = 0 without real photos)
    real_cant_tell: int  # "can't tell" answers against a real photo
    generators: int = 0  # its trials (samples tables) behind the group's votes; 0 when votes do not record them


@dataclass(frozen=True)
class PairResult:
    """Two methods of one group, head to head."""

    a: str  # the methods, in label order
    b: str
    a_wins: int  # decided votes for a over b
    b_wins: int
    cant_tell: int  # "can't tell" answers on a-vs-b pairs
    p: float  # two-sided test of a's share of the decided votes against 1/2 (`test`); NaN without votes
    p_holm: float  # Holm-adjusted over the group's pairs with votes
    test: str = ""  # "crossed" (over generators and raters) or "binomial" (over votes); "" without votes
    share_low: float = NAN  # 95% interval of a's share: crossed t interval, or Wilson over votes
    share_high: float = NAN
    generators_a: int = 0  # generators (trials) of a and of b behind the decided votes
    generators_b: int = 0
    raters: int = 0  # participants behind the decided votes


@dataclass(frozen=True)
class GroupResults:
    """The figures of one comparison group. `methods` is ordered by Bradley-Terry strength, strongest first."""

    group: Group  # the comparison group; () for a study without grouping fields
    methods: tuple[MethodResult, ...]
    pairs: tuple[PairResult, ...]
    participants: int  # who voted in this group at least once
    votes: int  # the group's votes, "can't tell" and real-photo pairs included
    cant_tell: int
    real_votes: int  # votes on a method-vs-real pair of this group
    bt_mle_exists: bool  # whether the Bradley-Terry maximum-likelihood strengths exist (else: the fit's limit)
    boot_used: int  # bootstrap resamples that could be fitted

    @property
    def has_real(self) -> bool:
        return self.real_votes > 0


@dataclass(frozen=True)
class SurveyResults:
    """The survey's figures: one `GroupResults` per comparison group that has votes, in group order, and the
    totals over all groups."""

    groups: tuple[GroupResults, ...]
    participants: int  # who voted at least once, in any group
    votes: int  # every recorded vote
    cant_tell: int
    real_votes: int
    n_boot: int  # bootstrap resamples asked for, per group
    seed: int  # of the bootstrap

    @property
    def has_real(self) -> bool:
        return self.real_votes > 0

    @property
    def group_by(self) -> tuple[str, ...]:
        """The grouping fields the votes were recorded under (the study's `Design.group_by`)."""
        return tuple(dict.fromkeys(k for g in self.groups for k, _ in g.group))

    def group(self, **values) -> GroupResults:
        """The results of the group with these field values (`res.group(time_budget=0.0)`); KeyError if none."""
        for g in self.groups:
            if dict(g.group) == values:
                return g
        raise KeyError(f"no comparison group {values}; groups: {[dict(g.group) for g in self.groups]}")

    def table(self) -> pd.DataFrame:
        """One row per (group, method): the group's fields, then `RATE_COLUMNS`, then the Bradley-Terry strength
        (`strength`, `strength_low`, `strength_high`) and the realism rate (`realism`, `realism_low`,
        `realism_high`, `realism_n`)."""
        rows = [{**dict(g.group), **_rate_row(m.method, m.selection, m.cant_tell), "strength": m.strength,
                 "strength_low": m.strength_low, "strength_high": m.strength_high, "realism": m.realism.value,
                 "realism_low": m.realism.low, "realism_high": m.realism.high, "realism_n": m.realism.n}
                for g in self.groups for m in g.methods]
        return pd.DataFrame(rows, columns=[*self.group_by, *RATE_COLUMNS, "strength", "strength_low",
                                           "strength_high", "realism", "realism_low", "realism_high", "realism_n"])

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: `survey_participants`, `survey_votes`, `survey_cant_tell` over all groups, and per
        group, with the prefix `survey_<group>_` (<group>: 'time_budget_0.0'; no group part for a study without
        grouping fields): `participants`, `votes`, `cant_tell`; per method `selection_rate_<m>`, `bt_strength_<m>`,
        `realism_rate_<m>` (each with `_ci_low`, `_ci_high`); per pair `p_holm_<a>_vs_<b>`. <m> and <group> are
        written with the characters MLflow does not allow in a key replaced by '_'. Values that do not exist (no
        votes) are left out."""
        out = {"survey_participants": self.participants, "survey_votes": self.votes,
               "survey_cant_tell": self.cant_tell}
        for g in self.groups:
            prefix = "survey_" + "".join(f"{metric_name(f'{k}_{v}')}_" for k, v in g.group)
            keys = {m.method: metric_name(m.method) for m in g.methods}
            if len(set(keys.values())) < len(keys):
                raise ValueError(f"two methods map to one MLflow metric name: {keys}")
            if g.group:
                out.update({f"{prefix}participants": g.participants, f"{prefix}votes": g.votes,
                            f"{prefix}cant_tell": g.cant_tell})
            for m in g.methods:
                for name, (value, low, high) in {
                    "selection_rate": (m.selection.value, m.selection.low, m.selection.high),
                    "bt_strength": (m.strength, m.strength_low, m.strength_high),
                    "realism_rate": (m.realism.value, m.realism.low, m.realism.high),
                }.items():
                    key = f"{prefix}{name}_{keys[m.method]}"
                    out.update({key: value, f"{key}_ci_low": low, f"{key}_ci_high": high})
            for p in g.pairs:
                out[f"{prefix}p_holm_{keys[p.a]}_vs_{keys[p.b]}"] = p.p_holm
        return {k: float(v) for k, v in out.items() if math.isfinite(v)}


def metric_name(label: str) -> str:
    """An arm label as MLflow allows it in a metric key: 'contrast+hflip@200' -> 'contrast_hflip_200'."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", label)


def wilson(k: int, n: int) -> Rate:
    _, low, high = stats.wilson(k, n)
    return Rate(k, n, low, high)


def survey_results(db_path, n_boot: int = 1000, seed: int = 0) -> SurveyResults:
    """The figures of the votes in a survey database (see the module docstring for what each one counts).

    FileNotFoundError when there is no database, NoVotes (a ValueError) when it holds no decided vote between two
    methods.
    """
    return results_of_votes(read_votes(db_path), n_boot=n_boot, seed=seed, where=str(db_path))


def results_of_votes(votes: list[Vote], n_boot: int = 1000, seed: int = 0, where: str = "the survey") -> SurveyResults:
    """`survey_results` on votes already read: each comparison group's votes on their own."""
    groups = _by_group(votes)
    if not any(v.choice != "cant_tell" and REAL not in (v.left, v.right) for v in votes):
        raise NoVotes(f"no decided vote between two methods in {where} yet: "
                      "let participants answer `gansweep survey` first")
    return SurveyResults(
        groups=tuple(_group_results(group, groups[group], n_boot, seed) for group in groups),
        participants=len({v.participant for v in votes}), votes=len(votes),
        cant_tell=sum(v.choice == "cant_tell" for v in votes), real_votes=sum(REAL in (v.left, v.right) for v in votes),
        n_boot=n_boot, seed=seed)


def selection_table(votes: list[Vote], group_by: tuple[str, ...]) -> pd.DataFrame:
    """Selection rates only (no Bradley-Terry bootstrap, so it is cheap): one row per (group, method) that was in a
    method-vs-method pair, columns `group_by` fields then `RATE_COLUMNS`, groups in order and methods by label.
    Empty (with those columns) when there are no such votes."""
    rows = []
    for group, group_votes in _by_group(votes).items():
        counts = _head_to_head(group_votes)
        wins, ties = counts.wins_by.sum(axis=0).astype(int), counts.ties
        for i, m in enumerate(counts.methods):
            chosen, shown = int(wins[i].sum()), int(wins[i].sum() + wins[:, i].sum())
            rows.append({**dict(group), **_rate_row(m, wilson(chosen, shown), int(ties[i].sum()))})
    return pd.DataFrame(rows, columns=[*group_by, *RATE_COLUMNS])


def _rate_row(method: str, rate: Rate, cant_tell: int) -> dict:
    return {"arm": method, "chosen": rate.k, "decided": rate.n, "cant_tell": cant_tell, "rate": rate.value,
            "ci_low": rate.low, "ci_high": rate.high}


def _by_group(votes: list[Vote]) -> dict[Group, list[Vote]]:
    out = {}
    for v in votes:
        out.setdefault(v.group, []).append(v)
    return {g: out[g] for g in sorted(out, key=group_order)}


@dataclass(frozen=True)
class _Counts:
    """The method-vs-method votes of one group as arrays."""

    methods: list[str]  # methods of the group, by label; index i below
    people: list[str]  # participants with a method-vs-method vote; index p below
    wins_by: np.ndarray  # [p, i, j]: participant p chose i over j
    ties: np.ndarray  # [i, j]: "can't tell" on i-vs-j pairs (symmetric)


def _head_to_head(votes: list[Vote]) -> _Counts:
    methods = sorted({label for v in votes for label in (v.left, v.right)} - {REAL})
    head_to_head = [v for v in votes if REAL not in (v.left, v.right)]
    index = {m: i for i, m in enumerate(methods)}
    people = sorted({v.participant for v in head_to_head})  # the bootstrap's units
    person = {p: i for i, p in enumerate(people)}
    k = len(methods)
    wins_by = np.zeros((len(people), k, k))
    ties = np.zeros((k, k), dtype=int)
    for v in head_to_head:
        a, b = index[v.left], index[v.right]
        if v.choice == "cant_tell":
            ties[a, b] += 1
            ties[b, a] += 1
        else:
            winner, loser = (a, b) if v.choice == "left" else (b, a)
            wins_by[person[v.participant], winner, loser] += 1
    return _Counts(methods, people, wins_by, ties)


def _pair_test(votes: list[Vote], a: str, b: str, a_wins: int, n: int) -> list:
    """[test, p, share_low, share_high, generators of a, of b, raters] of the decided a-vs-b votes (see the module
    docstring: crossed where there are 2+ generators of each and 2+ raters, binomial otherwise)."""
    if not n:
        return ["", NAN, NAN, NAN, 0, 0, 0]
    decided = [v for v in votes if {v.left, v.right} == {a, b} and v.choice != "cant_tell"]
    rater = [v.participant for v in decided]
    gen_a = [v.left_table if v.left == a else v.right_table for v in decided]
    gen_b = [v.right_table if v.left == a else v.left_table for v in decided]
    counts = [len(set(rater)), len(set(gen_a) - {""}), len(set(gen_b) - {""})]
    if min(counts) >= 2 and "" not in (*gen_a, *gen_b):
        res = crossed_test(rater, gen_a, gen_b, [(v.choice == "left") == (v.left == a) for v in decided])
        return ["crossed", res.p, res.low, res.high, res.generators_a, res.generators_b, res.raters]
    rate = wilson(a_wins, n)
    return ["binomial", binomtest(a_wins, n, 0.5).pvalue, rate.low, rate.high, counts[1], counts[2], counts[0]]


def _group_results(group: Group, votes: list[Vote], n_boot: int, seed: int) -> GroupResults:
    counts = _head_to_head(votes)
    methods, k = counts.methods, len(counts.methods)
    wins, ties = counts.wins_by.sum(axis=0).astype(int), counts.ties
    if wins.sum() and k >= 2:
        strength = fit_strengths(wins)
        low, high, used = bootstrap_strengths(counts.wins_by, n_boot=n_boot, seed=seed)
    else:  # only "can't tell" or real-photo votes in this group: no scale to fit
        strength, low, high, used = (np.full(k, np.nan),) * 3 + (0,)

    pairs = []
    for a, b in itertools.combinations(range(k), 2):
        test, p, *rest = _pair_test(votes, methods[a], methods[b], int(wins[a, b]), int(wins[a, b] + wins[b, a]))
        pairs.append([methods[a], methods[b], int(wins[a, b]), int(wins[b, a]), int(ties[a, b]), p, NAN, test, *rest])
    tested = [row for row in pairs if not math.isnan(row[5])]
    for row, adjusted in zip(tested, stats.holm([row[5] for row in tested])):
        row[6] = adjusted

    rows = []
    for i, m in enumerate(methods):
        against_real = [v for v in votes if REAL in (v.left, v.right) and m in (v.left, v.right)]
        decided = [v for v in against_real if v.choice != "cant_tell"]
        chosen = sum((v.choice == "left") == (v.left == m) for v in decided)
        rows.append(MethodResult(
            method=m, selection=wilson(int(wins[i].sum()), int(wins[i].sum() + wins[:, i].sum())),
            cant_tell=int(ties[i].sum()), strength=float(strength[i]), strength_low=float(low[i]),
            strength_high=float(high[i]), realism=wilson(chosen, len(decided)),
            real_cant_tell=len(against_real) - len(decided),
            generators=len({t for v in votes for side, t in ((v.left, v.left_table), (v.right, v.right_table))
                            if side == m and t})))
    rows.sort(key=lambda r: (-r.strength if not math.isnan(r.strength) else math.inf, r.method))

    return GroupResults(
        group=group, methods=tuple(rows), pairs=tuple(PairResult(*row) for row in pairs),
        participants=len({v.participant for v in votes}), votes=len(votes),
        cant_tell=sum(v.choice == "cant_tell" for v in votes), real_votes=sum(REAL in (v.left, v.right) for v in votes),
        bt_mle_exists=bool(k >= 2 and wins.sum() and mle_exists(wins)), boot_used=used)
