"""A smoke sweep on a simulated 2-node Ray cluster (`ray.cluster_utils.Cluster`): trials run on both nodes and the
driver, joining with `--address`, gets every result into MLflow.

Each node declares one (logical) GPU and trials ask for half a GPU and half a CPU, as `--gpus-per-trial 0.5` would on
a real cluster: Ray packs two trials per GPU, and torch, seeing no CUDA device here, trains on the CPU."""

from __future__ import annotations

import json

import pytest
import ray
from ray.cluster_utils import Cluster

from sweep.execution.driver import run_sweep
from sweep.plan import Options, resolve_plan
from sweep.records import read_sweep
from tests.sweep_helpers import TINY, sweep_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_sweep_spreads_over_both_nodes(tmp_path, two_nodes):
    opts = Options(storage=str(tmp_path / "results"), name="c", mlflow_uri=f"sqlite:///{tmp_path}/mlflow.db",
                   address=two_nodes.address, cpus_per_trial=0.5, gpus_per_trial=0.5, verbose=0)
    sweep = resolve_plan("demo-grid", seeds=1, overrides=TINY, only=["none", "hflip@64", "contrast@64", "vflip@64"],
                         options=opts)
    assert run_sweep(sweep, report=False).ok

    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2
    used = set()
    for record in read_sweep(sweep.path):
        assert record.last["step"] == 4
        used |= {report.node_id for report in record.timeline}
    assert used == nodes, "trials ran on one node only"
    _, parents, children = sweep_runs(sweep.options.mlflow_uri)
    assert len(parents) == 1 and len(children) == 4
    resources = json.loads(parents[0].data.tags["gansweep.cluster_resources"])
    assert resources["nodes"] == 2 and resources["GPU"] == 2
    assert {r.data.params["arm"] for r in children} == {"none", "hflip@64", "contrast@64", "vflip@64"}
