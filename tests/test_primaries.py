"""Primary hypotheses: declared by a study's `Design`, checked when the study is built, answered first by the report
and on the MLflow parent run. The sweep is a real Tune experiment whose values are a closed formula
(tests/_primary_sweep.py); every p, Δ and interval is recomputed here independently (brute-force sign flips,
statsmodels' Holm and power)."""

from __future__ import annotations

import itertools
import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from gan.config import TrialConfig
from gan.metrics.schema import leakage_keys
from search_spaces import DESIGNS, STUDIES, Design, Hypothesis, build_study
from search_spaces.builders import grid_study
from search_spaces.da import DA_DESIGN, DEMO_SETTINGS, Arm, LeakageShare
from sweep.records import read_sweep
from sweep.report import primaries, stats
from sweep.report.tables import finals_table
from sweep.report.write import write_report
from tests import _primary_sweep as ps


def sign_flip_greater(diffs) -> float:
    """One-sided p of the mean over all 2^n sign assignments, counted by hand."""
    obs = np.mean(diffs)
    means = [np.mean([s * d for s, d in zip(signs, diffs)]) for signs in itertools.product((-1, 1), repeat=len(diffs))]
    return sum(m >= obs - 1e-12 for m in means) / len(means)


# --- declared before anything runs ----------------------------------------------------------------------------------


def test_study_1_designs_declare_vflip_and_negpos_leaks_one_sided():
    names = [(h.name, h.direction, dict(h.arm), dict(h.baseline)) for h in DA_DESIGN.primaries]
    none = {"da": "none", "d_aug": "none"}
    assert names == [("vflip-leaks", "greater", {"da": "vflip", "d_aug": "none"}, none),
                     ("negpos-leaks", "greater", {"da": "negpos", "d_aug": "none"}, none)]
    for h, da in zip(DA_DESIGN.primaries, ("vflip", "negpos")):
        for ext in ("effnet", "inception"):
            assert h.metric(ext) == leakage_keys(ext, da)[0]
    # every study whose design declares primaries builds (the check resolves each hypothesis on its arms)
    declaring = [n for n, d in DESIGNS.items() if d.primaries]
    assert {"paper", "paper-celeba", "paper-pomeranian", "demo"} <= set(declaring)
    for name in declaring:
        study = build_study(name)
        for h in study.design.primaries:
            arms = {TrialConfig(**c).arm for c in study.configs if h.matches(c)}
            baselines = {TrialConfig(**c).arm for c in study.configs if h.is_baseline(c)}
            assert arms and baselines == {"none"} and not arms & baselines, (name, arms, baselines)
    assert not DESIGNS["ratios"].primaries and not DESIGNS["optuna-da"].primaries
    assert set(DESIGNS) == set(STUDIES)
    json.dumps(build_study("demo").design.as_dict())  # the plan record holds it


def _study(design: Design, arms=("none", "vflip", "negpos")):
    return grid_study("t", "test", design, [DEMO_SETTINGS], [Arm(a, 0 if a == "none" else 1) for a in arms], seeds=2)


def _hypothesis(**changes) -> Hypothesis:
    import dataclasses

    return dataclasses.replace(DA_DESIGN.primaries[0], **changes)


@pytest.mark.parametrize("changes, arms, error", [
    ({}, ("none", "hflip"), "study 't', primary hypothesis 'vflip-leaks': no arm has da=vflip, d_aug=none; the study's arms: "
                            "none, hflip@64"),
    ({"arm": (("dataset", "x"),)}, ("none", "vflip"), "'dataset' is not an arm field; allowed: da, n_aug, pair_ratio"),
    ({"direction": "up"}, ("none", "vflip"), "direction 'up' is unknown; allowed: greater, less, two-sided"),
    ({"metric": lambda ext: f"leakage_upside_{ext}"}, ("none", "vflip"),
     "metric 'leakage_upside_effnet' is not a key of gan.metrics.schema"),
    ({}, ("vflip", "hflip"), "arm vflip@64 has no baseline da=none, d_aug=none trained in the same context"),
])
def test_a_hypothesis_that_does_not_resolve_fails_when_the_study_is_built(changes, arms, error):
    design = Design(DA_DESIGN.arm_fields, DA_DESIGN.group_by, "none", primaries=(_hypothesis(**changes),))
    with pytest.raises(ValueError, match=re.escape(error)):
        _study(design, arms)


def test_names_are_unique_and_restricting_arms_keeps_the_primaries_that_still_resolve():
    twice = Design(DA_DESIGN.arm_fields, DA_DESIGN.group_by, "none", primaries=(_hypothesis(), _hypothesis()))
    with pytest.raises(ValueError, match="primary hypothesis names must be unique, got vflip-leaks, vflip-leaks"):
        _study(twice)
    demo = build_study("demo")
    assert [h.name for h in demo.restrict(["none", "vflip@64"]).design.primaries] == ["vflip-leaks"]
    assert demo.restrict(["none"]).design.primaries == ()


