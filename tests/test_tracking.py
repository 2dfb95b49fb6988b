"""sweep.mlflow.tracker: parent/child runs as researchers browse them, idempotent logging on resume, retries and the
offline switch, backfill, and the Tune callback.

Runs against real sqlite MLflow stores (one migrated template copied per test: creating a store takes seconds)
and a real tiny Tune experiment (tests/_fake_sweep.py) run with `MlflowTuneCallback` attached; backfill tests
replay a copy of that experiment folder into a fresh store.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import pytest

from gan.train import grid_name
from sweep.mlflow import active as trackers
from sweep.mlflow.backfill import backfill
from sweep.mlflow.layout import trial_params as mlflow_params
from sweep.mlflow.tracker import SweepTracker
from tests import _fake_sweep as fake

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

    from sweep.execution.callback import MlflowTuneCallback

    root = tmp_path_factory.mktemp("live")
    cwd = os.getcwd()
    os.chdir(root)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        uri = _new_store(template_db, "live")
        tracker = SweepTracker(uri, EXPERIMENT)
        path = root / "live"
        parent = tracker.start_sweep("live", str(path), "test", params={"study": "test"}, tags={})
        trackers.activate(str(path), tracker)
        fake.run_experiment(root, name="live", callbacks=[MlflowTuneCallback(str(path))])
        tracker.end_sweep()
        trackers.deactivate(str(path))
    finally:
        if started:
            ray.shutdown()
        os.chdir(cwd)
    return {"path": path, "uri": uri, "parent": parent, "root": root}


def _fake_config(da="hflip", seed=0):
    return fake.trial_config(da, seed)


def _start(t: SweepTracker, trial_id: str, da="hflip", seed=0):
    config = _fake_config(da, seed)
    return t.trial_started(trial_id, mlflow_params(config), f"{fake.arm(da)}-s{seed}-{trial_id}")


def _grid(path: Path, colour=(1, 2, 3)) -> Path:
    from PIL import Image

    Image.new("RGB", (4, 4), colour).save(path)
    return path


def _images(uri, run_id) -> list[int]:
    """The steps of the sample grids a run holds (MLflow's log_image files, full-size ones only)."""
    names = [os.path.basename(f.path) for f in _client(uri).list_artifacts(run_id, "images")]
    return sorted(int(n.split("+")[2]) for n in names if n.startswith("samples+step+") and n.endswith(".png"))


# --- parent and child runs ------------------------------------------------------------------------------------


def test_parent_child_params_metrics_and_roles(store, tmp_path):
    t = SweepTracker(store, EXPERIMENT)
    parent = t.start_sweep("s1", str(tmp_path / "s1"), "test", params={"study": "test", "seeds": 2},
                           tags={"gansweep.command": "gansweep run test", "gansweep.cluster_resources": '{"CPU": 2}'})
    run_id = _start(t, "t0", "hflip", 1)
    for step in (1, 2, 3):
        assert t.trial_result("t0", {**fake.fake_metrics("hflip", 1, step), "timestamp": 123, "done": False,
                                     "config": {"a": 1}, "should_checkpoint": True}) > 0
    t.trial_finished("t0", "finished")
    t.end_sweep()

    client = _client(store)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on the runs table
    p = client.get_run(parent)
    assert p.info.status == "FINISHED"
    assert p.data.params == {"study": "test", "seeds": "2"}
    assert p.data.tags["gansweep.sweep_path"] == str(tmp_path / "s1")
    assert (p.data.tags["gansweep.study"], p.data.tags["gansweep.role"]) == ("test", "sweep")
    assert p.data.tags["gansweep.command"] == "gansweep run test"
    assert p.data.tags["gansweep.cluster_resources"] == '{"CPU": 2}'
    assert len(p.data.tags["mlflow.source.git.commit"]) == 40  # this checkout's commit
    c = client.get_run(run_id)
    assert c.info.run_name == "hflip@100-s1-t0"
    assert c.data.tags["mlflow.parentRunId"] == parent
    assert (c.data.tags["gansweep.trial_id"], c.data.tags["gansweep.role"]) == ("t0", "trial")
    assert c.data.tags["gansweep.outcome"] == "finished"
    assert c.info.status == "FINISHED"
    assert c.data.params["da"] == "hflip" and c.data.params["arm"] == "hflip@100" and c.data.params["seed"] == "1"
    assert _history(store, run_id, "fid_effnet") == [(s, 90.0 - 10 * s + 3.0) for s in (1, 2, 3)]
    assert _history(store, run_id, "loss_g") == [(s, 2.5) for s in (1, 2, 3)]
    assert not {"timestamp", "done", "should_checkpoint", "config"} & set(c.data.metrics)


def test_commit_tag_falls_back_to_the_package_version(tmp_path):
    from importlib.metadata import version

    assert trackers.source_version(tmp_path) == f"gansweep {version('gansweep')}"  # no .git there
    assert len(trackers.source_version()) == 40


def test_an_experiment_made_elsewhere_is_marked_as_model_training(store, tmp_path):
    client = _client(store)
    exp_id = client.create_experiment(EXPERIMENT)
    SweepTracker(store, EXPERIMENT).start_sweep("s", str(tmp_path / "x"), "test")
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_resume_reuses_runs_and_skips_logged_steps(store, tmp_path):
    path = str(tmp_path / "sweep")
    t = SweepTracker(store, EXPERIMENT)
    parent = t.start_sweep("s", path, "test", params={"study": "test"}, tags={"gansweep.command": "run"})
    rid = _start(t, "a", "none")
    _start(t, "b", "hflip")
    for step in (1, 2):
        t.trial_result("a", fake.fake_metrics("none", 0, step))
    # a restored trial re-reports the step after its checkpoint, then goes on
    assert _start(t, "a", "none") == rid
    assert t.trial_result("a", fake.fake_metrics("none", 0, 2)) == 0
    t.trial_result("a", fake.fake_metrics("none", 0, 3))

    # a new driver (resume): same parent, same children, nothing logged twice, params not re-logged
    t2 = SweepTracker(store, EXPERIMENT)
    assert t2.start_sweep("s", path, "test", params={"study": "test", "new_option": 1},
                          tags={"gansweep.command": "run", "gansweep.last_command": "resume"}) == parent
    assert _start(t2, "a", "none") == rid
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


def test_callback_finds_its_tracker_by_sweep_path_after_unpickling(store, tmp_path):
    """Tune pickles callbacks into the sweep folder and Tuner.restore brings that copy back: the copy must log to
    the tracker of the driver that runs now (a resume may have pointed it at another MLflow)."""
    from types import SimpleNamespace

    from sweep.execution.callback import MlflowTuneCallback

    path = str(tmp_path / "p")
    cb = pickle.loads(pickle.dumps(MlflowTuneCallback(path)))
    assert cb.tracker is None  # no driver: one warning, nothing logged
    t = SweepTracker(store, EXPERIMENT)
    t.start_sweep("s", path, "test")
    trackers.activate(path, t)
    try:
        trial = SimpleNamespace(trial_id="a", config=_fake_config(), last_result={})
        cb.on_trial_start(iteration=0, trials=[trial], trial=trial)
        assert t.run_id("a") is not None
    finally:
        trackers.deactivate(path)


def test_callback_outcomes_without_tune(store, tmp_path):
    """MlflowTuneCallback's mapping of Tune events, on stand-in trials (ASHA's early stop included)."""
    from types import SimpleNamespace

    from ray import tune

    from sweep.execution.callback import MlflowTuneCallback

    t = SweepTracker(store, EXPERIMENT)
    path = str(tmp_path / "cb")
    t.start_sweep("s", path, "test")
    trackers.activate(path, t)
    cb = MlflowTuneCallback(path)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for step in (1, 2, 3):  # the checkpoint of each case's last report holds that step's grid
        _grid(ckpt / grid_name(step))
    (ckpt / "generator.pt").write_bytes(b"weights")
    cases = {"full": (3, 0, "finished"), "asha": (1, 0, "stopped"), "nan": (2, 1, "diverged")}
    try:
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
    finally:
        trackers.deactivate(path)
    client = _client(store)
    for tid, (step, _, outcome) in cases.items():
        run = client.get_run(t.run_id(tid))
        assert run.data.tags["gansweep.outcome"] == outcome
        assert _images(store, run.info.run_id) == [step]
        assert [f.path for f in client.list_artifacts(run.info.run_id, "model")] == ["model/generator.pt"]
    assert client.get_run(t.run_id("err")).info.status == "FAILED"


def test_backfill_leaves_unfinished_trials_to_end_sweep(store, tmp_path):
    """An in-process sweep whose driver died: the unfinished trial stays RUNNING through backfill (a resume would
    go on with it) and end_sweep ends it as interrupted."""
    exp = tmp_path / "exp"
    for tid, steps in (("00000_aaaaaaaa", 3), ("00001_bbbbbbbb", 2)):
        d = exp / f"none-s0-{tid}"
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps(fake.trial_config("none", 0)))
        (d / "result.json").write_text("".join(
            json.dumps({**fake.fake_metrics("none", 0, s), "trial_id": tid}) + "\n"
            for s in range(1, steps + 1)))
    t = SweepTracker(store, EXPERIMENT)
    t.start_sweep("s", str(exp), "test")
    assert backfill(exp, t)["runs_created"] == 2
    client = _client(store)
    assert client.get_run(t.run_id("00001_bbbbbbbb")).info.status == "RUNNING"
    assert client.get_run(t.run_id("00000_aaaaaaaa")).info.status == "FINISHED"
    t.end_sweep()
    run = client.get_run(t.run_id("00001_bbbbbbbb"))
    assert run.info.status == "KILLED" and run.data.tags["gansweep.outcome"] == "interrupted"
    # a later backfill reopens it to look for gaps and ends it as it was
    t2 = SweepTracker(store, EXPERIMENT)
    t2.start_sweep("s", str(exp), "test")
    assert backfill(exp, t2)["metrics_logged"] == 0
    run = client.get_run(t2.run_id("00001_bbbbbbbb"))
    assert run.info.status == "KILLED" and run.data.tags["gansweep.outcome"] == "interrupted"


