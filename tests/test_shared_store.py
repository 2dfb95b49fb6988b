"""Two `gansweep run` started at once in one folder, on one new `./mlflow.db` (the default store): both finish with
every run, metric point and sample grid in MLflow, each once, and neither loses a call to "database is locked", to
the schema both would create (MLflow's migrations run under `sqlite_init_lock`) or to the experiment both would
create (the second finds the first's)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.sweep_helpers import TINY, grid_steps, metric_steps, sweep_runs

pytestmark = pytest.mark.slow

ARMS = ("none", "hflip@64")


def test_two_sweeps_into_one_new_store_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    settings = [f"--set={k}={v}" for k, v in TINY.items()]
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "sweep", "run", "demo-grid", "--in-process", "--seeds", "1", "--name", name, "--no-report",
         *[a for arm in ARMS for a in ("--only", arm)], *settings],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("a", "b")}
    outs = {name: p.communicate(timeout=600) for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, outs[name][1][-3000:]
        err = outs[name][1]
        assert "locked" not in err and "unreachable" not in err and "rejected" not in err, err[-3000:]
        assert outs[name][0].splitlines()[-1] == f"browse: gansweep ui --mlflow-uri sqlite:///{tmp_path}/mlflow.db"

    client, parents, children = sweep_runs(f"sqlite:///{tmp_path}/mlflow.db")
    assert sorted(p.info.run_name for p in parents) == ["a", "b"]
    assert len(client.search_experiments()) == 2  # MLflow's Default and one gansweep, made once
    for parent in parents:
        assert parent.info.status == "FINISHED"
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert sorted(c.data.params["arm"] for c in mine) == sorted(ARMS)
        for run in mine:
            assert run.info.status == "FINISHED" and run.data.tags["gansweep.outcome"] == "finished"
            assert metric_steps(client, run.info.run_id, "fid_effnet") == [2, 4]
            assert grid_steps(client, run.info.run_id) == [2, 4]
    assert len(children) == 2 * len(ARMS)
