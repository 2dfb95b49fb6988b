"""One MLflow layout: the same smoke sweep run live and run while MLflow was unreachable, then backfilled with
`gansweep report PATH --mlflow-uri`, leaves two stores that hold the same runs, params, tags, metric keys and
histories, artifact paths and dataset inputs (read back with MlflowClient; ids, timestamps and the sweep's own path
aside)."""

from __future__ import annotations

import re

import pytest
from mlflow.tracking import MlflowClient

from sweep.cli import main
from sweep.execution.driver import run_sweep
from sweep.plan import Options, resolve_plan
from tests.sweep_helpers import TINY

pytestmark = pytest.mark.slow

ARMS = ("none", "hflip@64", "generated@64")  # a donor run too


def _plan(root, uri):
    return resolve_plan("demo-grid", seeds=1, overrides=TINY, only=ARMS,
                        options=Options(storage=str(root / "results"), name="smoke", in_process=True, verbose=0,
                                        mlflow_uri=uri, argv=("gansweep", "run", "demo-grid")))


def _artifacts(client, run_id, folder=None) -> list[str]:
    out = []
    for a in client.list_artifacts(run_id, folder):
        out += _artifacts(client, run_id, a.path) if a.is_dir else [a.path]
    return out


# log_image names its files itself (`samples+step+4+timestamp+<ms>+<uuid>.png`): compare what they show
_IMAGE_NAME = re.compile(r"\+timestamp\+\d+\+[0-9a-f-]+")


def snapshot(uri: str, sweep_path: str) -> dict:
    """Everything a researcher reads off the store, keyed by run name, without ids, times or the sweep's folder."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("gansweep")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    names = {r.info.run_id: r.info.run_name for r in runs}
    out = {"experiment": {k: v for k, v in exp.tags.items() if not k.startswith("mlflow.note")}}
    for r in runs:
        tags = {k: v.replace(sweep_path, "<SWEEP>") for k, v in r.data.tags.items()
                if k not in ("mlflow.user", "mlflow.source.name", "mlflow.source.type")}
        if "mlflow.parentRunId" in tags:
            tags["mlflow.parentRunId"] = names[tags["mlflow.parentRunId"]]
        out[r.info.run_name] = {
            "status": r.info.status, "params": r.data.params, "tags": tags,
            "history": {k: [m.step for m in client.get_metric_history(r.info.run_id, k)] for k in r.data.metrics},
            "artifacts": sorted(_IMAGE_NAME.sub("", p) for p in _artifacts(client, r.info.run_id)),
            "datasets": sorted((d.dataset.name, d.dataset.digest, tuple((t.key, t.value) for t in d.tags))
                               for d in r.inputs.dataset_inputs),
        }
    return out


def test_a_backfilled_store_equals_a_live_one(tmp_path):
    live = _plan(tmp_path / "live", f"sqlite:///{tmp_path}/live.db")
    assert run_sweep(live).ok
    off = _plan(tmp_path / "off", "http://127.0.0.1:9")  # nothing listens: the sweep runs with MLflow offline
    assert run_sweep(off).ok
    with pytest.raises(SystemExit) as ended:
        main(["report", off.path, "--mlflow-uri", f"sqlite:///{tmp_path}/backfilled.db"])
    assert ended.value.code == 0
    a, b = snapshot(live.options.mlflow_uri, live.path), snapshot(f"sqlite:///{tmp_path}/backfilled.db", off.path)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name
    trials = [v for v in a.values() if v.get("tags", {}).get("gansweep.role") == "trial"]
    assert len(trials) == len(ARMS) and all(len(t["datasets"]) == 2 for t in trials)  # training and evaluation
    assert a["experiment"]["mlflow.experiment.primaryMetric.name"] == live.metric