def test_outcomes_grids_and_weights(store, tmp_path):
    t = SweepTracker(store, EXPERIMENT)
    t.start_sweep("s", str(tmp_path / "o"), "test")
    grid = _grid(tmp_path / "samples.png")
    weights = tmp_path / "generator.pt"
    weights.write_bytes(b"w")
    ids = {}
    for outcome in ("finished", "diverged", "stopped", "failed"):
        ids[outcome] = _start(t, outcome)
        t.trial_result(outcome, fake.fake_metrics("hflip", 0, 1))
        assert t.trial_grid(outcome, grid, 300)
        assert not t.trial_grid(outcome, grid, 300)  # already there
        assert t.trial_grid(outcome, grid, 600)
        assert t.trial_weights(outcome, weights) and not t.trial_weights(outcome, weights)
        t.trial_finished(outcome, outcome)
    assert not t.trial_grid("finished", tmp_path / "missing.png", 900)
    client = _client(store)
    for outcome, rid in ids.items():
        run = client.get_run(rid)
        assert run.info.status == ("FAILED" if outcome == "failed" else "FINISHED")
        assert run.data.tags["gansweep.outcome"] == outcome
        assert run.data.tags["gansweep.diverged"] == str(int(outcome == "diverged"))
        assert _images(store, rid) == [300, 600]
        assert [f.path for f in client.list_artifacts(rid, "model")] == ["model/generator.pt"]
    # a fresh tracker (a resumed driver) sees what is there
    again = SweepTracker(store, EXPERIMENT)
    again.start_sweep("s", str(tmp_path / "o"), "test")
    assert again.has_grid("finished", 300) and not again.has_grid("finished", 900)
    with pytest.raises(ValueError, match="allowed"):
        t.trial_finished("finished", "exploded")


