"""What pyproject.toml promises the cluster: the `server` extra makes the `postgresql://` URI of cluster.yaml reach
psycopg 3, the only PostgreSQL driver it installs (SQLAlchemy maps `postgresql://` to psycopg 3 from 2.1 on, and to
psycopg2 before)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import sqlalchemy
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


@pytest.mark.parametrize("extra", ["server", "test"])
def test_the_postgresql_extras_rule_out_the_psycopg2_default(extra):
    reqs = {r.name: r for r in map(Requirement, EXTRAS[extra])}
    assert "psycopg" in reqs and "binary" in reqs["psycopg"].extras
    sqlalchemy_req = reqs["sqlalchemy"].specifier
    assert not sqlalchemy_req.contains("2.0.44")  # the 2.0 line: postgresql:// would ask for psycopg2
    assert sqlalchemy_req.contains(version("sqlalchemy"))  # the SQLAlchemy these tests run on is allowed


def test_the_cluster_store_uri_reaches_psycopg_3():
    head = (ROOT / "cluster.yaml").read_text()
    (uri,) = re.findall(r"--backend-store-uri (\S+)", head)
    assert uri.startswith("postgresql://")
    assert sqlalchemy.create_engine(uri).dialect.driver == "psycopg"  # no connection is made