# --- answered first, over seeds -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    import shutil

    out = tmp_path_factory.mktemp("primary") / "sweep"
    shutil.copytree(ps.experiment(), out)
    return out


@pytest.fixture(scope="module")
def rep(sweep):
    return write_report(sweep, DA_DESIGN, ps.KID, "min")


@pytest.fixture(scope="module")
def md(rep, sweep) -> str:
    return (sweep / "report" / "summary.md").read_text()


def _diffs(key: str, da: str) -> list[float]:
    return [ps.metrics(da, s)[key] - ps.metrics("none", s)[key] for s in ps.SEEDS]


def test_each_primary_is_tested_over_seeds_with_holm_across_the_primaries_only(rep):
    from scipy.stats import t
    from statsmodels.stats.multitest import multipletests

    vflip, negpos = rep.primaries
    assert (vflip.status, negpos.status, vflip.arm, negpos.arm) == ("tested", "tested", "vflip@64", "negpos@64")
    p_v, p_n = sign_flip_greater(_diffs(ps.VFLIP, "vflip")), sign_flip_greater(_diffs(ps.NEGPOS, "negpos"))
    assert p_v == 2.0 ** -6  # every seed leaks: the smallest p 6 seeds allow, not 0
    assert (vflip.cmp.test, vflip.cmp.p, negpos.cmp.p) == ("sign-flip", pytest.approx(p_v), pytest.approx(p_n))
    holm = multipletests([p_v, p_n], method="holm")[1]
    assert (vflip.p_holm, negpos.p_holm) == (pytest.approx(holm[0]), pytest.approx(holm[1]))
    assert vflip.holds and not negpos.holds
    d = _diffs(ps.VFLIP, "vflip")
    sd = np.std(d, ddof=1)
    assert vflip.cmp.delta == pytest.approx(np.mean(d)) and vflip.cmp.d_z == pytest.approx(np.mean(d) / sd)
    assert vflip.cmp.ci == pytest.approx(t.ppf(0.975, 5) * sd / math.sqrt(6))  # a t interval over seeds
    assert vflip.arm_mean == pytest.approx(np.mean([ps.metrics("vflip", s)[ps.VFLIP] for s in ps.SEEDS]))
    # the exploratory families are separate: KID differences, two-sided, Holm over the group's 2 arms; 6 seeds
    # two-sided cannot reach 0.05 / 2 by sign flips (2^-5), so the t-test
    s = rep.summary.set_index("arm")
    assert s.loc["negpos@64", "family"] == 2 and s.loc["vflip@64", "test"] == "t"


def test_the_report_opens_with_the_answer_and_the_power_statement(rep, md):
    from statsmodels.stats.power import TTestPower

    assert md.startswith("# Sweep summary\n\n## The answer: primary hypotheses\n\n- **vflip leaks** (vflip@64 "
                         "against none; dataset = lfw-subset, n_aug = 64): 46.5% of samples upside down against 5.0% "
                         "for none (Δ +41.5 points ± 1.72 points, d_z = 25.26); ")
    assert "p = 0.031 after Holm (one-sided exact sign-flip over 6 seeds): holds." in md
    dz = TTestPower().solve_power(effect_size=None, nobs=6, alpha=0.025, power=0.8, alternative="larger")
    negpos = rep.primaries[1]
    could = dz * np.std(_diffs(ps.NEGPOS, "negpos"), ddof=1) * 100
    assert f"does not hold: no detectable difference (could detect >= {could:.3g} points, d_z >= {dz:.2f}, at 80% " \
           "power)" in md and negpos.cmp.detectable_dz == pytest.approx(dz)
    assert (f"With 6 seeds and 2 tested primaries (Holm), a one-sided test at 80% power detects d_z >= {dz:.2f} "
            "(statsmodels TTestPower; approximate for the sign-flip test); the exact sign-flip test's smallest p "
            "with 6 seeds is 0.016, within Holm's first threshold 0.025.") in md
    answer, rest = md.split("## Exploratory comparisons", 1)
    assert "Everything after this section is exploratory" in answer
    ranking = rest.split("## Leakage", 1)[0]
    for section in (answer, ranking):  # no interval or test on pooled counts: no Wilson brackets, no k/n
        assert not re.search(r"\[\d\.\d+, \d\.\d+\]|\(\d+/\d+\)|Wilson|pooled", section)


