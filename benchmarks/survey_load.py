"""A busy survey: N participants at once (threads, each with its own cookie) answer the survey of a small fake sweep
served by the real survey server (`sweep.survey.create_app` on werkzeug's threaded server, in a process of its own,
on loopback), then the votes database is checked against what the server acknowledged.

    python benchmarks/survey_load.py [--participants 50] [--pairs 10] [--max-seconds 120] [--kill-after VOTES]

Each participant opens the page, then per pair asks for it (`GET /api/next`) and votes (`POST /api/vote`); once it
also replays one of its votes with a token it was never served and one with another participant's token (both must
be refused, 404). Bounded: `--pairs` votes per participant, `--max-seconds` in all. Checked afterwards, from
`votes.db` alone: every acknowledged vote is there with its choice, nothing else is, and `PRAGMA integrity_check` says
ok. `--kill-after V` SIGKILLs the server once V votes were acknowledged (the participants then stop at their next
request): every vote acknowledged before the kill must still be in the database. Printed: the latency table (p50,
p99, max per request kind) and the counts.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(folder: Path, port: int, pairs: int) -> None:
    """The server process: a fake sweep of three methods (tests/test_survey_pool.py's), its survey on `port`."""
    from sweep.survey import create_app, pool_from_records
    from sweep.survey import serve as serve_app
    from tests.test_survey_pool import FLAT, fake_sweep

    records, _ = fake_sweep(folder, methods=("A", "B", "C"))
    app = create_app(pool_from_records(records, FLAT), folder / "votes.db", n_pairs=pairs, seed=0)
    serve_app(app, "127.0.0.1", port)


class Participant:
    """One person's browser: a cookie jar, the tokens served to it, the votes the server acknowledged."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.served: list[str] = []
        self.acked: dict[str, str] = {}  # token -> choice
        self.refused_bad = 0  # foreign or unknown tokens refused with 404

    def call(self, path: str, body: dict | None, times: dict) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}{path}", data=data,
                                     headers={"Content-Type": "application/json"} if data else {})
        start = time.perf_counter()
        try:
            with self.opener.open(req, timeout=30) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        times.setdefault(path.split("?")[0], []).append(time.perf_counter() - start)
        return status, (json.loads(text) if text[:1] in (b"{", b"[") else {})


def _run_participant(p: Participant, index: int, pairs: int, deadline: float, others: list, times: dict,
                     lock: threading.Lock, acked_total: list, stop: threading.Event) -> None:
    choices = ("left", "right", "cant_tell")
    try:
        p.call("/", None, times)
        for i in range(pairs):
            if stop.is_set() or time.time() > deadline:
                return
            status, pair = p.call("/api/next", None, times)
            assert status == 200 and not pair["done"], (status, pair)
            p.served.append(pair["token"])
            choice = choices[(index + i) % 3]
            status, answer = p.call("/api/vote", {"token": pair["token"], "choice": choice}, times)
            if status == 200:
                p.acked[pair["token"]] = choice
                with lock:
                    acked_total[0] += 1
            if i == 0:  # votes that must be refused: a token never served, another participant's
                foreign = next((o.served[0] for o in others if o is not p and o.served), None)
                for token in ("never-served", foreign):
                    if token and p.call("/api/vote", {"token": token, "choice": "left"}, times)[0] == 404:
                        p.refused_bad += 1
                    elif token:
                        raise AssertionError(f"a vote with token {token!r} was accepted")
    except (OSError, urllib.error.URLError):
        if not stop.is_set():
            raise


def check_database(db: Path, participants: list[Participant], killed: bool) -> dict:
    """What votes.db holds against what was acknowledged: {'stored', 'lost', 'unacked_stored', 'integrity'}."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        stored = {t: (pid, c) for t, pid, c in con.execute(
            "SELECT v.token, p.participant, v.choice FROM votes v JOIN pairs p USING (token)")}
    finally:
        con.close()
    acked = {t: c for p in participants for t, c in p.acked.items()}
    lost = [t for t, c in acked.items() if stored.get(t, (None, None))[1] != c]
    extra = [t for t in stored if t not in acked]  # a vote whose answer never arrived (only when killed)
    cookie = {id(p): next((c.value for c in p.jar if c.name == "gansweep_survey"), None) for p in participants}
    owners = {t: cookie[id(p)] for p in participants for t in p.served}
    return {"stored": len(stored), "acked": len(acked), "lost": len(lost), "unacked_stored": len(extra),
            "integrity": integrity, "wrong_participant": sum(owners.get(t) not in (None, pid)
                                                             for t, (pid, _) in stored.items()),
            "unserved": sum(t not in owners for t in stored), "killed": killed}


def load(participants: int = 50, pairs: int = 10, max_seconds: float = 120.0, kill_after: int | None = None,
         folder: Path | None = None) -> dict:
    """Run the load once; returns the counts of `check_database`, the latencies (seconds per request kind) and the
    refusals of bad votes."""
    folder = Path(folder or tempfile.mkdtemp(prefix="gansweep_survey_load_"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(folder), "--port", str(port), "--pairs",
                               str(pairs)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the survey server did not start: {server.stderr.read()[-2000:]}")
                time.sleep(0.2)
        people = [Participant(base) for _ in range(participants)]
        times: dict = {}
        lock, acked_total, stop = threading.Lock(), [0], threading.Event()
        end = time.time() + max_seconds
        threads = [threading.Thread(target=_run_participant, args=(p, i, pairs, end, people, times, lock,
                                                                   acked_total, stop), daemon=True)
                   for i, p in enumerate(people)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        killed = False
        while any(t.is_alive() for t in threads):
            if kill_after is not None and not killed and acked_total[0] >= kill_after:
                stop.set()
                server.send_signal(signal.SIGKILL)
                server.wait()
                killed = True
            time.sleep(0.005)
        wall = time.perf_counter() - start
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
    result = check_database(folder / "votes.db", people, killed)
    result.update(times=times, wall=wall, participants=participants, pairs=pairs,
                  refused_bad=sum(p.refused_bad for p in people))
    return result


def table(result: dict) -> str:
    """The latency table (milliseconds) in Markdown."""
    import numpy as np

    lines = ["| request | count | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for kind, ts in sorted(result["times"].items()):
        ms = np.asarray(ts) * 1000
        lines.append(f"| {kind} | {len(ms)} | {np.percentile(ms, 50):.1f} | {np.percentile(ms, 99):.1f} | "
                     f"{ms.max():.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=50)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--kill-after", type=int, default=None)
    ap.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(Path(args.serve), args.port, args.pairs)
    r = load(args.participants, args.pairs, args.max_seconds, args.kill_after)
    print(f"{r['participants']} participants x {r['pairs']} pairs in {r['wall']:.1f} s"
          f"{' (server SIGKILLed mid-load)' if r['killed'] else ''}: {r['acked']} votes acknowledged, "
          f"{r['stored']} stored, {r['lost']} lost, {r['unserved']} for unserved pairs, "
          f"{r['refused_bad']} foreign/unknown votes refused; integrity_check: {r['integrity']}")
    print(table(r))


if __name__ == "__main__":
    main()
