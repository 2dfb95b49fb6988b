"""Shared pieces of the sweep tests: a tiny study setting and MLflow read-back helpers."""

from __future__ import annotations

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