def test_ranks_and_best_only_where_a_difference_holds(rep, md):
    s = rep.summary.set_index("arm")
    assert (s.loc["negpos@64", "rank"], s.loc["vflip@64", "rank"]) == (1, 2)  # both hold: ranked, by KID
    assert rep.best[0]["arm"] == "negpos@64" and rep.best[0]["verdict"] == "better than none (holds)"
    # the same sweep with negpos's KID advantage gone to noise: it neither ranks nor is best, and says what it
    # could have detected; vflip, worse, ranks but is no best arm
    finals = finals_table(read_sweep(sweep_of(rep)), DA_DESIGN)
    noise = dict(zip(ps.SEEDS, (0.01, -0.01, 0.02, -0.02, 0.005, -0.005)))
    hit = finals["arm"] == "negpos@64"
    finals.loc[hit, ps.KID] = [0.50 + 0.01 * seed + noise[seed] for seed in finals.loc[hit, "seed"]]
    from sweep.report.tables import best_per_group, summarize
    from sweep.report.write import summary_markdown

    t = summarize(finals, DA_DESIGN, ps.KID, "min")
    u = t.set_index("arm")
    assert pd_na(u.loc["negpos@64", "rank"]) and u.loc["vflip@64", "rank"] == 1
    (best,) = best_per_group(t, DA_DESIGN, ps.KID, "min")
    assert best["arm"] is None and best["verdict"] == "no arm better than none by a difference that holds; worse " \
                                                      "(holds): vflip@64"
    row = next(line for line in summary_markdown(t, DA_DESIGN, ps.KID, "min").splitlines()
               if line.startswith("| –    | negpos@64"))
    could = u.loc["negpos@64", "detectable_dz"] * np.std(list(noise.values()), ddof=1)
    assert f"no detectable difference (could detect >= {could:.2g}, d_z >= " in row


def sweep_of(rep):
    return rep.files[0].parent.parent


def pd_na(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_not_measurable_is_never_tested_and_the_expected_value_is_shown(rep, sweep):
    finals = finals_table(read_sweep(sweep), DA_DESIGN).drop(columns=[ps.NEGPOS])
    finals["expected_vflip"] = 0.47
    vflip = _hypothesis(expected=lambda ext: "expected_vflip")
    design = Design(DA_DESIGN.arm_fields, DA_DESIGN.group_by, "none", primaries=(vflip, DA_DESIGN.primaries[1]))
    got = primaries.evaluate(finals, design, ps.EXT)
    assert [p.status for p in got] == ["tested", "not measurable"] and got[1].cmp is None
    assert got[0].p_holm == pytest.approx(2.0 ** -6)  # the family is the tested primaries: one
    words = primaries.sentence(got[0])
    assert words.endswith("holds; expected 47.0% if the generator fits its training mixture.")
    assert f"not measurable on this data: its instrument cannot see it here (no trial reports `{ps.NEGPOS}`" \
        in primaries.sentence(got[1])
    # a measurability flag of 0 on any seed makes a reported share untestable too
    finals["seen"] = [0.0 if (r["arm"] == "vflip@64" and r["seed"] == 2) else 1.0 for _, r in finals.iterrows()]
    flagged = Design(DA_DESIGN.arm_fields, DA_DESIGN.group_by, "none",
                     primaries=(_hypothesis(measurable=lambda ext: "seen"),))
    assert [p.status for p in primaries.evaluate(finals, flagged, ps.EXT)] == ["not measurable"]
    assert "1 tested primary (Holm)" in primaries.power_statement(got)
    none = primaries.evaluate(finals, Design(DA_DESIGN.arm_fields, DA_DESIGN.group_by, "none"), ps.EXT)
    assert primaries.answer_markdown(none)[2].startswith("This study declares no primary hypotheses")


def test_the_mlflow_parent_run_carries_the_answer(sweep, tmp_path):
    from mlflow import MlflowClient

    from sweep.execution.driver import _report
    from sweep.mlflow.tracker import SweepTracker

    uri = f"sqlite:///{tmp_path}/m.db"
    tracker = SweepTracker(uri, experiment_name="primary")
    run_id = tracker.start_sweep("s", str(sweep), "demo")
    plan = SimpleNamespace(path=str(sweep), design=DA_DESIGN, metric=ps.KID, mode="min",
                           configs=tuple(TrialConfig(**ps.config(da, s)) for da in ps.DAS for s in ps.SEEDS))
    _report(plan, tracker)
    tracker.end_sweep()
    run = MlflowClient(uri).get_run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["gansweep.answer"].startswith("vflip leaks (vflip@64 against none; dataset = lfw-subset, n_aug = 64): "
                                              "46.5% of samples upside down against 5.0% for none")
    assert "With 6 seeds and 2 tested primaries (Holm)" in tags["gansweep.answer"]
    assert tags["gansweep.primary.vflip-leaks"].endswith(": holds.")
    assert metrics["primary.vflip-leaks.p_holm"] == pytest.approx(2 * 2.0 ** -6)
    assert metrics["primary.vflip-leaks.holds"] == 1 and metrics["primary.negpos-leaks.holds"] == 0
    assert metrics["primary.vflip-leaks.delta"] == pytest.approx(np.mean(_diffs(ps.VFLIP, "vflip")))
    assert tags["gansweep.exploratory"] == primaries.EXPLORATORY
    assert tags["gansweep.best.lfw-subset.64"] == "negpos@64"  # the best arm's difference holds