def test_a_trials_data_are_its_dataset_inputs_and_the_ranking_metric_is_primary(store, tmp_path):
    """The runs table's Dataset column: the composed training set (named by source and arm, digest its image hash)
    and the held-out reference as context `evaluation`, logged once; the experiment's primary metric and direction
    come from the sweep's record."""
    from sweep.mlflow import layout

    t = SweepTracker(store, EXPERIMENT)
    record = {"study": "test", "metric": "kid_mean_effnet", "mode": "min", "configs": [{"seed": 0}], "overrides": {}}
    layout.open_sweep(t, "s", str(tmp_path / "ds"), record, trials=1, driver={})
    run_id = _start(t, "t0", "hflip", 0)
    digests = {"data_digest": "0123456789abcdef", "reference_digest": "fedcba9876543210"}
    for step in (1, 2):
        t.trial_result("t0", {**fake.fake_metrics("hflip", 0, step), **digests, "device": "cpu"})
    run = _client(store).get_run(run_id)
    seen = sorted((d.dataset.name, d.dataset.digest, {x.key: x.value for x in d.tags}["mlflow.data.context"])
                  for d in run.inputs.dataset_inputs)
    assert seen == [("lfw-subset: hflip@100", "0123456789abcdef", "training"),
                    ("lfw-subset: reference", "fedcba9876543210", "evaluation")]
    train = next(d.dataset for d in run.inputs.dataset_inputs if d.dataset.name.endswith("hflip@100"))
    assert json.loads(train.profile) == {"num_rows": 200}  # 100 real + 100 hflip
    assert run.data.tags["gansweep.device"] == "cpu"
    exp = _client(store).get_experiment_by_name(EXPERIMENT)
    assert exp.tags["mlflow.experiment.primaryMetric.name"] == "kid_mean_effnet"
    assert exp.tags["mlflow.experiment.primaryMetric.greaterIsBetter"] == "false"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_donor_runs_carry_their_role(store, tmp_path):
    t = SweepTracker(store, EXPERIMENT)
    parent = t.start_sweep("s", str(tmp_path / "d"), "test")
    t.trial_started("donor-abc", {"steps": "5"}, "donor abc", role="donor")
    (run,) = _children(store, parent)
    assert run.data.tags["gansweep.role"] == "donor" and run.info.run_name == "donor abc"


