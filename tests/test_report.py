"""sweep.report.write and sweep.report.tables on a real tiny Tune experiment (tests/_fake_sweep.py): the results table, the per-arm
summary against a hand computation, the significance columns, the design-driven grouping, the plots and the Markdown.
The report's rules on hand-written sweeps (ranks, survivorship, leakage, floors, gains, MLflow) are in
tests/test_report_rules.py."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest

from search_spaces import Design
from search_spaces.da import DA_DESIGN
from sweep.records import read_sweep
from sweep.report.write import summary_markdown, write_report
from sweep.report.tables import finals_table, results_table, summarize
from tests import _fake_sweep as fake

EXT = fake.EXT
FID, IS = f"fid_{EXT}", f"is_mean_{EXT}"
T975_DF1 = 12.706204736174698  # Student's t, 0.975 quantile, 1 degree of freedom


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    """A private copy of the fake experiment (the report writes into <EXP>/report/)."""
    return fake.copy_experiment(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def finals(exp):
    return finals_table(read_sweep(exp), DA_DESIGN)


def _final(da, seed, key):
    return fake.fake_metrics(da, seed, fake.STEPS)[key]


def test_results_table_has_one_row_per_report(exp):
    df = results_table(read_sweep(exp))
    reports = {"none": 3, "hflip": 3, "contrast": 2, "vflip": 1}
    assert len(df) == sum(reports[da] for da, _ in fake.TRIALS)
    for col in ("trial_id", "name", "outcome", "dataset", "da", "n_aug", "seed", "arm", "step", "loss_d",
                "train_seconds", "diverged", FID, IS, f"kid_mean_{EXT}", f"precision_{EXT}", f"recall_{EXT}"):
        assert col in df.columns, col
    assert not {"timestamp", "done", "config", "training_iteration", "pid", "date"} & set(df.columns)
    for _, r in df.iterrows():
        want = fake.fake_metrics(r["da"], r["seed"], r["step"])
        assert r["arm"] == fake.arm(r["da"])
        if want["diverged"]:
            assert r["diverged"] == 1 and math.isnan(r[FID])
        else:
            assert r[FID] == want[FID] and r[IS] == pytest.approx(want[IS])


def test_summary_matches_hand_computation(finals):
    s = summarize(finals, DA_DESIGN, FID, "min", beside=[IS]).set_index("arm")
    for da, arm in (("none", "none"), ("hflip", "hflip@100")):
        fids = [_final(da, seed, FID) for seed in fake.SEEDS]
        row = s.loc[arm]
        assert (row["finished"], row["n_trials"]) == (2, 2)
        assert row[f"{FID}_mean"] == pytest.approx(statistics.mean(fids))
        assert row[f"{FID}_ci95"] == pytest.approx(T975_DF1 * statistics.stdev(fids) / math.sqrt(2))
        iss = [_final(da, seed, IS) for seed in fake.SEEDS]
        assert row[f"{IS}_mean"] == pytest.approx(statistics.mean(iss))
    # hflip vs none, paired by seed: FID is 10 lower for every seed; no spread, so the exact sign-flip p: 2 of the 4
    # sign assignments are as extreme (two-sided), p = 0.5, never 0; two seeds cannot reach alpha, so nothing ranks
    h = s.loc["hflip@100"]
    assert (h["delta"], h["delta_ci95"], h["n_pairs"], h["p"], h["p_holm"], h["test"], h["holds"]) == (
        pytest.approx(-10.0), 0.0, 2, 0.5, 0.5, "sign-flip", False)
    assert h["d_z"] == -math.inf and not h["reachable"] and math.isnan(h["detectable"])
    assert s.loc["none", "is_baseline"] and math.isnan(s.loc["none", "p"])
    assert pd.isna(s.loc["hflip@100", "rank"]) and pd.isna(s.loc["none", "rank"])  # ranks only where it holds
    # diverged and failed trials are counted, never averaged in, never ranked
    c, v = s.loc["contrast@100"], s.loc["vflip@100"]
    assert (c["diverged"], c["finished"], v["failed"], v["finished"]) == (1, 0, 1, 0)
    assert math.isnan(c[f"{FID}_mean"]) and pd.isna(c["rank"]) and pd.isna(v["rank"])


def test_only_a_difference_that_holds_ranks_and_divergence_never_helps():
    """An arm ranks only when its difference to the baseline holds; an arm with a diverged seed never holds however
    good its mean; an arm left with one finished seed is not tested; the baseline is never ranked."""
    design = Design(arm_fields=("da",), group_by=("dataset",), baseline="none")
    rows = []
    for da, seed, fid, out in [("none", 0, 50.0, "finished"), ("none", 1, 52.0, "finished"),
                               ("none", 2, 51.0, "finished"),
                               ("a", 0, 10.0, "finished"), ("a", 1, 12.0, "finished"), ("a", 2, 0.0, "diverged"),
                               ("b", 0, 40.0, "finished"), ("b", 1, 41.0, "finished"), ("b", 2, 42.0, "finished"),
                               ("c", 0, 1.0, "finished"), ("c", 1, 0.0, "failed"), ("c", 2, 0.0, "diverged")]:
        rows.append({"trial_id": f"{da}{seed}", "arm": da, "seed": seed, "outcome": out, "dataset": "d", "da": da,
                     "context": "[]", FID: fid if out == "finished" else math.nan})
    s = summarize(pd.DataFrame(rows), design, FID, "min").set_index("arm")
    from scipy.stats import ttest_1samp

    # b - none = -10, -11, -9: 3 seeds cannot reach alpha by sign flips, so the t-test; family: a and b (c has 1 pair)
    p = ttest_1samp([-10.0, -11.0, -9.0], 0).pvalue
    assert (s.loc["b", "test"], s.loc["b", "family"]) == ("t", 2) and s.loc["b", "p"] == pytest.approx(p)
    assert s.loc["b", "p_holm"] == pytest.approx(2 * p) and s.loc["b", "holds"] and s.loc["b", "rank"] == 1
    assert s.loc["b", "d_z"] == pytest.approx(-10.0)  # mean -10 over sd 1
    assert pd.isna(s.loc["a", "rank"]) and not s.loc["a", "holds"]  # -40, -40 on its two survivors: p 0.5
    assert pd.isna(s.loc["none", "rank"]) and pd.isna(s.loc["c", "rank"])
    assert s.loc["c", f"{FID}_n"] == 1 and math.isnan(s.loc["c", f"{FID}_ci95"]) and math.isnan(s.loc["c", "p"])


def test_the_design_decides_groups_and_baselines():
    """A study-2-like design (arms are methods, groups are budgets, baseline dcgan64): no study-1 field anywhere."""
    design = Design(arm_fields=("method",), group_by=("budget",), baseline="dcgan64")
    rows = []
    for budget in ("iterations", "seconds"):
        for method, base in (("dcgan64", 30.0), ("stackgan128", 25.0)):
            for seed in (0, 1, 2):  # stackgan128 - dcgan64: -5, -4.5, -4 at equal iterations; 1, 1.5, 2 at equal time
                value = base + seed + (0.5 * seed if method == "stackgan128" else 0.0) \
                    + (6.0 if budget == "seconds" and method == "stackgan128" else 0.0)
                rows.append({"trial_id": f"{budget}{method}{seed}", "arm": method, "seed": seed,
                             "outcome": "finished", "budget": budget, "method": method,
                             "context": json.dumps([budget]), FID: value})
    s = summarize(pd.DataFrame(rows), design, FID, "min")
    got = {(r["budget"], r["arm"]): (r["delta"], r["rank"]) for _, r in s.iterrows()}
    assert got[("iterations", "stackgan128")] == (pytest.approx(-4.5), 1)
    assert got[("seconds", "stackgan128")] == (pytest.approx(1.5), 1)  # worse than dcgan64, and the difference holds
    assert pd.isna(got[("seconds", "dcgan64")][1])  # the baseline is in each budget's group, and never ranked
    md = summary_markdown(s, design, FID, "min")
    assert "## budget = iterations" in md and "## budget = seconds" in md and "Δ vs dcgan64" in md


def test_write_report_files(exp):
    from PIL import Image

    rep = write_report(exp, DA_DESIGN, FID, "min")
    names = {f.name for f in rep.files}
    assert {"results.parquet", "summary.csv", "summary.md", f"final_{FID}.png", f"final_{IS}.png",
            f"curves_{FID}.png", f"vs_seconds_{FID}.png", "samples_mosaic.png"} <= names
    for f in rep.files:
        assert f.parent == exp / "report" and f.stat().st_size > 0
        if f.suffix == ".png":
            with Image.open(f) as im:
                im.verify()
    assert len(pd.read_parquet(exp / "report" / "results.parquet")) == 4 * 3 + 2 + 1
    assert set(pd.read_csv(exp / "report" / "summary.csv")["arm"]) == {"none", "hflip@100", "contrast@100",
                                                                       "vflip@100"}
    md = (exp / "report" / "summary.md").read_text()
    assert "Frechet distance" in md and "lower is better" in md and "Salimans et al. 2016" in md
    assert "never ✓: its lost seeds might have been its worst" in md
    assert "| hflip@100" in md and "-10 ± 0" in md and "no difference could hold on 2 seeds" in md
    assert "| ✓" not in md
    assert rep.best == [{"dataset": "lfw-subset", "n_aug": 100, "arm": None, FID: pytest.approx(math.nan, nan_ok=True),
                         "delta": pytest.approx(math.nan, nan_ok=True), "p_holm": pytest.approx(math.nan, nan_ok=True),
                         "holds": False, "verdict": "no arm better than none by a difference that holds: with 2 "
                                                    "seeds no difference could hold (the exact sign-flip test's "
                                                    "smallest p is 0.5)"}]
    # neither primary can be tested: the fake trials report no leakage share
    assert [p.status for p in rep.primaries] == ["not measurable", "not in this sweep"]


def test_markdown_says_one_seed_cannot_rank(finals):
    one = finals[finals["seed"] == 0]
    s = summarize(one, DA_DESIGN, FID, "min")
    assert s["rank"].isna().all() and s["p"].isna().all() and s[f"{FID}_ci95"].isna().all()
    md = summary_markdown(s, DA_DESIGN, FID, "min")
    assert "have fewer than 2 finished seeds: they show no rank (–), no interval and no test" in md
    assert "| –    | hflip@100" in md and "| base | none" in md
    md = summary_markdown(summarize(finals, DA_DESIGN, IS, "max"), DA_DESIGN, IS, "max")
    assert "descending: higher is better" in md


def test_report_on_a_uri_and_on_trials_without_reports(tmp_path):
    """A storage URI (file:// goes through the same pyarrow path as s3://) and trials that died before reporting."""
    exp = tmp_path / "exp"
    for i, da in enumerate(("none", "hflip")):
        d = exp / f"{fake.arm(da)}-s0-0000{i}_deadbeef".replace("@", "_")
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps(fake.trial_config(da, 0)))
        (d / "error.txt").write_text("Traceback ...")
    rep = write_report(f"file://{exp}", DA_DESIGN, FID, "min")
    assert all(f.exists() for f in rep.files)
    assert (exp / "report" / "summary.md").exists() and (exp / "report" / "samples_mosaic.png").exists()
    assert len(pd.read_parquet(exp / "report" / "results.parquet")) == 0
    with pytest.raises(FileNotFoundError, match="no trial folders"):
        write_report(tmp_path / "empty", DA_DESIGN, FID, "min")
