"""The cluster's tracking path: an MLflow server on a real PostgreSQL (Debian's postgresql, started here in a
throwaway cluster), a smoke sweep logging to it over HTTP, and the runs read back with MlflowClient."""

from __future__ import annotations

import pytest

from sweep.execution.driver import run_sweep
from sweep.plan import Options, resolve_plan
from tests.servers import free_port, mlflow_server, postgres, serve
from tests.sweep_helpers import TINY, grid_steps, metric_steps, sweep_runs

pytestmark = pytest.mark.slow


def test_smoke_sweep_into_an_mlflow_server_on_postgresql(tmp_path):
    port = free_port()
    with postgres() as db, serve(mlflow_server(db, tmp_path / "artifacts", port),
                                 f"http://127.0.0.1:{port}/health", timeout=240):
        uri = f"http://127.0.0.1:{port}"
        plan = resolve_plan("demo-grid", seeds=1, overrides=TINY, only=("none", "hflip@64"),
                            options=Options(storage=str(tmp_path / "results"), name="pg", in_process=True,
                                            verbose=0, mlflow_uri=uri))
        result = run_sweep(plan)
        assert result.ok and result.outcomes == {"finished": 2}

        client, (parent,), children = sweep_runs(uri)
        assert parent.info.status == "FINISHED" and parent.data.tags["gansweep.sweep_path"] == plan.path
        assert sorted(r.data.params["arm"] for r in children) == ["hflip@64", "none"]
        for run in children:
            assert run.data.tags["gansweep.outcome"] == "finished"
            assert metric_steps(client, run.info.run_id, "fid_effnet") == [2, 4]
            assert grid_steps(client, run.info.run_id) == [2, 4]  # artifacts through the server's proxy
        assert "report/summary.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
        # the store is PostgreSQL's: the experiment's row is in the database MLflow was given
        import sqlalchemy

        with sqlalchemy.create_engine(db).connect() as conn:
            names = [r[0] for r in conn.execute(sqlalchemy.text("select name from experiments"))]
        assert "gansweep" in names