def test_sweep_summary_puts_the_answer_on_the_parent(store, tmp_path):
    import pandas as pd

    t = SweepTracker(store, EXPERIMENT)
    parent = t.start_sweep("s", str(tmp_path / "r"), "test")
    (tmp_path / "summary.md").write_text("# hi\n")
    table = pd.DataFrame({"arm": ["none", "hflip@100"], "fid_effnet_mean": [80.5, 70.5]})
    t.sweep_summary(table, metrics={"best_fid_effnet": 70.5}, tags={"gansweep.best": "hflip@100"},
                    files=[tmp_path / "summary.md", tmp_path / "not-there.csv"])
    t.end_sweep(status="FAILED")
    client = _client(store)
    run = client.get_run(parent)
    assert run.info.status == "FAILED"
    assert run.data.metrics["best_fid_effnet"] == 70.5 and run.data.tags["gansweep.best"] == "hflip@100"
    assert [f.path for f in client.list_artifacts(parent, "report")] == ["report/summary.md"]
    local = client.download_artifacts(parent, "summary.json", str(tmp_path))
    logged = json.loads(Path(local).read_text())
    assert logged["columns"] == ["arm", "fid_effnet_mean"] and logged["data"] == [["none", 80.5], ["hflip@100", 70.5]]


# --- errors: retried, rejected, unreachable -------------------------------------------------------------------


def test_transient_errors_are_retried_and_request_errors_skipped(store, tmp_path, monkeypatch, capsys):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

    t = SweepTracker(store, EXPERIMENT, backoff=(0.0, 0.0, 0.0))
    t.start_sweep("s", str(tmp_path / "f"), "test")
    rid = _start(t, "a")
    real, calls = t.client.log_batch, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise MlflowException("API request failed: 503 Service Unavailable", error_code=TEMPORARILY_UNAVAILABLE)
        return real(*args, **kwargs)

    monkeypatch.setattr(t.client, "log_batch", flaky)
    assert t.trial_result("a", fake.fake_metrics("hflip", 0, 1)) > 0
    assert len(calls) == 3 and not t.offline
    assert _history(store, rid, "fid_effnet") == [(1, 80.0)]

    def rejects(*args, **kwargs):
        raise MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE)

    monkeypatch.setattr(t.client, "log_batch", rejects)
    assert t.trial_result("a", fake.fake_metrics("hflip", 0, 2)) == 0
    assert not t.offline and "rejected a request" in capsys.readouterr().err
    monkeypatch.setattr(t.client, "log_batch", real)
    assert t.trial_result("a", fake.fake_metrics("hflip", 0, 3)) > 0  # still online


