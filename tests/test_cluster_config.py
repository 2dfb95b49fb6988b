"""The cluster launcher configs pass Ray's own validation, offline (no cloud is contacted).

`ray up` runs `prepare_config` (merge with the provider's defaults, node-type bounds) and then `validate_config` (the
JSON schema in ray/autoscaler/ray-schema.json plus cross-field checks) before it talks to any provider; so do we.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("jsonschema")
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    with open(ROOT / name) as f:
        return yaml.safe_load(f)


def prepared(name: str) -> dict:
    config = prepare_config(copy.deepcopy(load(name)))
    validate_config(config)
    return config


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-onprem.yaml"])
def test_ray_accepts_the_config(name):
    config = prepared(name)
    assert config["head_node_type"] in config["available_node_types"]


def test_aws_cluster_has_gpu_nodes_and_autoscaling_bounds():
    raw = load("cluster.yaml")
    assert raw["provider"]["type"] == "aws"
    types = raw["available_node_types"]
    head = types[raw["head_node_type"]]
    assert head["resources"].get("GPU", 0) >= 1
    workers = {k: v for k, v in types.items() if k != raw["head_node_type"]}
    assert workers
    for node in workers.values():
        assert node["resources"].get("GPU", 0) >= 1
        assert 0 <= node["min_workers"] <= node["max_workers"] <= raw["max_workers"]
        assert node["node_config"]["InstanceType"].startswith(("g5.", "g6.", "p3.", "p4", "p5."))


def test_aws_cluster_installs_gansweep_and_starts_mlflow():
    config = prepared("cluster.yaml")
    assert config["file_mounts"] == {"~/gansweep": "."}
    assert any("pip install" in c and "~/gansweep" in c for c in config["setup_commands"])
    # prepare_config prepends setup_commands to both: every node gets gansweep, only the head runs MLflow.
    head = " ".join(config["head_setup_commands"])
    assert "mlflow server" in head and "--backend-store-uri postgresql://" in head and "--host 0.0.0.0" in head
    assert "initdb" in head and "apt-get install" in head and "[server]" in head  # PostgreSQL on the head
    assert not any("mlflow server" in c for c in config["worker_setup_commands"])
    assert any("pip install" in c and "~/gansweep" in c for c in config["worker_setup_commands"])


def test_onprem_cluster_keeps_every_listed_worker():
    config = prepared("cluster-onprem.yaml")
    raw = load("cluster-onprem.yaml")
    n = len(raw["provider"]["worker_ips"])
    (node_type,) = config["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == n
    assert "mlflow server" in " ".join(config["head_setup_commands"])
    assert any("~/gansweep" in c for c in config["worker_setup_commands"])


def test_docs_show_the_onprem_file():
    doc = (ROOT / "docs" / "cluster.md").read_text()
    assert "cluster-onprem.yaml" in doc and "provider:" in doc and "type: local" in doc
