"""Shared pieces of the sweep tests: a tiny study setting and MLflow read-back helpers."""

from __future__ import annotations

import os
import sys

from mlflow.tracking import MlflowClient

# Small enough that a trial is a few seconds on 2 CPU cores, large enough to exercise every code path.
TINY = dict(steps=4, eval_every=2, eval_samples=8, is_splits=2, batch_size=8, g_width=8, d_width=8, donor_steps=2)


def sweep_runs(uri: str, experiment: str = "gansweep"):
    """(parent runs, child runs) of the experiment, children keyed by their trial id tag."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def metric_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def grid_steps(client: MlflowClient, run_id: str) -> list[int]:
    """The steps of the sample grids a run holds (MLflow's log_image files under images/)."""
    names = [a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, "images")]
    return sorted(int(n.split("+")[2]) for n in names if n.startswith("samples+step+") and n.endswith(".png"))


def subprocess_env() -> dict[str, str]:
    """The environment of a `gansweep` subprocess: no RAY_* variable, so it starts its own Ray, not a test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def gansweep_cmd(*args) -> list[str]:
    """A `gansweep` command line run by this interpreter."""
    return [sys.executable, "-m", "sweep", *args]
