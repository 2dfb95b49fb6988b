"""The report's rules on a hand-written sweep (tests/_report_sweep.py, every number a closed formula): the baseline is
not ranked, one seed cannot rank, survivors never "hold", leakage over seeds with its expected value beside the real
images, the floor without a held-out set, the reference said once, the SR gains, the survey column, and the
answer on the MLflow parent run (driver._report) read back with MlflowClient."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from gan.config import TrialConfig
from gan.metrics.schema import REPORT_TABLES
from search_spaces import Design
from search_spaces.da import DA_DESIGN
from sweep.report.write import share_markdown, summary_markdown, value_markdown, write_report
from sweep.report.tables import finals_table, gain_table, reference_notes, summarize, value_table
from sweep.records import read_sweep
from sweep.report import stats
from tests import _report_sweep as hs

GROUP = "## dataset = lfw-subset, n_aug = 100"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return hs.write_sweep(tmp_path_factory.mktemp("rules") / "sweep")


@pytest.fixture(scope="module")
def rep(sweep):
    return write_report(sweep, DA_DESIGN, hs.KID, "min")


@pytest.fixture(scope="module")
def md(rep, sweep) -> str:
    return (sweep / "report" / "summary.md").read_text()


def table_rows(md: str, heading: str) -> list[list[str]]:
    """The cells of the first Markdown table under `heading`."""
    lines = md.split(heading + "\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_baseline_shows_as_base_and_nothing_ranks_without_a_difference_that_holds(rep, md):
    s = rep.summary.set_index("arm")
    # hflip: KID 0.10 below none on each of 3 seeds (no spread): exact two-sided p = 2/8, so it cannot hold
    assert (s.loc["hflip@100", "p"], s.loc["hflip@100", "holds"]) == (pytest.approx(0.25), False)
    assert s["rank"].isna().all()
    rows = table_rows(md, GROUP)
    assert [r[:2] for r in rows] == [["base", "none"], ["–", "contrast@100"], ["–", "hflip@100"],
                                     ["–", "vflip@100"], ["", "real images (floor)"]]
    assert {r[1]: r[9] for r in rows}["hflip@100"] == "no difference could hold on 3 seeds"


def test_one_seed_cannot_rank(rep, md):
    v = rep.summary.set_index("arm").loc["vflip@100"]
    assert pd.isna(v["rank"]) and pd.isna(v[f"{hs.KID}_ci95"]) and pd.isna(v["p"]) and v["n_pairs"] == 1
    row = next(r for r in table_rows(md, GROUP) if r[1] == "vflip@100")
    assert (row[0], row[5], row[6], row[7], row[8], row[9]) == ("–", "0.1", "-0.4", "–", "–", "")  # no ±, d_z, p
    assert "1 arm(s) have fewer than 2 finished seeds: they show no rank (–), no interval and no test" in md


def _finals(outcomes: dict, diffs=(-0.10, -0.12, -0.08, -0.11)) -> pd.DataFrame:
    """4 seeds of `none` (KID 0.5 + 0.01 s) and of arm `a` (none + diffs[s]); `outcomes`: (arm, seed) -> outcome."""
    rows = []
    for arm, da in (("none", "none"), ("a", "hflip")):
        for seed, d in enumerate(diffs):
            out = outcomes.get((arm, seed), "finished")
            value = 0.5 + 0.01 * seed + (d if arm == "a" else 0.0)
            rows.append({"trial_id": f"{arm}{seed}", "arm": arm, "seed": seed, "outcome": out, "dataset": "d",
                         "n_aug": 0, "da": da, "context": "[]", hs.KID: value if out == "finished" else math.nan})
    return pd.DataFrame(rows)


def test_survivors_of_a_lost_seed_never_hold(md):
    design = Design(arm_fields=("da",), group_by=("dataset",), baseline="none")
    full = summarize(_finals({}), design, hs.KID, "min").set_index("arm").loc["a"]
    assert (full["test"], full["significant"], full["holds"], full["rank"]) == ("t", True, True, 1)
    # a: its 3 surviving seeds are as clearly better, but its seed 3 diverged: shown, never ✓, never ranked
    lost = summarize(_finals({("a", 3): "diverged"}), design, hs.KID, "min").set_index("arm").loc["a"]
    assert (lost["significant"], lost["complete"], lost["holds"]) == (True, False, False) and pd.isna(lost["rank"])
    assert "incomplete" in summary_markdown(summarize(_finals({("a", 3): "diverged"}), design, hs.KID, "min"),
                                            design, hs.KID, "min")
    assert "every seed of the arm and of `none` finished" in md
    # a baseline that lost a seed: no arm of its group holds, however large its difference
    base = summarize(_finals({("none", 3): "diverged"}), design, hs.KID, "min").set_index("arm").loc["a"]
    assert base["significant"] and not base["holds"]


def test_leakage_is_over_seeds_with_its_expected_value_beside_the_real_images(rep, md):
    from scipy import stats as sps

    s = rep.summary.set_index("arm")
    for arm, da, seeds in (("none", "none", hs.SEEDS), ("hflip@100", "hflip", hs.SEEDS),
                           ("contrast@100", "contrast", (0, 1))):
        shares = [hs.vflip_called(da, seed) / 10 for seed in seeds]
        half = sps.t.ppf(0.975, len(seeds) - 1) * sps.sem(shares)  # a t interval over seeds, never pooled counts
        row = s.loc[arm]
        assert (row[f"{hs.VFLIP}_share"], row[f"{hs.VFLIP}_share_ci95"], row[f"{hs.VFLIP}_share_n"]) == (
            pytest.approx(sum(shares) / len(shares)), pytest.approx(half), len(seeds))
        assert row[f"{hs.VFLIP}_expected"] == pytest.approx(0.1) and row[f"{hs.VFLIP}_measurable"]
        assert not row[f"{hs.HFLIP}_measurable"] and pd.isna(row[f"{hs.HFLIP}_share"])
        assert not row[f"{hs.HFLIP}_holds"] and pd.isna(row[f"{hs.HFLIP}_p_holm"])  # blind: never tested
    assert s.loc["vflip@100", f"{hs.VFLIP}_expected"] == pytest.approx(0.5 * 0.9 + 0.5 * 0.1)
    assert s.loc["hflip@100", f"{hs.VFLIP}_delta"] == pytest.approx(-0.1)  # paired by seed, as the ranking metric
    leak = md.split("## Leakage of each DA into the samples", 1)[1]
    rows = {r[1]: r for r in table_rows(leak, "### dataset = lfw-subset, n_aug = 100")}
    assert rows["none"][2] == "0.60 ± 0.25 (exp 0.10; 3 seeds)" and rows["none"][3] == "not measurable"
    assert rows["real images (floor)"][2:] == ["0.10 ± 0.25", "–"]  # seeds 0, 1, 2: 0.0, 0.1, 0.2
    assert rows["hflip@100"][2].startswith("0.50 ± 0.25 (exp 0.10; 3 seeds), Δ -0.1, p ")
    tpr = sum(hs.probe(seed)[hs.VFLIP]["tpr"] for seed in hs.SEEDS) / len(hs.SEEDS)
    fpr = sum(hs.probe(seed)[hs.HFLIP]["fpr"] for seed in hs.SEEDS) / len(hs.SEEDS)
    assert rows["probe on held-out real images (TPR / FPR)"][2:] == [f"{tpr:.2f} / 0.10",
                                                                     f"not measurable: 0.50 / {fpr:.2f}"]
    assert "Wilson" not in leak and "/30" not in leak


def test_summary_csv_holds_the_seed_level_shares(rep, sweep):
    csv = pd.read_csv(sweep / "report" / "summary.csv").set_index("arm")
    assert csv.loc["none", f"{hs.VFLIP}_share"] == pytest.approx(0.6) and csv.loc["none", f"{hs.VFLIP}_share_n"] == 3
    assert csv.loc["none", f"{hs.VFLIP}_share_lo"] == pytest.approx(rep.summary.set_index("arm").loc[
        "none", f"{hs.VFLIP}_share_lo"])


def test_floor_without_a_held_out_set_keeps_the_real_images_own_is(tmp_path):
    sweep = hs.write_sweep(tmp_path / "train-ref", held_out=False)
    write_report(sweep, DA_DESIGN, hs.KID, "min")
    md = (sweep / "report" / "summary.md").read_text()
    real = table_rows(md, GROUP)[-1]
    assert real[1] == "real images (own IS only: no held-out set)"
    assert real[5] == "–" and real[11].startswith("2.1 ± ")  # KID of a set to itself: none; IS: 2.0, 2.1, 2.2
    assert md.count("Reference for lfw-subset (seeds 0, 1, 2): the 100 training images themselves.") == 1


def test_reference_notes_are_said_once():
    inputs = [{"match": {"seed": s}, "notes": [f"Reference for x (seed {s}): 5 held-out.", "Same for all."]}
              for s in (0, 1, 2)]
    inputs.append({"match": {"seed": 3}, "notes": ["Reference for x (seed 3): the training set."]})
    assert reference_notes(inputs) == ["Reference for x (seeds 0, 1, 2): 5 held-out.", "Same for all.",
                                       "Reference for x (seed 3): the training set."]


def test_the_ranking_metric_says_why(md):
    assert "- Ranking metric: `kid_mean_effnet`" in md
    assert "- Why this metric ranks: its estimate is unbiased at any sample count" in md


def test_gains_over_what_a_method_refines():
    """The SR table's gains per seed (srcnn - bicubic), their interval and test, and the verdict."""
    from scipy import stats as st

    design = Design(arm_fields=("method",), group_by=("budget",), baseline="dcgan64")
    rows = []
    for seed, (srcnn, bicubic) in enumerate([(30.0, 29.0), (31.0, 29.5), (29.0, 28.7)]):
        rows.append({"trial_id": f"b{seed}", "arm": "sr", "seed": seed, "outcome": "finished", "budget": 1,
                     "context": "[]", "psnr_srcnn": srcnn, "psnr_bicubic": bicubic, "ssim_srcnn": 0.5,
                     "ssim_bicubic": 0.5 + 0.01 * seed})
    finals = pd.DataFrame(rows)
    spec = next(t for t in REPORT_TABLES if t.gains)
    gains = gain_table(finals, design, spec.gains).iloc[0]
    diffs = [1.0, 1.5, 0.3]
    assert gains["psnr_srcnn_gain"] == pytest.approx(sum(diffs) / 3)
    assert gains["psnr_srcnn_gain_p"] == pytest.approx(st.ttest_1samp(diffs, 0).pvalue)
    assert gains["psnr_srcnn_beats"] == (st.ttest_1samp(diffs, 0).pvalue < 0.05)
    beats = gains["ssim_srcnn_beats"]
    assert beats is not None and not beats  # lower than bicubic on seeds 1 and 2
    md = "\n".join(value_markdown(spec, value_table(finals, design, spec.keys(None)), gain_table(
        finals, design, spec.gains), spec.keys(None), design))
    assert "PSNR gain (dB)" in md and "does not beat bicubic" in md
    ssim = [-0.0, -0.01, -0.02]  # srcnn - bicubic per seed: 3 seeds, so the t-test
    could = stats.detectable_dz(3) * float(np.std(ssim, ddof=1))
    assert gains["ssim_srcnn_gain_dz"] == pytest.approx(np.mean(ssim) / np.std(ssim, ddof=1))
    assert f"does not beat bicubic (p {st.ttest_1samp(ssim, 0).pvalue:.3f}; could detect >= {could:.2g})" in md
    one = gain_table(finals[finals["seed"] == 0], design, spec.gains).iloc[0]
    assert one["psnr_srcnn_beats"] is None


