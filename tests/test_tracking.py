"""sweep.tracking: parent/child runs, idempotent logging on resume, the offline guard, backfill, the Tune callback.

Runs against real sqlite MLflow stores (one migrated template copied per test: creating a store takes seconds)
and a real tiny Tune experiment (tests/_fake_sweep.py) run with `MlflowTuneCallback` attached; backfill tests
replay a copy of that experiment folder into a fresh store.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import pytest

from tests import _fake_sweep as fake
from sweep.tracking import SweepTracker, backfill, metrics_of, sample_name

EXPERIMENT = "gansweep-test"


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _runs(uri):
    client = _client(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def _children(uri, parent):
    return [r for r in _runs(uri) if r.data.tags.get("mlflow.parentRunId") == parent]


def _history(uri, run_id, key):
    return [(m.step, m.value) for m in sorted(_client(uri).get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.fixture(scope="module")
def db_dir():
    """Where the sqlite stores live: tmpfs when there is one (sqlite syncs every commit; MLflow's schema
    migrations alone commit dozens of times), else a temp folder."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="gansweep_test_mlflow_", dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def template_db(db_dir):
    """An empty, migrated MLflow sqlite store, copied for each test (migrating one takes seconds)."""
    path = db_dir / "template.db"
    _client(f"sqlite:///{path}").search_experiments()
    return path


def _new_store(template_db, name: str) -> str:
    path = template_db.parent / f"{name}.db"
    shutil.copy(template_db, path)
    return f"sqlite:///{path}"


@pytest.fixture
def store(template_db, tmp_path, monkeypatch, request):
    """A fresh sqlite store; the working dir is tmp_path so artifacts land there (./mlruns)."""
    monkeypatch.chdir(tmp_path)
    return _new_store(template_db, request.node.name)


@pytest.fixture(scope="module")
def live(template_db, tmp_path_factory):
    """The fake sweep run through real Tune with MlflowTuneCallback logging into a sqlite store."""
    import ray

    from sweep.tracking import MlflowTuneCallback

    root = tmp_path_factory.mktemp("live")
    cwd = os.getcwd()
    os.chdir(root)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        uri = _new_store(template_db, "live")
        tracker = SweepTracker(uri, EXPERIMENT)
        parent = tracker.start_sweep("live", str(root / "live"), "test", params={"study": "test"}, tags={})
        path = fake.run_experiment(root, name="live", callbacks=[MlflowTuneCallback(tracker)])
        tracker.end_sweep()
    finally:
        ray.shutdown()
        os.chdir(cwd)
    return {"path": path, "uri": uri, "parent": parent, "root": root}


def _fake_config(da="hflip", seed=0):
    return fake.trial_config(da, seed)


# --- parent and child runs ------------------------------------------------------------------------------------


def test_parent_child_params_and_metrics(store, tmp_path):
    t = SweepTracker(store, EXPERIMENT)
    parent = t.start_sweep("s1", str(tmp_path / "s1"), "test", params={"study": "test", "seeds": 2},
                           tags={"gansweep.command": "gansweep run test", "gansweep.cluster_resources": '{"CPU": 2}'})
    run_id = t.trial_started("t0", _fake_config("hflip", 1))
    for step in (1, 2, 3):
        assert t.trial_result("t0", {**fake.fake_metrics("hflip", 1, step), "timestamp": 123, "done": False,
                                     "config": {"a": 1}, "should_checkpoint": True}) > 0
    t.trial_finished("t0", "finished")
    t.end_sweep()

    client = _client(store)
    p = client.get_run(parent)
    assert p.info.status == "FINISHED"
    assert p.data.params == {"study": "test", "seeds": "2"}
    assert p.data.tags["gansweep.sweep_path"] == str(tmp_path / "s1")
    assert p.data.tags["gansweep.study"] == "test"
    assert p.data.tags["gansweep.command"] == "gansweep run test"
    assert p.data.tags["gansweep.cluster_resources"] == '{"CPU": 2}'
    c = client.get_run(run_id)
    assert c.data.tags["mlflow.parentRunId"] == parent
    assert c.data.tags["gansweep.trial_id"] == "t0"
    assert c.data.tags["gansweep.arm"] == "hflip@100"
    assert c.data.tags["gansweep.outcome"] == "finished"
    assert c.info.status == "FINISHED"
    assert c.data.params["da"] == "hflip" and c.data.params["arm"] == "hflip@100" and c.data.params["seed"] == "1"
    assert _history(store, run_id, "fid_effnet") == [(s, 90.0 - 10 * s + 3.0) for s in (1, 2, 3)]
    assert _history(store, run_id, "loss_g") == [(s, 2.5) for s in (1, 2, 3)]
    assert not {"timestamp", "done", "should_checkpoint", "config"} & set(c.data.metrics)
    assert "arm" not in c.data.metrics  # strings are not metrics


