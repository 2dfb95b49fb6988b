"""The survey's web server (Flask): one page, a JSON API behind it, and the images, by id only.

    GET  /              the page (static/index.html); gives a new participant a random id in a cookie
    GET  /api/next      the participant's current pair {token, position, total, left, right} or {done: true}
    POST /api/vote      {token, choice: left | right | cant_tell} for a pair served to this participant
    GET  /img/<int:id>  the stored PNG bytes of one image of the pool; any other id or path is a 404

A pair is stored (with its comparison group) before it is shown and a vote must name its token from the same
participant's cookie, so a vote for an unknown pair or another participant's pair is refused (404) and changes
nothing. The page never says which method or group an image comes from.
"""

from __future__ import annotations

import random
import socket

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server, select_address_family

from sweep.survey.design import real_slots, schedule
from sweep.survey.pool import Group, ImageRef, Pool
from sweep.survey.store import CHOICES, ServedPair, Side, VoteStore

COOKIE = "gansweep_survey"
COOKIE_MAX_AGE = 365 * 24 * 3600

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def create_app(pool: Pool, db_path, *, n_pairs: int = 40, real_share: float = 0.25, seed: int | None = None) -> Flask:
    """The survey app over `pool`, recording into the SQLite file `db_path` (created when missing).

    Each participant answers `n_pairs` pairs, each within one of the pool's comparison groups (balanced across
    them); when the pool has real photos, `real_share` of them put a method's sample next to a real photo. `seed`
    fixes the image and side draws (tests); None draws from the OS.
    """
    if n_pairs < 1:
        raise ValueError(f"a survey needs at least one pair per participant, got {n_pairs}")
    n_real = real_slots(n_pairs, real_share)  # validates real_share even when the pool has no real photos
    if not pool.has_real:
        n_real = 0
    store = VoteStore(db_path)
    rng = random.Random(seed)
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = 4096  # a vote is a few dozen bytes

    def make_pair(participant: str, position: int) -> tuple[Group, Side, Side]:
        group, *sides = schedule(pool.comparisons, n_pairs, n_real, participant)[position - 1]
        rng.shuffle(sides)
        left, right = (_side(pool, label, pool.draw(group, label, rng)) for label in sides)
        return group, left, right

    def still_valid(pair: ServedPair) -> bool:  # a restart with other methods, groups or tables may drop it
        return pair.group in pool.comparisons and all(
            pool.holds(pair.group, side.method, ImageRef(side.table, side.row)) for side in (pair.left, pair.right))

    def participant() -> str | None:
        pid = request.cookies.get(COOKIE)
        return pid if store.known(pid) else None

    def with_participant(response: Response) -> Response:
        if participant() is None:
            response.set_cookie(COOKIE, store.new_participant(), max_age=COOKIE_MAX_AGE, httponly=True,
                                samesite="Strict")
        return response

    @app.get("/")
    def index():
        return with_participant(app.send_static_file("index.html"))

    @app.get("/api/next")
    def next_pair():
        pid = participant()
        if pid is None:
            return _error(403, "no survey cookie: open the survey page first")
        pair = store.serve(pid, n_pairs, still_valid, lambda position: make_pair(pid, position))
        if pair is None:
            return jsonify(done=True, answered=store.answered(pid), total=n_pairs)
        return jsonify(done=False, token=pair.token, position=pair.position, total=n_pairs,
                       left=f"img/{_id(pool, pair.left)}", right=f"img/{_id(pool, pair.right)}")

    @app.post("/api/vote")
    def vote():
        pid = participant()
        if pid is None:
            return _error(403, "no survey cookie: open the survey page first")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("token"), str) or body.get("choice") not in CHOICES:
            return _error(400, f"send JSON {{token, choice}} with choice one of {', '.join(CHOICES)}")
        if not store.vote(pid, body["token"], body["choice"]):
            return _error(404, "no such pair was served to you")
        answered = store.answered(pid)
        return jsonify(answered=answered, total=n_pairs, done=answered >= n_pairs)

    @app.get("/img/<int:image_id>")
    def image(image_id: int):
        if pool.ref(image_id) is None:
            return _error(404, "no such image")
        return Response(pool.png(image_id), mimetype="image/png", headers={"Cache-Control": "no-store"})

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    return app


def _side(pool: Pool, label: str, image_id: int) -> Side:
    ref = pool.ref(image_id)
    return Side(label, ref.table, ref.row)


def _id(pool: Pool, side: Side) -> int | None:
    return pool.id_of(ImageRef(side.table, side.row))


def _error(status: int, message: str):
    return jsonify(error=message), status


def serve(app: Flask, host: str = "127.0.0.1", port: int = 5050) -> None:
    """Serve the app with werkzeug's threaded server until Ctrl-C. An address that cannot be bound is a ValueError
    (bound here: werkzeug itself would print and exit)."""
    try:
        listener = socket.create_server((host, port), family=select_address_family(host, port))
    except OSError as e:
        raise ValueError(f"cannot listen on {host}:{port} ({e.strerror or e}): choose another --port or --host") from e
    with listener:
        server = make_server(host, port, app, threaded=True, fd=listener.fileno())  # serves a duplicate of it
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