def test_design_notes_are_printed_once_beside_the_reference(tmp_path):
    design = Design(arm_fields=DA_DESIGN.arm_fields, group_by=DA_DESIGN.group_by, baseline="none",
                    notes=((("vflip@100",), "Vflip is resized."), (("nothing@1",), "Not in this sweep.")))
    sweep = hs.write_sweep(tmp_path / "notes")
    rep = write_report(sweep, design, hs.KID, "min")
    md = (sweep / "report" / "summary.md").read_text()
    assert md.count("- Vflip is resized.") == 1 and "Not in this sweep" not in md
    assert "Vflip is resized." in rep.notes


def test_survey_rates_are_a_column_per_group(rep):
    rates = pd.DataFrame([{"dataset": "lfw-subset", "n_aug": 100, "arm": "hflip@100", "chosen": 30, "decided": 40,
                           "rate": 0.75, "ci_low": 0.6, "ci_high": 0.86}])
    md = summary_markdown(rep.summary, DA_DESIGN, hs.KID, "min", rates=rates)
    rows = {r[1]: r for r in table_rows(md, GROUP)}
    assert "selected (survey)" in md and rows["hflip@100"][2] == "75% [60%, 86%] of 40" and rows["none"][2] == "–"
    assert "selected (survey)" not in summary_markdown(rep.summary, DA_DESIGN, hs.KID, "min")