def test_metrics_of_policy():
    import numpy as np

    got = metrics_of({"step": 3, "fid_effnet": 1.5, "arm": "none", "diverged": 0, "done": True, "pid": 7,
                      "time_this_iter_s": 0.1, "flag": True, "custom_seconds": 2, "loss_d": float("nan"),
                      "np_value": np.float32(0.5), "np_flag": np.bool_(True), "config": {"steps": 3}})
    assert set(got) == {"step", "fid_effnet", "diverged", "custom_seconds", "loss_d", "np_value"}
    assert math.isnan(got["loss_d"])


def test_resume_reuses_runs_and_skips_logged_steps(store, tmp_path):
    path = str(tmp_path / "sweep")
    t = SweepTracker(store, EXPERIMENT)
    parent = t.start_sweep("s", path, "test", params={"study": "test"}, tags={"gansweep.command": "run"})
    rid = t.trial_started("a", _fake_config("none", 0))
    t.trial_started("b", _fake_config("hflip", 0))
    for step in (1, 2):
        t.trial_result("a", fake.fake_metrics("none", 0, step))
    # a restored trial re-reports the step after its checkpoint, then goes on
    assert t.trial_started("a", _fake_config("none", 0)) == rid
    assert t.trial_result("a", fake.fake_metrics("none", 0, 2)) == 0
    t.trial_result("a", fake.fake_metrics("none", 0, 3))

    # a new driver (resume): same parent, same children, nothing logged twice, params not re-logged
    t2 = SweepTracker(store, EXPERIMENT)
    assert t2.start_sweep("s", path, "test", params={"study": "test", "new_option": 1},
                          tags={"gansweep.command": "resume"}) == parent
    assert t2.trial_started("a", _fake_config("none", 0)) == rid
    assert t2.trial_result("a", fake.fake_metrics("none", 0, 3)) == 0
    assert t2.trial_result("a", {**fake.fake_metrics("none", 0, 3), "step": 4}) > 0
    t2.trial_finished("a", "finished")
    t2.end_sweep()

    runs = _runs(store)
    assert len([r for r in runs if "mlflow.parentRunId" not in r.data.tags]) == 1
    kids = _children(store, parent)
    assert sorted(r.data.tags["gansweep.trial_id"] for r in kids) == ["a", "b"]
    assert [s for s, _ in _history(store, rid, "fid_effnet")] == [1, 2, 3, 4]
    p = _client(store).get_run(parent)
    assert p.data.params == {"study": "test", "new_option": "1"}
    assert p.data.tags["gansweep.command"] == "run" and p.data.tags["gansweep.last_command"] == "resume"
    b = next(r for r in kids if r.data.tags["gansweep.trial_id"] == "b")
    assert b.info.status == "KILLED" and b.data.tags["gansweep.outcome"] == "interrupted"  # left open by t


def test_pickled_tracker_finds_existing_runs(store, tmp_path):
    """Tune pickles callbacks into tuner.pkl and Tuner.restore brings that copy back."""
    t = SweepTracker(store, EXPERIMENT)
    t.start_sweep("s", str(tmp_path / "p"), "test")
    rid = t.trial_started("a", _fake_config())
    t.trial_result("a", fake.fake_metrics("hflip", 0, 1))
    copy = pickle.loads(pickle.dumps(t))
    assert copy.trial_started("a", _fake_config()) == rid
    assert copy.trial_result("a", fake.fake_metrics("hflip", 0, 1)) == 0
    assert len(_children(store, t.parent_run_id)) == 1
    # the copy ends the trial; the original's end_sweep must not overwrite that with `interrupted`
    copy.trial_finished("a", "finished")
    t.end_sweep()
    run = _client(store).get_run(rid)
    assert run.info.status == "FINISHED" and run.data.tags["gansweep.outcome"] == "finished"


