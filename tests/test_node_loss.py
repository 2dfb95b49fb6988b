"""Node loss: a 2-node Ray cluster on this machine (`ray.cluster_utils.Cluster`, two raylets), each node with room for
one trial; the worker node is removed while a trial runs on it. Its trial continues on the head node from its last
checkpoint and every trial ends with the numbers of an uninterrupted run of the same configs (the reference: the
same trainable without a node loss, tests/_fake_sweep.py's closed formula carried through the checkpoints); the
MLflow callback holds each run once, with each metric step once."""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sweep.execution.callback import MlflowTuneCallback
from sweep.mlflow import active
from sweep.mlflow.tracker import SweepTracker
from sweep.records import trial_dirname, trial_name
from tests import _fake_sweep as fake
from tests.test_tracking import _client

pytestmark = pytest.mark.slow

STEPS = 6
TRIALS = [("none", 0), ("hflip", 0), ("none", 1), ("hflip", 1)]  # two at a time: one per node


def _trainable(config: dict) -> None:
    """fake_metrics per step plus `acc`, a running sum kept in the checkpoint (a restart from a wrong or missing
    checkpoint changes it), `restored_from` (the checkpoint's step) and the node each step ran on."""
    import ray
    from ray import tune

    start, acc = 1, 0.0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = json.loads(Path(d, "state.json").read_text())
        start, acc = state["step"] + 1, state["acc"]
    node = ray.get_runtime_context().get_node_id()
    for step in range(start, STEPS + 1):
        metrics = fake.fake_metrics(config["da"], config["seed"], step)
        acc += metrics["fid_effnet"]
        Path(config["progress"], f"{config['da']}-{config['seed']}-{step}").write_text(node)
        time.sleep(config["sleep"])
        with tempfile.TemporaryDirectory() as d:
            Path(d, "state.json").write_text(json.dumps({"step": step, "acc": acc}))
            tune.report({**metrics, "acc": acc, "restored_from": start - 1},
                        checkpoint=tune.Checkpoint.from_directory(d))


def _run(storage: Path, name: str, progress: Path, sleep: float, callbacks=()):
    from ray import cloudpickle, tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(fake)
    points = [{**fake.trial_config(da, seed), "steps": STEPS, "progress": str(progress), "sleep": sleep}
              for da, seed in TRIALS]
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": 2}),
        param_space=points[0],
        tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(points_to_evaluate=points),
                                    num_samples=len(points),
                                    trial_name_creator=lambda t: trial_name(t.config, t.trial_id),
                                    trial_dirname_creator=lambda t: trial_dirname(t.config, t.trial_id)),
        run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0, callbacks=list(callbacks),
                                  failure_config=tune.FailureConfig(max_failures=2)),
    )
    return {(r.config["da"], r.config["seed"]): r for r in tuner.fit()}


def test_a_removed_node_s_trial_continues_from_its_checkpoint(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    try:
        cluster.wait_for_nodes()
        (tmp_path / "p0").mkdir()
        reference = _run(tmp_path, "reference", tmp_path / "p0", sleep=0.0)

        progress = tmp_path / "p1"
        progress.mkdir()
        uri = f"sqlite:///{tmp_path}/mlflow.db"
        tracker = SweepTracker(uri, "node-loss")
        path = tmp_path / "lost"
        parent = tracker.start_sweep("lost", str(path), "test")
        removed = {}

        def remove_worker_mid_trial():
            while True:
                on_worker = [p.name for p in progress.iterdir() if p.read_text() == worker.node_id]
                if any(int(n.rsplit("-", 1)[1]) >= 2 for n in on_worker):
                    removed["trial"] = on_worker[0].rsplit("-", 1)[0]
                    cluster.remove_node(worker)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=remove_worker_mid_trial, daemon=True)
        active.activate(str(path), tracker)
        try:
            killer.start()
            results = _run(tmp_path, "lost", progress, sleep=1.0, callbacks=[MlflowTuneCallback(str(path))])
            tracker.end_sweep()
        finally:
            active.deactivate(str(path))
        killer.join(timeout=10)
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert "trial" in removed, "no trial ran on the worker node: the test tested nothing"
    da, seed = removed["trial"].split("-")
    hit = results[(da, int(seed))]
    restarts = [m["restored_from"] for m in hit.metrics_dataframe.to_dict("records")]
    assert restarts[0] == 0 and max(restarts) > 0, restarts  # it came back from a checkpoint, not from step 0
    for key, ref in reference.items():
        got = results[key]
        assert got.error is None and got.metrics["step"] == STEPS
        assert got.metrics["acc"] == ref.metrics["acc"] == sum(
            fake.fake_metrics(key[0], key[1], s)["fid_effnet"] for s in range(1, STEPS + 1))
        assert got.metrics["fid_effnet"] == ref.metrics["fid_effnet"]

    client = _client(uri)
    kids = client.search_runs([client.get_experiment_by_name("node-loss").experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted((r.data.params["da"], int(r.data.params["seed"])) for r in kids) == sorted(TRIALS)
    for run in kids:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "fid_effnet")] == list(
            range(1, STEPS + 1))
        assert run.info.status == "FINISHED"
