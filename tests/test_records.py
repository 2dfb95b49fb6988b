"""sweep.records on a real tiny Tune experiment (tests/_fake_sweep.py) and on in-process folders: trial ids and
names, Tune's statuses through its public API, the outcome rule, one result per step, grids and final weights."""

from __future__ import annotations

import json
import math

import pytest

from collections import Counter
from pathlib import Path

from sweep.records import (MLFLOW_STATUS, OUTCOMES, ReportLine, inprocess_trial_id, metrics_of, outcome, read_sweep,
                           sweep_status, trial_dirname, trial_name)
from tests import _fake_sweep as fake


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return fake.copy_experiment(tmp_path_factory.mktemp("records"))


def test_every_tune_trial_is_one_record(exp):
    records = read_sweep(exp)
    assert sorted((r.arm, r.seed) for r in records) == sorted((fake.arm(da), s) for da, s in fake.TRIALS)
    by_arm = {}
    for r in records:
        by_arm.setdefault(r.arm, []).append(r)
        assert r.name == trial_name(r.config, r.trial_id) and r.path.endswith(trial_dirname(r.config, r.trial_id))
        assert r.status in ("TERMINATED", "ERROR")  # from Tune's ExperimentAnalysis
    assert {r.outcome for r in by_arm["none"] + by_arm["hflip@100"]} == {"finished"}
    assert [r.outcome for r in by_arm["contrast@100"]] == ["diverged"]
    assert [(r.outcome, r.status) for r in by_arm["vflip@100"]] == [("failed", "ERROR")]
    for r in by_arm["hflip@100"]:
        assert [h["step"] for h in r.history] == [1, 2, 3]
        assert [h["fid_effnet"] for h in r.history] == [fake.fake_metrics("hflip", r.seed, s)["fid_effnet"]
                                                        for s in (1, 2, 3)]
        assert [g.step for g in r.grids] == [2, 3]  # Tune keeps the last 2 checkpoints
        assert [Path(g.path).name for g in r.grids] == ["samples_step000002.png", "samples_step000003.png"]
        assert r.weights and r.weights.endswith("generator.pt")
        assert r.reports == 3 and r.mlflow_status == "FINISHED"
        # the timeline is result.json's bookkeeping, line by line (read here independently of the records module)
        raw = [json.loads(line) for line in (Path(r.path) / "result.json").read_text().splitlines()]
        assert r.timeline == [ReportLine(row["step"], row["timestamp"], row["time_total_s"], row["pid"], None)
                              for row in raw]
        assert [t.step for t in r.timeline] == [1, 2, 3] and all(isinstance(t.pid, int) for t in r.timeline)
        assert r.timeline[0].time_total_s <= r.timeline[-1].time_total_s
    assert by_arm["contrast@100"][0].last["diverged"] == 1 and by_arm["contrast@100"][0].weights is None


def test_outcome_rules():
    cfg = {"steps": 300}
    assert outcome({"step": 300, "diverged": 0}, cfg, status="TERMINATED") == "finished"
    assert outcome({"step": 100, "diverged": 0}, cfg, status="TERMINATED") == "stopped"
    assert outcome({"step": 100, "diverged": 1}, cfg, status="TERMINATED") == "diverged"
    assert outcome({"step": 100, "diverged": 0}, cfg, status="ERROR") == "failed"
    assert outcome({"step": 100, "diverged": 0}, cfg, error=True) == "failed"  # in-process: no status
    assert outcome({"step": 300, "diverged": 0}, cfg, status="TERMINATED", error=True) == "finished"
    assert outcome({"step": 100, "diverged": 0}, cfg, status="RUNNING") == "interrupted"
    assert outcome({}, cfg) == "interrupted"
    # a time budget is used up by training seconds, whatever the step
    timed = {"steps": 10**6, "time_budget": 60.0}
    assert outcome({"step": 4000, "train_seconds": 60.2}, timed) == "finished"
    assert outcome({"step": 4000, "train_seconds": 59.0}, timed, status="RUNNING") == "interrupted"
    assert set(MLFLOW_STATUS) == set(OUTCOMES)
    assert [MLFLOW_STATUS[o] for o in OUTCOMES] == ["FINISHED", "FINISHED", "FINISHED", "FAILED", "KILLED"]