def test_callback_outcomes_without_tune(store, tmp_path):
    """MlflowTuneCallback's mapping of Tune events, on stand-in trials (ASHA's early stop included)."""
    from types import SimpleNamespace

    from PIL import Image
    from ray import tune

    from sweep.tracking import MlflowTuneCallback

    t = SweepTracker(store, EXPERIMENT)
    t.start_sweep("s", str(tmp_path / "cb"), "test")
    cb = MlflowTuneCallback(t)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    Image.new("RGB", (4, 4)).save(ckpt / "samples.png")
    cases = {"full": (3, 0, "finished"), "asha": (1, 0, "stopped"), "nan": (2, 1, "diverged")}
    for tid, (step, diverged, _) in cases.items():
        trial = SimpleNamespace(trial_id=tid, config=_fake_config(), last_result={})
        cb.on_trial_start(iteration=0, trials=[trial], trial=trial)
        trial.last_result = {**fake.fake_metrics("hflip", 0, step), "diverged": diverged}
        cb.on_trial_result(iteration=0, trials=[trial], trial=trial, result=trial.last_result)
        cb.on_checkpoint(iteration=0, trials=[trial], trial=trial,
                         checkpoint=tune.Checkpoint.from_directory(str(ckpt)))
        cb.on_trial_complete(iteration=0, trials=[trial], trial=trial)
    err = SimpleNamespace(trial_id="err", config=_fake_config(), last_result={})
    cb.on_trial_start(iteration=0, trials=[err], trial=err)
    cb.on_trial_error(iteration=0, trials=[err], trial=err)
    client = _client(store)
    for tid, (step, _, outcome) in cases.items():
        run = client.get_run(t.run_id(tid))
        assert run.data.tags["gansweep.outcome"] == outcome
        assert [f.path for f in client.list_artifacts(run.info.run_id, "samples")] == [
            f"samples/{sample_name(step)}"]
    assert client.get_run(t.run_id("err")).info.status == "FAILED"


def test_backfill_leaves_unfinished_trials_to_end_sweep(store, tmp_path):
    """An in-process sweep whose driver died: the unfinished trial stays RUNNING through backfill (a resume would
    go on with it) and end_sweep ends it as interrupted."""
    exp = tmp_path / "exp"
    for tid, steps in (("00000_done", 3), ("00001_half", 2)):
        d = exp / tid
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps(fake.trial_config("none", 0)))
        (d / "result.json").write_text("".join(
            json.dumps({**fake.fake_metrics("none", 0, s), "trial_id": tid}) + "\n"
            for s in range(1, steps + 1)))
    t = SweepTracker(store, EXPERIMENT)
    t.start_sweep("s", str(exp), "test")
    assert backfill(exp, t)["runs_created"] == 2
    client = _client(store)
    assert client.get_run(t.run_id("00001_half")).info.status == "RUNNING"
    assert client.get_run(t.run_id("00000_done")).info.status == "FINISHED"
    t.end_sweep()
    run = client.get_run(t.run_id("00001_half"))
    assert run.info.status == "KILLED" and run.data.tags["gansweep.outcome"] == "interrupted"
    # a later backfill reopens it to look for gaps and ends it as it was
    t2 = SweepTracker(store, EXPERIMENT)
    t2.start_sweep("s", str(exp), "test")
    assert backfill(exp, t2)["metrics_logged"] == 0
    run = client.get_run(t2.run_id("00001_half"))
    assert run.info.status == "KILLED" and run.data.tags["gansweep.outcome"] == "interrupted"


def test_outcomes_and_artifacts(store, tmp_path):
    from PIL import Image

    t = SweepTracker(store, EXPERIMENT)
    t.start_sweep("s", str(tmp_path / "o"), "test")
    grid = tmp_path / "samples.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(grid)
    ids = {}
    for outcome in ("finished", "diverged", "stopped", "failed"):
        ids[outcome] = t.trial_started(outcome, _fake_config())
        t.trial_result(outcome, fake.fake_metrics("hflip", 0, 1))
        assert t.trial_artifact(outcome, grid, name=sample_name(300))
        assert not t.trial_artifact(outcome, grid, name=sample_name(300))  # already there
        t.trial_finished(outcome, outcome)
    assert not t.trial_artifact("finished", tmp_path / "missing.png")
    client = _client(store)
    for outcome, rid in ids.items():
        run = client.get_run(rid)
        assert run.info.status == ("FAILED" if outcome == "failed" else "FINISHED")
        assert run.data.tags["gansweep.outcome"] == outcome
        assert run.data.tags["gansweep.diverged"] == str(int(outcome == "diverged"))
        assert [f.path for f in client.list_artifacts(rid, "samples")] == ["samples/step_000300.png"]
    with pytest.raises(ValueError, match="allowed"):
        t.trial_finished("finished", "exploded")


def test_end_sweep_logs_report_files(store, tmp_path):
    t = SweepTracker(store, EXPERIMENT)
    parent = t.start_sweep("s", str(tmp_path / "r"), "test")
    (tmp_path / "summary.md").write_text("# hi\n")
    t.end_sweep(status="FAILED", artifacts=[tmp_path / "summary.md", tmp_path / "not-there.csv"])
    run = _client(store).get_run(parent)
    assert run.info.status == "FAILED"
    assert [f.path for f in _client(store).list_artifacts(parent, "report")] == ["report/summary.md"]


