"""A sweep on an object store: `--storage s3://...` and MLflow's artifacts on an S3-protocol server on loopback
(moto's standalone server), then `gansweep report` reads the sweep back from there: Tune's results and checkpoints,
the donor cache, the report and every MLflow artifact end up in the bucket, each trial once in MLflow."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from sweep.records import read_sweep
from tests.sweep_helpers import TINY, gansweep_cmd, grid_steps, metric_steps, subprocess_env, sweep_runs

pytestmark = pytest.mark.slow
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e .[test])")

BUCKET, STEPS = "gansweep-test", 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch):
    """An S3 server on a free loopback port with one empty bucket; this process and its children talk to it."""
    import boto3

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in dict(AWS_ENDPOINT_URL=endpoint, MLFLOW_S3_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test",
                     AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1").items():
        monkeypatch.setenv(k, v)
    try:
        client = boto3.client("s3")
        deadline = time.time() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 -- the server is still starting
                assert server.poll() is None, "moto's server exited"
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield client
    finally:
        server.terminate()
        server.wait(timeout=30)


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_sweep_and_report_through_a_bucket(tmp_path, s3):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).create_experiment("gansweep", artifact_location=f"s3://{BUCKET}/mlflow")
    storage = f"s3://{BUCKET}/prefix"
    sweep = f"{storage}/sw"
    settings = [f"--set={k}={v}" for k, v in TINY.items() if k != "steps"] + ["--steps", str(STEPS)]
    cmd = gansweep_cmd("run", "demo-grid", "--only", "none", "--only", "generated@64", "--name", "sw", "--storage",
                       storage, "--mlflow-uri", uri, "--num-cpus", "2", "--seeds", "1", *settings)
    done = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    report = subprocess.run(gansweep_cmd("report", sweep), cwd=tmp_path, env=subprocess_env(), capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "none" in report.stdout and "generated@64" in report.stdout  # the summary, read back from the bucket

    # Tune's results and checkpoints, the donor cache and the report: in the bucket, nothing on the local disk.
    keys = _keys(s3, "prefix/")
    assert "prefix/sw/gansweep.json" in keys and "prefix/sw/report/summary.md" in keys
    assert any(k.startswith("prefix/donors/") and k.endswith("/samples.parquet") for k in keys), keys
    records = read_sweep(sweep)
    assert len(records) == 2 and all(r.last["step"] == STEPS for r in records)
    for r in records:
        trial = [k for k in keys if k.count("/") > 2 and k.split("/")[2].endswith(r.trial_id)]  # its Tune folder
        assert any(k.endswith("result.json") for k in trial), r.trial_id
        assert any("/checkpoint_" in k for k in trial), r.trial_id
    assert not [k for k in keys if ".tmp" in k.rsplit("/", 1)[-1]], "a temporary upload was left behind"
    assert not (tmp_path / "prefix").exists()

    # MLflow: each trial once, finished, every step once; its artifacts listed from, and stored in, the bucket.
    client, parents, children = sweep_runs(uri)
    trials = [r for r in children if r.data.tags["gansweep.role"] == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.params["arm"] for r in trials) == ["generated@64", "none"]
    for run in [*parents, *children]:
        assert run.info.artifact_uri.startswith(f"s3://{BUCKET}/mlflow/")
    for run in trials:
        assert run.data.tags["gansweep.outcome"] == "finished"
        assert metric_steps(client, run.info.run_id, "fid_effnet") == list(range(2, STEPS + 1, 2))
        assert grid_steps(client, run.info.run_id)[-1] == STEPS
        assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/generator.pt"]
        prefix = run.info.artifact_uri.removeprefix(f"s3://{BUCKET}/") + "/"
        assert f"{prefix}model/generator.pt" in _keys(s3, prefix)
    report_files = [a.path for a in client.list_artifacts(parents[0].info.run_id, "report")]
    assert "report/summary.md" in report_files
    prefix = parents[0].info.artifact_uri.removeprefix(f"s3://{BUCKET}/") + "/"
    assert f"{prefix}report/summary.md" in _keys(s3, prefix)
