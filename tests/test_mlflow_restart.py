"""The tracking server restarts mid-sweep: an MLflow server on a real PostgreSQL (tests/servers.py) is SIGKILLed
right after the sweep's first trial result reached it and started again on the same port a few seconds later. With
a patience longer than the outage (`--mlflow-patience`, `backoff_for`), every call waits for it: the fake sweep
(tests/_fake_sweep.py, a real Tune experiment whose metrics are a closed formula) ends with each run, metric point,
sample grid and model in MLflow exactly once. A server that stays down longer than the patience sends the tracker
offline, and a backfill afterwards brings everything in, as it always did."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from sweep.execution.callback import MlflowTuneCallback
from sweep.mlflow import active
from sweep.mlflow.backfill import backfill
from sweep.mlflow.tracker import SweepTracker, backoff_for
from tests import _fake_sweep as fake
from tests.servers import free_port, mlflow_server, postgres, stop, wait_http
from tests.test_tracking import EXPERIMENT, _check_fake_runs, _client

pytestmark = pytest.mark.slow


class Server:
    """An MLflow server on PostgreSQL that can be killed and started again on the same port and stores."""

    def __init__(self, db: str, artifacts, port: int):
        self.cmd, self.port, self.proc = mlflow_server(db, artifacts, port), port, None
        self.uri = f"http://127.0.0.1:{port}"
        self.log = os.path.join(str(artifacts), "server.log")

    def start(self) -> None:
        # output to a file, not a pipe nobody reads: a full pipe would block the server mid-request
        log = open(self.log, "a")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        log.close()
        wait_http(f"{self.uri}/health", timeout=240, proc=self.proc)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # a crash: the server and its workers, no shutdown
        self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with postgres() as db:
        s = Server(db, tmp_path_factory.mktemp("artifacts"), free_port())
        s.start()
        try:
            yield s
        finally:
            stop(s.proc)


def test_a_server_restarted_within_the_patience_loses_nothing(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = SweepTracker(server.uri, EXPERIMENT, backoff=backoff_for(300))
    path = tmp_path / "restart"
    parent = tracker.start_sweep("restart", str(path), "test", params={"study": "test"})
    assert parent is not None
    events = {}

    def restart_after_first_result():
        while not any(r.max_step >= 1 for r in list(tracker._runs.values())):
            time.sleep(0.02)
        server.kill()
        events["killed"] = time.time()
        time.sleep(3)
        server.start()
        events["up"] = time.time()

    outage = threading.Thread(target=restart_after_first_result, daemon=True)
    active.activate(str(path), tracker)
    try:
        outage.start()
        fake.run_experiment(tmp_path, name="restart", callbacks=[MlflowTuneCallback(str(path))])
        done = time.time()
        tracker.end_sweep()
    finally:
        active.deactivate(str(path))
    outage.join(timeout=300)
    assert events["killed"] < done, "the sweep ended before the server went down: the test tested nothing"
    assert not tracker.offline
    _check_fake_runs(server.uri, parent, live=True)  # every run, point, grid and model once
    assert _client(server.uri).get_run(parent).info.status == "FINISHED"
    again = SweepTracker(server.uri, EXPERIMENT, backoff=backoff_for(120))
    assert again.start_sweep("restart", str(path), "test") == parent
    assert backfill(path, again) == {  # nothing was missing
        "trials": len(fake.TRIALS), "runs_created": 0, "metrics_logged": 0, "grids_logged": 0}
    again.end_sweep()


def test_a_server_down_longer_than_the_patience_goes_offline_then_backfills(server, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # the read-back below is a plain MlflowClient: give it a loaded machine's time (the tracker's own 5 s limit is for
    # attempts its backoff retries; nothing listens on the down server's port, so its attempts fail at once anyway)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    exp = shutil.copytree(fake.experiment(), tmp_path / "exp")  # a Tune experiment MLflow has not seen
    down = SweepTracker(f"http://127.0.0.1:{free_port()}", EXPERIMENT, backoff=backoff_for(1.0))
    assert down.start_sweep("late", str(exp), "test") is None and down.offline
    assert "unreachable after 3 attempts" in capsys.readouterr().err  # 0.5 s + 0.5 s of patience
    up = SweepTracker(server.uri, EXPERIMENT, backoff=backoff_for(120))  # a loaded CI machine: slow answers
    parent = up.start_sweep("late", str(exp), "test")
    counts = backfill(exp, up)
    assert counts["runs_created"] == len(fake.TRIALS)
    up.end_sweep()
    _check_fake_runs(server.uri, parent, live=False)