def _plan(sweep: Path) -> SimpleNamespace:
    """What driver._report reads of a Plan: 4 arms x 3 seeds as the plan resolved them."""
    configs = tuple(TrialConfig(**hs.config(da, s)) for da in ("none", "hflip", "contrast", "vflip") for s in hs.SEEDS)
    return SimpleNamespace(path=str(sweep), design=DA_DESIGN, metric=hs.KID, mode="min", configs=configs)


def _parent_after_report(sweep: Path, uri: str):
    from mlflow import MlflowClient

    from sweep.execution.driver import _report
    from sweep.mlflow.tracker import SweepTracker

    tracker = SweepTracker(uri, experiment_name="rules")
    run_id = tracker.start_sweep("s", str(sweep), "test")
    _report(_plan(sweep), tracker)
    tracker.end_sweep()
    client = MlflowClient(uri)
    return client, client.get_run(run_id)


def test_the_mlflow_parent_carries_the_answer(sweep, tmp_path):
    client, run = _parent_after_report(sweep, f"sqlite:///{tmp_path}/m.db")
    tags, metrics = run.data.tags, run.data.metrics
    # nothing holds on 3 seeds of identical differences: no best arm, the verdict says why
    assert not any(k.startswith("gansweep.best") for k in tags)
    assert tags["gansweep.verdict.lfw-subset.100"] == ("no arm better than none by a difference that holds: with 3 "
                                                       "seeds no difference could hold (the exact sign-flip test's "
                                                       "smallest p is 0.25)")
    # the primaries: vflip has one seed (untested), negpos no arm; everything else is labelled exploratory
    assert tags["gansweep.answer"].startswith("vflip leaks (vflip@100 against none; dataset = lfw-subset, n_aug = "
                                              "100): 90.0% of samples upside down against 60.0% for none; untested")
    assert tags["gansweep.primary.negpos-leaks"] == "negpos leaks: not in this sweep (no arm with da=negpos, d_aug=none)."
    assert tags["gansweep.exploratory"].startswith("exploratory: every comparison other than the primary")
    assert metrics["primary.vflip-leaks.holds"] == 0 and "primary.vflip-leaks.p_holm" not in metrics
    assert metrics["seeds_per_arm"] == 3
    local = client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path))
    logged = json.loads(Path(local).read_text())
    table = pd.DataFrame(logged["data"], columns=logged["columns"]).set_index("arm")
    assert table.loc["none", f"{hs.VFLIP}_share"] == pytest.approx(0.6)
    assert table.loc["none", f"{hs.VFLIP}_share_n"] == 3


def test_a_group_where_nothing_ranks_has_no_best_arm(sweep, tmp_path):
    one = tmp_path / "one-seed"
    shutil.copytree(sweep, one)
    for trial in one.glob("*-s[12]-*"):
        shutil.rmtree(trial)
    _, run = _parent_after_report(one, f"sqlite:///{tmp_path}/m.db")
    assert not any(k.startswith("gansweep.best") for k in run.data.tags)
    assert run.data.tags["gansweep.verdict.lfw-subset.100"] == "unranked: no arm has 2 finished seeds"
    assert not any(k.startswith("best_") for k in run.data.metrics)
