"""The answer to a study's primary hypotheses (`search_spaces.space.Hypothesis`, declared by its `Design`).

Each (arm, context) a hypothesis matches in the sweep is one primary test: the arm's per-seed values of the
hypothesis's metric against its baseline's on the same seeds (`stats.paired`, in the hypothesis's direction), Holm's
correction across the primary tests only. A test is left out of that family, and said so, when its metric is not
measured in the sweep (absent or NaN in every trial: the instrument cannot see it on this data; with a `measurable`
key, also when any finished seed of the arm or its baseline reports that key other than 1), when fewer than
`stats.MIN_SEEDS` seeds finished on both sides, or when its arm is not in the sweep at all. Everything else the
report shows is exploratory.

`evaluate` makes the results; `answer_markdown` the report's opening; `answer_text` and `mlflow_fields` what the
MLflow parent run carries.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import pandas as pd

from search_spaces import Design, Hypothesis
from sweep.report import stats
from sweep.report.tables import group_title, scores

EXPLORATORY = ("exploratory: every comparison other than the primary hypotheses (each group's arms against the "
               "baseline, two-sided, Holm within the group)")  # the label of everything else, report and MLflow


@dataclass(frozen=True)
class Primary:
    """One primary test: a hypothesis on one arm in one context."""

    hypothesis: Hypothesis
    key: str  # the metric key under the sweep's extractor
    arm: str | None  # the arm's label (None: the sweep has no arm the hypothesis names)
    baseline: str | None  # the baseline arm's label
    group: str  # the group's title ('dataset = lfw-subset, n_aug = 64'), '' without groups
    status: str  # 'tested', 'not measurable', 'too few seeds', 'not in this sweep'
    cmp: stats.Paired | None = None  # the paired comparison (tested only)
    arm_mean: float = math.nan  # mean of the metric over the arm's finished seeds
    base_mean: float = math.nan
    expected: float = math.nan  # mean of the hypothesis's expected-value key over the arm's seeds (NaN: absent)
    complete: bool = False  # every seed of the arm and of its baseline finished
    p_holm: float = math.nan  # Holm-adjusted across the tested primaries

    @property
    def holds(self) -> bool:
        return self.status == "tested" and self.complete and self.p_holm < stats.ALPHA


def _finished_mean(trials: pd.DataFrame, key: str) -> float:
    return stats.mean_ci(scores(trials, key).values())[0]


def evaluate(finals: pd.DataFrame, design: Design, extractor: str) -> list[Primary]:
    """Every primary test of the design's hypotheses on the sweep's final results (`tables.finals_table`)."""
    found: list[tuple[Primary, tuple | None]] = []  # (the test without its comparison, the per-seed values)
    records = finals.to_dict("records")
    for h in design.primaries:
        key = h.metric(extractor)
        measured = key in finals and bool(finals[key].notna().any())
        matched = finals[[h.matches(r) for r in records]] if records else finals
        if matched.empty:
            found.append((Primary(h, key, None, None, "", "not in this sweep"), None))
            continue
        for (context, arm), trials in matched.groupby(["context", "arm"], sort=True):
            base = finals[(finals["context"] == context) & pd.Series([h.is_baseline(r) for r in records],
                                                                     index=finals.index)]
            a, b = scores(trials, key), scores(base, key)
            blind = h.measurable is not None and any(
                v != 1.0 for part in (trials, base) for v in scores(part, h.measurable(extractor)).values())
            status = ("not measurable" if not measured or blind else
                      "too few seeds" if len(set(a) & set(b)) < stats.MIN_SEEDS else "tested")
            complete = bool((trials["outcome"] == "finished").all() and len(base)
                            and (base["outcome"] == "finished").all())
            found.append((Primary(
                h, key, arm, base["arm"].iloc[0] if len(base) else None,
                group_title(design, tuple(trials[k].iloc[0] for k in design.group_by), spaced=True), status,
                arm_mean=_finished_mean(trials, key), base_mean=_finished_mean(base, key),
                expected=_finished_mean(trials, h.expected(extractor)) if h.expected else math.nan,
                complete=complete), (a, b)))
    family = sum(p.status == "tested" for p, _ in found)
    tested = [dataclasses.replace(p, cmp=stats.paired(*pairs, alternative=p.hypothesis.direction, family=family))
              if p.status == "tested" else p for p, pairs in found]
    adjusted = iter(stats.holm([p.cmp.p for p in tested if p.cmp is not None]))
    return [dataclasses.replace(p, p_holm=next(adjusted)) if p.cmp is not None else p for p in tested]


# --- words --------------------------------------------------------------------------------------------------------


def _value(h: Hypothesis, v: float) -> str:
    if pd.isna(v):
        return "–"
    return f"{v:.1%}" if h.percent else f"{v:.3g}"


def _diff(h: Hypothesis, v: float) -> str:
    """A difference with its sign (a share's in percentage points); float noise around 0 reads as 0."""
    if pd.isna(v):
        return "–"
    v = 0.0 if abs(v) < 1e-12 else v
    return f"{100 * v:+.3g} points" if h.percent else f"{v:+.3g}"


def _p(p: float) -> str:
    return "–" if pd.isna(p) else f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _dz(d: float) -> str:
    return "–" if pd.isna(d) else ("∞" if d > 0 else "-∞") if math.isinf(d) else f"{d:.2f}"


def _test_words(c: stats.Paired) -> str:
    side = "one-sided" if c.alternative != "two-sided" else "two-sided"
    kind = "exact sign-flip" if c.test == "sign-flip" else "paired t-test"
    return f"{side} {kind} over {c.n} seeds"


def sentence(p: Primary) -> str:
    """One primary's answer in words and numbers."""
    h = p.hypothesis
    where = f"{p.arm} against {p.baseline}" + (f"; {p.group}" if p.group else "")
    if p.status == "not in this sweep":
        return f"**{h.text}**: not in this sweep (no arm with {', '.join(f'{k}={v}' for k, v in h.arm)})."
    if p.status == "not measurable":
        return (f"**{h.text}** ({where}): not measurable on this data: its instrument cannot see it here (no "
                f"trial reports `{p.key}`, or a seed's probe is blind), so it is not tested.")
    what = f" {h.what}" if h.what else ""
    values = f"{_value(h, p.arm_mean)}{what} against {_value(h, p.base_mean)} for {p.baseline}"
    if p.status == "too few seeds":
        return f"**{h.text}** ({where}): {values}; untested: fewer than {stats.MIN_SEEDS} seeds finished on both sides."
    c = p.cmp
    effect = f"Δ {_diff(h, c.delta)}" + (f" ± {_diff(h, c.ci).lstrip('+')}" if pd.notna(c.ci) else "") \
        + f", d_z = {_dz(c.d_z)}"
    verdict = ("holds" if p.holds else "does not hold: seeds were lost (incomplete)" if p.p_holm < stats.ALPHA
               else f"does not hold: with {c.n} seeds no difference could reach Holm's threshold" if not c.reachable
               else f"does not hold: no detectable difference (could detect >= {_diff(h, c.detectable).lstrip('+')}"
                    f", d_z >= {_dz(c.detectable_dz)}, at 80% power)")
    expected = f"; expected {_value(h, p.expected)} if the generator fits its training mixture" \
        if pd.notna(p.expected) else ""
    return (f"**{h.text}** ({where}): {values} ({effect}); p = {_p(p.p_holm)} after Holm ({_test_words(c)}): "
            f"{verdict}{expected}.")


def power_statement(results: list[Primary]) -> str:
    """What the primary tests could detect, and whether the sign-flip test could reach alpha at all."""
    tested = [p for p in results if p.status == "tested"]
    if not tested:
        return "No primary hypothesis could be tested in this sweep."
    m = len(tested)
    lines = []
    for n, alternative in sorted({(p.cmp.n, p.cmp.alternative) for p in tested}):
        side = "one-sided" if alternative != "two-sided" else "two-sided"
        smallest = stats.smallest_p(n, alternative)
        reach = (f"the exact sign-flip test's smallest p with {n} seeds is {_p(smallest)}, within Holm's first "
                 f"threshold {_p(stats.ALPHA / m)}" if stats.sign_flip_allowed(n, alternative, m) else
                 f"the exact sign-flip test's smallest p with {n} seeds is {_p(smallest)}: no effect, however large, "
                 f"could reach Holm's first threshold {_p(stats.ALPHA / m)} with it, so the paired t-test (normal "
                 "differences assumed) is used")
        lines.append(f"With {n} seeds and {m} tested primar{'y' if m == 1 else 'ies'} (Holm), a {side} test at "
                     f"80% power detects d_z >= {_dz(stats.detectable_dz(n, alternative, m))} (statsmodels "
                     f"TTestPower; approximate for the sign-flip test); {reach}.")
    return " ".join(lines)


def answer_markdown(results: list[Primary]) -> list[str]:
    """The report's opening: the answer to each primary hypothesis, the power statement, and the label of the rest."""
    if not results:
        return ["## The answer", "", "This study declares no primary hypotheses: every comparison below is "
                "exploratory.", ""]
    return ["## The answer: primary hypotheses", "", *[f"- {sentence(p)}" for p in results], "",
            power_statement(results), "",
            f"Declared by the study's design before the sweep ran; one-sided where the hypothesis is, Holm across the "
            f"primary tests only (α = {stats.ALPHA}). Everything after this section is {EXPLORATORY}.", ""]


def answer_text(results: list[Primary]) -> str:
    """The answer in plain words (the Markdown's sentences without emphasis), for the MLflow tag."""
    if not results:
        return "No primary hypotheses declared: everything is exploratory."
    return " ".join([*(re.sub(r"\*\*|`", "", sentence(p)) for p in results), power_statement(results)])


def mlflow_fields(results: list[Primary]) -> dict[str, dict]:
    """Per primary test: its MLflow name (the hypothesis, with its group when it has more than one test) -> its
    verdict in words, p (Holm), delta, d_z, the detectable difference and whether it holds (NaN where untested)."""
    counts: dict[str, int] = {}
    for p in results:
        counts[p.hypothesis.name] = counts.get(p.hypothesis.name, 0) + 1
    out = {}
    for p in results:
        name = p.hypothesis.name if counts[p.hypothesis.name] == 1 else f"{p.hypothesis.name}.{p.arm}.{p.group}"
        name = re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)
        c = p.cmp
        out[name] = {"verdict": re.sub(r"\*\*|`", "", sentence(p)), "status": p.status,
                     "p_holm": p.p_holm, "delta": c.delta if c else math.nan, "d_z": c.d_z if c else math.nan,
                     "detectable": c.detectable if c else math.nan, "holds": float(p.holds)}
    return out