# --- an unreachable server ------------------------------------------------------------------------------------


def test_unreachable_server_warns_once_then_backfill(live, store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    exp = Path(shutil.copytree(live["path"], tmp_path / "exp"))  # a Tune experiment folder MLflow has not seen
    down = SweepTracker("http://127.0.0.1:9", EXPERIMENT)
    assert down.start_sweep("s", str(exp), "test", params={"study": "test"}) is None
    assert down.offline and down.offline_reason
    assert down.trial_started("x", _fake_config()) is None
    assert down.trial_result("x", fake.fake_metrics("hflip", 0, 1)) == 0
    assert not down.trial_artifact("x", __file__)
    down.trial_finished("x", "finished")
    assert backfill(exp, down)["runs_created"] == 0
    down.end_sweep()
    err = capsys.readouterr().err
    assert err.count("unreachable") == 1
    line = next(x for x in err.splitlines() if "unreachable" in x)
    assert "MLflow at http://127.0.0.1:9 unreachable" in line and "gansweep report <path>" in line

    # later, with a working store: backfill creates everything (read through pyarrow, as from s3://), and a
    # second backfill (a plain path this time) adds nothing
    up = SweepTracker(store, EXPERIMENT)
    parent = up.start_sweep("s", str(exp), "test")
    counts = backfill(f"file://{exp}", up)
    assert counts["trials"] == len(fake.TRIALS) and counts["runs_created"] == len(fake.TRIALS)
    assert counts["metrics_logged"] > 0 and counts["artifacts_logged"] > 0
    up2 = SweepTracker(store, EXPERIMENT)
    assert up2.start_sweep("s", str(exp), "test") == parent
    assert backfill(exp, up2) == {"trials": len(fake.TRIALS), "runs_created": 0, "metrics_logged": 0,
                                  "artifacts_logged": 0}
    _check_fake_runs(store, parent, live=False)


def _check_fake_runs(uri, parent, live: bool):
    """The MLflow record of the fake sweep: one run per trial, exact histories, outcomes and sample grids."""
    kids = _children(uri, parent)
    assert len(kids) == len(fake.TRIALS)
    client = _client(uri)
    outcomes = {"none": "finished", "hflip": "finished", "contrast": "diverged", "vflip": "failed"}
    seen = set()
    for run in kids:
        da, seed = run.data.params["da"], int(run.data.params["seed"])
        seen.add((da, seed))
        assert run.data.tags["gansweep.outcome"] == outcomes[da]
        assert run.info.status == ("FAILED" if da == "vflip" else "FINISHED")
        last = {"contrast": 2, "vflip": 1}.get(da, fake.STEPS)
        scored = [s for s in range(1, last + 1) if fake.fake_metrics(da, seed, s)["diverged"] == 0]
        assert _history(uri, run.info.run_id, "fid_effnet") == [
            (s, fake.fake_metrics(da, seed, s)["fid_effnet"]) for s in scored]
        assert _history(uri, run.info.run_id, "diverged") == [
            (s, float(fake.fake_metrics(da, seed, s)["diverged"])) for s in range(1, last + 1)]
        grids = [f.path for f in client.list_artifacts(run.info.run_id, "samples")]
        # the callback logs every checkpoint as it comes; backfill finds the ones Tune kept (num_to_keep=2)
        steps = scored if live else scored[-2:]
        assert grids == [f"samples/{sample_name(s)}" for s in steps]
    assert seen == set(fake.TRIALS)


# --- the Tune callback and backfill over a real Tune experiment -----------------------------------------------


def test_tune_callback_logs_the_live_sweep(live):
    uri, parent = live["uri"], live["parent"]
    _check_fake_runs(uri, parent, live=True)
    assert _client(uri).get_run(parent).info.status == "FINISHED"


def test_backfill_after_callback_adds_nothing(live, monkeypatch):
    monkeypatch.chdir(live["root"])
    t = SweepTracker(live["uri"], EXPERIMENT)
    assert t.start_sweep("live", str(live["path"]), "test") == live["parent"]
    counts = backfill(live["path"], t)
    t.end_sweep()
    assert counts == {"trials": len(fake.TRIALS), "runs_created": 0, "metrics_logged": 0, "artifacts_logged": 0}
    assert len(_children(live["uri"], live["parent"])) == len(fake.TRIALS)
