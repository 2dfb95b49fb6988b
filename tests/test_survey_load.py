"""The survey under load (benchmarks/survey_load.py): 50 participants at once against the real survey server on
loopback lose and duplicate no vote and get only votes on their own served pairs accepted; the server SIGKILLed
mid-load keeps every vote it acknowledged, and its database passes sqlite's integrity check."""

from __future__ import annotations

import pytest

from benchmarks.survey_load import load, table

pytestmark = pytest.mark.slow


def test_fifty_participants_lose_no_vote(tmp_path):
    r = load(participants=50, pairs=3, max_seconds=240, folder=tmp_path)
    assert not r["killed"] and r["acked"] == 50 * 3  # everyone finished
    assert r["stored"] == r["acked"] and r["lost"] == 0 and r["unacked_stored"] == 0
    assert r["unserved"] == 0 and r["wrong_participant"] == 0 and r["integrity"] == "ok"
    assert r["refused_bad"] >= 50  # each refused its never-served token (and most another's), none accepted
    assert len(r["times"]["/api/vote"]) == r["acked"] + r["refused_bad"]
    assert table(r).count("\n") == 4  # header, rule, /, /api/next, /api/vote


def test_a_server_killed_mid_load_keeps_every_acknowledged_vote(tmp_path):
    r = load(participants=50, pairs=6, max_seconds=240, kill_after=60, folder=tmp_path)
    assert r["killed"] and 60 <= r["acked"] < 50 * 6  # killed mid-load
    assert r["lost"] == 0 and r["integrity"] == "ok"  # every acknowledged vote, with its choice
    assert r["unserved"] == 0 and r["wrong_participant"] == 0
    assert r["unacked_stored"] <= 50  # at most one in flight per participant: stored, its answer lost in the kill