def test_unreachable_server_warns_once_then_backfill(live, store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    exp = Path(shutil.copytree(live["path"], tmp_path / "exp"))  # a Tune experiment folder MLflow has not seen
    down = SweepTracker("http://127.0.0.1:9", EXPERIMENT, backoff=(0.0, 0.1))
    assert down.start_sweep("s", str(exp), "test", params={"study": "test"}) is None
    assert down.offline and down.offline_reason
    assert down.trial_started("x", {"a": "1"}, "x") is None
    assert down.trial_result("x", fake.fake_metrics("hflip", 0, 1)) == 0
    assert not down.trial_grid("x", __file__, 1)
    down.trial_finished("x", "finished")
    assert backfill(exp, down)["runs_created"] == 0
    down.end_sweep()
    err = capsys.readouterr().err
    assert err.count("unreachable") == 1
    line = next(x for x in err.splitlines() if "unreachable" in x)
    assert "MLflow at http://127.0.0.1:9 unreachable after 3 attempts" in line and "gansweep report <path>" in line

    # later, with a working store: backfill creates everything (read through pyarrow, as from s3://), and a
    # second backfill (a plain path this time) adds nothing
    up = SweepTracker(store, EXPERIMENT)
    parent = up.start_sweep("s", str(exp), "test")
    counts = backfill(f"file://{exp}", up)
    assert counts["trials"] == len(fake.TRIALS) and counts["runs_created"] == len(fake.TRIALS)
    assert counts["metrics_logged"] > 0 and counts["grids_logged"] > 0
    up2 = SweepTracker(store, EXPERIMENT)
    assert up2.start_sweep("s", str(exp), "test") == parent
    assert backfill(exp, up2) == {"trials": len(fake.TRIALS), "runs_created": 0, "metrics_logged": 0,
                                  "grids_logged": 0}
    _check_fake_runs(store, parent, live=False)


def _check_fake_runs(uri, parent, live: bool):
    """The MLflow record of the fake sweep: one run per trial, exact histories, outcomes, sample grids, weights."""
    kids = _children(uri, parent)
    assert len(kids) == len(fake.TRIALS)
    client = _client(uri)
    outcomes = {"none": "finished", "hflip": "finished", "contrast": "diverged", "vflip": "failed"}
    seen = set()
    for run in kids:
        da, seed = run.data.params["da"], int(run.data.params["seed"])
        seen.add((da, seed))
        assert run.info.run_name.startswith(f"{fake.arm(da)}-s{seed}-")
        assert run.data.tags["gansweep.outcome"] == outcomes[da]
        assert run.info.status == ("FAILED" if da == "vflip" else "FINISHED")
        last = {"contrast": 2, "vflip": 1}.get(da, fake.STEPS)
        scored = [s for s in range(1, last + 1) if fake.fake_metrics(da, seed, s)["diverged"] == 0]
        assert _history(uri, run.info.run_id, "fid_effnet") == [
            (s, fake.fake_metrics(da, seed, s)["fid_effnet"]) for s in scored]
        assert _history(uri, run.info.run_id, "diverged") == [
            (s, float(fake.fake_metrics(da, seed, s)["diverged"])) for s in range(1, last + 1)]
        # the callback logs every checkpoint as it comes; backfill finds the ones Tune kept (num_to_keep=2)
        assert _images(uri, run.info.run_id) == (scored if live else scored[-2:])
        model = [f.path for f in client.list_artifacts(run.info.run_id, "model")]
        assert model == (["model/generator.pt"] if outcomes[da] == "finished" else [])
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
    assert counts == {"trials": len(fake.TRIALS), "runs_created": 0, "metrics_logged": 0, "grids_logged": 0}
    assert len(_children(live["uri"], live["parent"])) == len(fake.TRIALS)


def test_the_parent_shows_every_arm_per_step_once(live, store, monkeypatch, tmp_path):
    from PIL import Image

    from sweep.mlflow import layout
    from sweep.records import SweepFolder, read_sweep

    monkeypatch.chdir(tmp_path)
    records = read_sweep(live["path"])
    steps = sorted({g.step for r in records for g in r.grids})
    first = {r.arm for r in records for g in r.grids if g.step == steps[0]}  # the arms with a grid at step 1
    t = SweepTracker(store, EXPERIMENT)
    parent = t.start_sweep("s", str(live["path"]), "test")
    assert layout.log_arm_grids(t, records, SweepFolder(live["path"])) == len(steps) > 0
    again = SweepTracker(store, EXPERIMENT)  # a second report (another process) adds nothing
    again.start_sweep("s", str(live["path"]), "test")
    assert layout.log_arm_grids(again, records, SweepFolder(live["path"])) == 0
    assert _images(store, parent) == []  # not trial grids: the parent's own key
    client = _client(store)
    pngs = sorted(a.path for a in client.list_artifacts(parent, "images") if a.path.endswith(".png"))
    assert len(pngs) == len(steps) and all(p.startswith("images/arms+step+") for p in pngs)
    assert client.get_run(parent).data.tags["gansweep.sample_steps"] == " ".join(map(str, steps))
    first_png = next(p for p in pngs if p.startswith(f"images/arms+step+{steps[0]}+"))
    with Image.open(client.download_artifacts(parent, first_png, str(tmp_path))) as im:
        assert len(first) > 1 and im.height >= len(first) * 64  # a row per arm, each grid at least MIN_TILE high