def test_sweep_status():
    assert sweep_status(["finished", "diverged", "stopped"]) == "FINISHED"  # a diverged GAN is a result
    assert sweep_status(["finished", "failed"]) == "FAILED"
    assert sweep_status(Counter({"finished": 3, "interrupted": 1})) == "FAILED"  # unfinished: not through
    assert sweep_status([]) == "FINISHED"
    assert {sweep_status([o]) for o in OUTCOMES} == {"FINISHED", "FAILED"}


def test_metrics_of_policy():
    import numpy as np

    got = metrics_of({"step": 3, "fid_effnet": 1.5, "arm": "none", "diverged": 0, "done": True, "pid": 7,
                      "time_this_iter_s": 0.1, "flag": True, "custom_seconds": 2, "loss_d": float("nan"),
                      "np_value": np.float32(0.5), "np_flag": np.bool_(True), "config": {"steps": 3}})
    assert set(got) == {"step", "fid_effnet", "diverged", "custom_seconds", "loss_d", "np_value"}
    assert math.isnan(got["loss_d"])


def test_names():
    config = fake.trial_config("contrast", 2) | {"da": "contrast+hflip", "n_aug": 200}
    assert trial_name(config, "7c1f2_00004") == "contrast+hflip@200-s2-7c1f2_00004"
    assert trial_dirname(config, "7c1f2_00004") == "contrast_hflip_200-s2-7c1f2_00004"
    tid = inprocess_trial_id(9, config)
    assert tid.startswith("00009_") and len(tid) == 14 and tid == inprocess_trial_id(9, dict(config))
    assert inprocess_trial_id(9, config | {"seed": 3}) != tid


def test_in_process_folders_repeated_steps_and_a_torn_line(tmp_path):
    """In-process folders have no Tune state; a restored trial's result.json repeats the steps after its checkpoint
    (the last line wins); a line cut short by a killed process is dropped."""
    exp = tmp_path / "exp"
    for tid, da, lines, error in (("00000_aaaaaaaa", "none", [1, 2, 2, 3], False),
                                  ("00001_bbbbbbbb", "hflip", [1], True)):
        config = fake.trial_config(da, 0)
        d = exp / trial_dirname(config, tid)
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps(config))
        rows = [{**fake.fake_metrics(da, 0, s), "trial_id": tid, "loss_g": float(i), "timestamp": 100.0 + i,
                 "time_total_s": 0.5 * i, "pid": 7} for i, s in enumerate(lines)]
        (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "loss')
        if error:
            (d / "error.txt").write_text("Traceback ...")
    (exp / "gansweep.json").write_text("{}")
    records = {r.trial_id: r for r in read_sweep(exp)}
    assert set(records) == {"00000_aaaaaaaa", "00001_bbbbbbbb"}
    done = records["00000_aaaaaaaa"]
    assert [h["step"] for h in done.history] == [1, 2, 3] and done.reports == 4
    assert done.history[1]["loss_g"] == 2.0  # the repeated step's last line
    assert done.outcome == "finished" and done.status is None
    assert done.timeline == [ReportLine(s, 100.0 + i, 0.5 * i, 7, None) for i, s in enumerate([1, 2, 2, 3])]
    assert records["00001_bbbbbbbb"].outcome == "failed"


def test_a_uri_reads_the_same(exp):
    local = {r.trial_id: (r.arm, r.outcome, len(r.history), len(r.grids)) for r in read_sweep(exp)}
    remote = {r.trial_id: (r.arm, r.outcome, len(r.history), len(r.grids)) for r in read_sweep(f"file://{exp}")}
    assert local == remote and len(local) == len(fake.TRIALS)
