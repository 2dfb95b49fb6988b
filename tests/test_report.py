"""sweep.report on a real tiny Tune experiment (tests/_fake_sweep.py): the results table, the per-arm summary
against a hand computation, the plots and the Markdown table."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest

from tests import _fake_sweep as fake
from sweep.report import load_results, read_trials, summarize, summary_markdown, trial_outcome, write_report

EXT = fake.EXT
FID, IS = f"fid_{EXT}", f"is_mean_{EXT}"
T975_DF1 = 12.706204736174698  # Student's t, 0.975 quantile, 1 degree of freedom


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    """A private copy of the fake experiment (the report writes into <EXP>/report/)."""
    return fake.copy_experiment(tmp_path_factory.mktemp("report"))


def _final(da, seed, key):
    return fake.fake_metrics(da, seed, fake.STEPS)[key]


def _ci(values):
    assert len(values) == 2  # T975_DF1 is for two seeds
    return T975_DF1 * statistics.stdev(values) / math.sqrt(len(values))


def test_results_table_has_one_row_per_report(exp):
    df = load_results(exp)
    reports = {"none": 3, "hflip": 3, "contrast": 2, "vflip": 1}
    assert len(df) == sum(reports[da] for da, _ in fake.TRIALS)
    for col in ("trial_id", "outcome", "dataset", "da", "n_aug", "pair_ratio", "seed", "image_size", "steps",
                "extractor", "study", "arm", "step", "loss_d", "loss_g", "d_real", "d_fake", "images_per_s",
                "train_seconds", "diverged", FID, IS, f"is_std_{EXT}", f"kid_mean_{EXT}", f"kid_std_{EXT}",
                f"precision_{EXT}", f"recall_{EXT}"):
        assert col in df.columns, col
    assert not {"timestamp", "done", "config", "training_iteration", "pid", "date"} & set(df.columns)
    assert df.groupby("trial_id").size().max() == fake.STEPS
    for _, r in df.iterrows():
        want = fake.fake_metrics(r["da"], r["seed"], r["step"])
        assert r["arm"] == want["arm"]
        if want["diverged"]:
            assert r["diverged"] == 1 and math.isnan(r[FID])
        else:
            assert r[FID] == want[FID] and r[IS] == pytest.approx(want[IS])
    outcome = df.drop_duplicates("trial_id").set_index("da")["outcome"].to_dict()
    assert outcome == {"none": "finished", "hflip": "finished", "contrast": "diverged", "vflip": "failed"}


def test_summary_matches_hand_computation(exp):
    s = summarize(load_results(exp)).set_index("arm")
    for da, arm in (("none", "none"), ("hflip", "hflip@100")):
        fids = [_final(da, seed, FID) for seed in fake.SEEDS]
        iss = [_final(da, seed, IS) for seed in fake.SEEDS]
        row = s.loc[arm]
        assert row["n"] == 2 and row["n_trials"] == 2
        assert row[f"{FID}_mean"] == pytest.approx(statistics.mean(fids))
        assert row[f"{FID}_ci95"] == pytest.approx(_ci(fids))
        assert row[f"{IS}_mean"] == pytest.approx(statistics.mean(iss))
        assert row[f"{IS}_ci95"] == pytest.approx(_ci(iss))
    # hflip vs none, paired by seed: FID is 10 lower for every seed
    assert s.loc["hflip@100", f"delta_{FID}"] == pytest.approx(-10.0)
    assert s.loc["hflip@100", f"delta_{FID}_ci95"] == pytest.approx(0.0)
    assert s.loc["hflip@100", "n_pairs"] == 2
    assert s.loc["none", f"delta_{FID}"] == 0.0
    assert (s.loc["hflip@100", "rank"], s.loc["none", "rank"]) == (1, 2)  # FID ascending
    # diverged and failed trials are counted, not averaged in
    assert s.loc["contrast@100", "diverged"] == 1 and s.loc["contrast@100", "n"] == 0
    assert math.isnan(s.loc["contrast@100", f"{FID}_mean"]) and pd.isna(s.loc["contrast@100", "rank"])
    assert s.loc["vflip@100", "failed"] == 1 and s.loc["vflip@100", "n"] == 0


def test_summary_ranks_by_is_when_asked(exp):
    s = summarize(load_results(exp), metric=IS, mode="min").set_index("arm")
    assert (s.loc["none", "rank"], s.loc["hflip@100", "rank"]) == (1, 2)  # study 1's reading: lower IS first
    assert f"{FID}_mean" in s.columns  # FID shown beside IS


def test_unpaired_baseline_uses_welch():
    rows = [{"trial_id": f"t{i}", "outcome": "finished", "dataset": "d", "da": da, "n_aug": n, "pair_ratio": 0.5,
             "seed": seed, "arm": "none" if da == "none" else f"{da}@{n}", "step": 10, FID: fid, IS: 1.0}
            for i, (da, n, seed, fid) in enumerate([("none", 0, 0, 50.0), ("none", 0, 1, 54.0),
                                                     ("hflip", 100, 2, 40.0), ("hflip", 100, 3, 46.0)])]
    s = summarize(pd.DataFrame(rows)).set_index("arm")
    # Welch: diff 43 - 52 = -9; se^2 = 8/2 + 18/2 = 13; df = 13^2 / (4^2 + 9^2) = 169/97
    from scipy.stats import t

    assert s.loc["hflip@100", f"delta_{FID}"] == pytest.approx(-9.0)
    assert s.loc["hflip@100", f"delta_{FID}_ci95"] == pytest.approx(t.ppf(0.975, 169 / 97) * math.sqrt(13))
    assert s.loc["hflip@100", "n_pairs"] == 0


def test_trial_outcome_rules():
    cfg = {"steps": 300}
    assert trial_outcome({"step": 300, "diverged": 0}, cfg, status="TERMINATED") == "finished"
    assert trial_outcome({"step": 100, "diverged": 0}, cfg, status="TERMINATED") == "stopped"
    assert trial_outcome({"step": 100, "diverged": 1}, cfg, status="TERMINATED") == "diverged"
    assert trial_outcome({"step": 100, "diverged": 0}, cfg, status="ERROR") == "failed"
    assert trial_outcome({"step": 100, "diverged": 0}, cfg, error=True) == "failed"  # in-process: no status
    assert trial_outcome({"step": 300, "diverged": 0}, cfg, status="TERMINATED", error=True) == "finished"
    assert trial_outcome({"step": 100, "diverged": 0}, cfg, status="RUNNING") == "interrupted"
    assert trial_outcome({}, cfg) == "interrupted"


def test_in_process_layout_and_repeated_steps(tmp_path):
    """`--in-process` folders are named by trial id and have no experiment_state; a restored trial's
    result.json repeats the steps after its checkpoint (the last line wins)."""
    exp = tmp_path / "exp"
    for tid, da, lines, error in (("00000_aaaa", "none", [1, 2, 2, 3], False), ("00001_bbbb", "hflip", [1], True)):
        d = exp / tid
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps(fake.trial_config(da, 0)))
        rows = [{**fake.fake_metrics(da, 0, s), "trial_id": tid, "loss_g": float(i)} for i, s in enumerate(lines)]
        (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if error:
            (d / "error.txt").write_text("Traceback ...")
    (exp / "gansweep.json").write_text("{}")
    trials = {t.trial_id: t for t in read_trials(exp)}
    assert set(trials) == {"00000_aaaa", "00001_bbbb"}
    assert [r["step"] for r in trials["00000_aaaa"].results] == [1, 2, 3]
    assert trials["00000_aaaa"].results[1]["loss_g"] == 2.0  # the repeated step's last line
    assert trials["00000_aaaa"].outcome == "finished" and trials["00001_bbbb"].outcome == "failed"
    assert len(load_results(exp)) == 4


def test_write_report_files(exp):
    from PIL import Image

    files = write_report(exp)
    names = {f.name for f in files}
    assert {"results.parquet", "summary.csv", "summary.md", f"final_{FID}.png", f"final_{IS}.png",
            f"curves_{FID}.png", f"curves_{IS}.png", "samples_mosaic.png"} <= names
    for f in files:
        assert f.parent == exp / "report" and f.stat().st_size > 0
        if f.suffix == ".png":
            with Image.open(f) as im:
                im.verify()
    table = pd.read_parquet(exp / "report" / "results.parquet")
    assert len(table) == len(load_results(exp))
    assert set(pd.read_csv(exp / "report" / "summary.csv")["arm"]) == {"none", "hflip@100", "contrast@100",
                                                                       "vflip@100"}
    md = (exp / "report" / "summary.md").read_text()
    assert "lower = closer to the real set" in md
    assert "IS: higher is the standard reading (Salimans et al. 2016)" in md
    assert "study 1 read lower as better for single-class sets" in md
    assert "| hflip@100" in md and "-10.000 ± 0.000" in md


def test_markdown_states_is_direction_when_ranking_by_is(exp):
    df = load_results(exp)
    md = summary_markdown(summarize(df, IS, "max"), IS, "max")
    assert "higher is better, the standard reading (Salimans et al. 2016)" in md
    md = summary_markdown(summarize(df, IS, "min"), IS, "min")
    assert "lower is better, as study 1 read IS for single-class sets" in md


def test_report_on_a_uri_and_on_trials_without_reports(tmp_path):
    """A storage URI (file:// goes through the same pyarrow path as s3://) and trials that died before reporting."""
    exp = tmp_path / "exp"
    for i, da in enumerate(("none", "hflip")):
        d = exp / f"0000{i}_dead"
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps(fake.trial_config(da, 0)))
        (d / "error.txt").write_text("Traceback ...")
    files = write_report(f"file://{exp}")
    assert all(f.exists() for f in files)
    assert (exp / "report" / "summary.md").exists() and (exp / "report" / "samples_mosaic.png").exists()
    assert len(pd.read_parquet(exp / "report" / "results.parquet")) == 0
    with pytest.raises(FileNotFoundError, match="no trial folders"):
        write_report(tmp_path / "empty")
