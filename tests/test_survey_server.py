"""The survey server through Flask's test client: pairs served, votes recorded, foreign or unknown pairs refused,
repeated votes replaced, images by id only, nothing lost across a restart."""

import collections
import sqlite3

import pytest

from sweep.survey import REAL, create_app, pool_from_records, survey_results
from sweep.survey.app import COOKIE
from tests.test_survey_pool import FLAT, colour_of, fake_sweep


@pytest.fixture
def sweep(tmp_path):
    records, real = fake_sweep(tmp_path, methods=("A", "B", "C"))
    return records, real, tmp_path / "survey" / "votes.db"


def make_app(sweep, n_pairs=6, real=False, seed=0, **kwargs):
    records, real_table, db = sweep
    pool = pool_from_records(records, FLAT, real_table=real_table if real else None)
    return create_app(pool, db, n_pairs=n_pairs, seed=seed, **kwargs), pool


def participant(app):
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert client.get_cookie(COOKIE) is not None
    return client


def rows(db, sql):
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def shown(client, url):
    """The method whose colour the image at `url` shows."""
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "image/png"
    return colour_of(response.data)


def test_page_is_served_with_a_cookie_and_safe_headers(sweep):
    app, _ = make_app(sweep)
    response = app.test_client().get("/")
    assert b"Which image looks better?" in response.data
    cookie = response.headers["Set-Cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_n_pairs_of_two_different_methods_then_done(sweep):
    app, _ = make_app(sweep, n_pairs=6)
    client = participant(app)
    seen = []
    for position in range(1, 7):
        pair = client.get("/api/next").get_json()
        assert not pair["done"] and pair["position"] == position and pair["total"] == 6
        left, right = shown(client, pair["left"]), shown(client, pair["right"])
        assert left != right and REAL not in (left, right)
        seen.append(frozenset((left, right)))
        stored = rows(sweep[2], f"SELECT left_method, right_method FROM pairs WHERE token = '{pair['token']}'")
        assert stored == [(left, right)]  # what the database says was shown is what was shown
        assert client.post("/api/vote", json={"token": pair["token"], "choice": "left"}).get_json() == \
            {"answered": position, "total": 6, "done": position == 6}
    assert collections.Counter(seen) == {frozenset(p): 2 for p in ("AB", "AC", "BC")}  # balanced
    assert client.get("/api/next").get_json() == {"done": True, "answered": 6, "total": 6}
    assert client.get("/api/next").get_json()["done"]  # and stays done
    assert rows(sweep[2], "SELECT count(*) FROM pairs") == [(6,)]


def test_sides_and_images_are_randomised(sweep):
    app, _ = make_app(sweep, n_pairs=30, seed=1)
    client = participant(app)
    a_left, images = 0, set()
    for _ in range(30):
        pair = client.get("/api/next").get_json()
        a_left += shown(client, pair["left"]) == "A"
        images |= {pair["left"], pair["right"]}
        client.post("/api/vote", json={"token": pair["token"], "choice": "right"})
    # A is in 20 of the 30 pairs, on the left by a fair coin: Binomial(20, 1/2) leaves [2, 18] once in 25,000 runs
    # (the schedule, and so which coin lands on an A pair, depends on the participant's random id).
    assert 2 <= a_left <= 18
    assert len(images) > 12  # many different images, not one per method


def test_reload_serves_the_same_pair_until_voted(sweep):
    app, _ = make_app(sweep)
    client = participant(app)
    first = client.get("/api/next").get_json()
    assert client.get("/api/next").get_json() == first
    client.post("/api/vote", json={"token": first["token"], "choice": "right"})
    assert client.get("/api/next").get_json()["token"] != first["token"]


def test_vote_is_recorded_with_its_pair(sweep):
    app, _ = make_app(sweep)
    client = participant(app)
    pair = client.get("/api/next").get_json()
    right = shown(client, pair["right"])
    client.post("/api/vote", json={"token": pair["token"], "choice": "right"})
    pid = client.get_cookie(COOKIE).value
    (row,) = rows(sweep[2], "SELECT participant, pair, position, left_method, right_method, choice, chosen, voted_at "
                            "FROM votes_view")
    assert row[:3] == (pid, pair["token"], 1) and row[4] == right and row[5:7] == ("right", right)
    assert row[7].endswith("+00:00")


def test_unknown_foreign_and_malformed_votes_are_refused(sweep):
    app, _ = make_app(sweep)
    alice, bob = participant(app), participant(app)
    token = alice.get("/api/next").get_json()["token"]
    bob.get("/api/next")
    assert bob.post("/api/vote", json={"token": token, "choice": "left"}).status_code == 404  # alice's pair
    assert alice.post("/api/vote", json={"token": "made-up", "choice": "left"}).status_code == 404
    assert alice.post("/api/vote", json={"token": token, "choice": "both"}).status_code == 400
    assert alice.post("/api/vote", json={"token": 3, "choice": "left"}).status_code == 400
    assert alice.post("/api/vote", data="token=x&choice=left").status_code == 400
    stranger = app.test_client()
    assert stranger.post("/api/vote", json={"token": token, "choice": "left"}).status_code == 403
    stranger.set_cookie(COOKIE, "forged-id")
    assert stranger.post("/api/vote", json={"token": token, "choice": "left"}).status_code == 403
    assert stranger.get("/api/next").status_code == 403
    assert rows(sweep[2], "SELECT count(*) FROM votes") == [(0,)]
    assert alice.post("/api/vote", json={"token": token, "choice": "left"}).status_code == 200


def test_repeated_vote_replaces_the_first(sweep):
    app, _ = make_app(sweep)
    client = participant(app)
    pair = client.get("/api/next").get_json()
    client.post("/api/vote", json={"token": pair["token"], "choice": "left"})
    second = client.get("/api/next").get_json()
    answer = client.post("/api/vote", json={"token": pair["token"], "choice": "cant_tell"}).get_json()
    assert answer["answered"] == 1  # still one answered pair
    assert rows(sweep[2], "SELECT pair, choice FROM votes_view") == [(pair["token"], "cant_tell")]
    assert client.get("/api/next").get_json()["token"] == second["token"]


def test_cant_tell_is_counted_apart(sweep):
    app, _ = make_app(sweep, n_pairs=3)
    client = participant(app)
    for choice in ("left", "cant_tell", "right"):
        client.post("/api/vote", json={"token": client.get("/api/next").get_json()["token"], "choice": choice})
    res = survey_results(sweep[2], n_boot=100)
    assert (res.votes, res.cant_tell) == (3, 1)
    (group,) = res.groups
    assert sum(m.selection.n for m in group.methods) == 2 * 2  # two decided pairs, two methods in each
    assert sum(m.cant_tell for m in group.methods) == 2


def test_images_by_id_only(sweep):
    app, pool = make_app(sweep)
    client = app.test_client()
    assert client.get("/img/0").data == pool.png(0)
    assert client.get("/img/0").headers["Cache-Control"] == "no-store"
    for url in (f"/img/{len(pool)}", "/img/-1", "/img/0.5", "/img/..%2f..%2fetc%2fpasswd", "/img/../../etc/passwd",
                f"/img/{pool.ref(0).table}", "/static/../pool.py", "/static/..%2fpool.py", "/static/%2e%2e/app.py"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"import" not in response.data and b"PAR1" not in response.data


def test_real_photos_in_their_share_of_pairs(sweep):
    app, _ = make_app(sweep, n_pairs=8, real=True, real_share=0.25)
    client = participant(app)
    shows = []
    for _ in range(8):
        pair = client.get("/api/next").get_json()
        shows.append((shown(client, pair["left"]), shown(client, pair["right"])))
        client.post("/api/vote", json={"token": pair["token"], "choice": "left"})
    with_real = [s for s in shows if REAL in s]
    assert len(with_real) == 2 and all(len(set(s) - {REAL}) == 1 for s in with_real)
    assert rows(sweep[2], "SELECT count(*) FROM pairs WHERE 'real' IN (left_method, right_method)") == [(2,)]


def test_restart_keeps_votes_and_position(sweep):
    app, _ = make_app(sweep, n_pairs=4)
    client = participant(app)
    for _ in range(2):
        client.post("/api/vote", json={"token": client.get("/api/next").get_json()["token"], "choice": "left"})
    pending = client.get("/api/next").get_json()

    restarted, _ = make_app(sweep, n_pairs=4, seed=5)
    again = restarted.test_client()
    again.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    assert again.get("/api/next").get_json() == pending  # same participant, same pending pair, position 3
    assert again.post("/api/vote", json={"token": pending["token"], "choice": "right"}).get_json()["answered"] == 3
    assert rows(sweep[2], "SELECT choice FROM votes_view ORDER BY position") == [("left",), ("left",), ("right",)]


def test_restart_with_other_methods_replaces_a_pending_pair_it_cannot_show(sweep):
    records, _, db = sweep
    app = create_app(pool_from_records(records, FLAT, methods=["A", "B"]), db, n_pairs=4, seed=0)
    client = participant(app)
    stale = client.get("/api/next").get_json()
    restarted = create_app(pool_from_records(records, FLAT, methods=["C", "B"]), db, n_pairs=4, seed=0)
    again = restarted.test_client()
    again.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    fresh = again.get("/api/next").get_json()
    assert fresh["token"] != stale["token"] and fresh["position"] == 1
    assert {shown(again, fresh["left"]), shown(again, fresh["right"])} == {"B", "C"}


def test_bad_settings(sweep):
    with pytest.raises(ValueError, match="at least one pair"):
        make_app(sweep, n_pairs=0)
    for real in (True, False):
        with pytest.raises(ValueError, match=r"in \[0, 1\)"):
            make_app(sweep, real=real, real_share=1.0)


def test_a_port_in_use_is_a_user_error(sweep):
    import socket

    from sweep.survey import serve

    app, _ = make_app(sweep)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ValueError, match=rf"cannot listen on 127.0.0.1:{taken.getsockname()[1]} .*choose another"):
            serve(app, "127.0.0.1", taken.getsockname()[1])
