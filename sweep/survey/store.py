"""The survey's votes in SQLite (`<sweep>/survey/votes.db`): participants, the pairs served to them, their votes.

Every pair the server shows is stored before it is shown, under a random token; a vote names that token and counts
only when the participant who sends it is the one the pair was served to. A second vote for the same pair replaces
the first. Every write is its own committed transaction, the schema is only ever created, never altered or
dropped, so no error or restart loses a recorded vote. The `votes_view` view puts each vote next to its pair.

Every pair records its comparison group (`comparison`, a JSON object of the study's grouping fields, `{}` for a
study without any): the statistics are per group. Version 1 databases (before groups) had no such column; they are
refused rather than guessed at.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sweep.survey.pool import Group

SCHEMA_VERSION = 2
CHOICES = ("left", "right", "cant_tell")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS participants (
    id          TEXT PRIMARY KEY,      -- random id, also the participant's cookie
    created_at  TEXT NOT NULL          -- ISO 8601, UTC
);
CREATE TABLE IF NOT EXISTS pairs (
    token        TEXT PRIMARY KEY,     -- random; the page sends it back with the vote
    participant  TEXT NOT NULL REFERENCES participants(id),
    position     INTEGER NOT NULL,     -- 1-based slot of the participant's survey it was served for
    comparison   TEXT NOT NULL,        -- comparison group: JSON object of the design's grouping fields
    left_method  TEXT NOT NULL,        -- arm label, or 'real' for a held-out photo
    left_table   TEXT NOT NULL,        -- image table path and row of the left image
    left_row     INTEGER NOT NULL,
    right_method TEXT NOT NULL,
    right_table  TEXT NOT NULL,
    right_row    INTEGER NOT NULL,
    served_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pairs_by_participant ON pairs(participant);
CREATE TABLE IF NOT EXISTS votes (
    token     TEXT PRIMARY KEY REFERENCES pairs(token),  -- one vote per pair: a repeated vote replaces it
    choice    TEXT NOT NULL CHECK (choice IN {CHOICES!r}),
    voted_at  TEXT NOT NULL
);
CREATE VIEW IF NOT EXISTS votes_view AS
SELECT p.participant, p.token AS pair, p.position, p.comparison, p.left_method, p.right_method, v.choice,
       CASE v.choice WHEN 'left' THEN p.left_method WHEN 'right' THEN p.right_method END AS chosen,
       v.voted_at
FROM votes v JOIN pairs p USING (token);
"""


@dataclass(frozen=True)
class Side:
    """One image of a served pair."""

    method: str  # arm label or REAL
    table: str  # image table path
    row: int  # row of the image in it


@dataclass(frozen=True)
class ServedPair:
    """A pair as it was served (and stored)."""

    token: str  # random; the vote must send it back
    position: int  # 1-based slot in the participant's survey
    group: Group  # the comparison group both methods belong to
    left: Side
    right: Side


@dataclass(frozen=True)
class Vote:
    """One recorded vote, as the statistics read it."""

    participant: str  # the participant's random id
    left: str  # method shown left
    right: str  # method shown right
    choice: str  # one of CHOICES
    group: Group = ()  # the comparison group of the pair; () for a study without grouping fields
    left_table: str = ""  # the image table the left image came from: one trial, one generator ("" when unknown)
    right_table: str = ""


def group_json(group: Group) -> str:
    """How a comparison group is stored: (('time_budget', 0.0),) -> '{"time_budget": 0.0}'."""
    return json.dumps(dict(group))


def group_from_json(text: str) -> Group:
    """The comparison group stored as `text` (field order kept)."""
    return tuple(json.loads(text).items())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class VoteStore:
    """The votes database of one survey; creates it (and its folder) when missing. Safe to use from many threads:
    every call opens its own connection."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if tables and version != SCHEMA_VERSION:
                raise ValueError(_version_error(self.path, version))
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    @contextlib.contextmanager
    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit; transactions explicit
        try:
            db.execute("PRAGMA foreign_keys = ON")
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self):
        """One write transaction, taken before reading, so concurrent requests of one participant serialise."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def new_participant(self) -> str:
        pid = secrets.token_urlsafe(16)
        with self._transaction() as db:
            db.execute("INSERT INTO participants (id, created_at) VALUES (?, ?)", (pid, _now()))
        return pid

    def known(self, participant: str | None) -> bool:
        if not participant:
            return False
        with self._connect() as db:
            return db.execute("SELECT 1 FROM participants WHERE id = ?", (participant,)).fetchone() is not None

    def answered(self, participant: str) -> int:
        """How many pairs the participant has voted on."""
        with self._connect() as db:
            return _answered(db, participant)

    def serve(self, participant: str, n_pairs: int, still_valid, make_pair) -> ServedPair | None:
        """The participant's current pair, or None once `n_pairs` are answered.

        The pair last served and not yet voted on is served again (a reload shows the same pair) while
        `still_valid(pair)` holds; otherwise `make_pair(position)` -> (group, left Side, right Side) makes a new one,
        which is stored before it is returned.
        """
        with self._transaction() as db:
            answered = _answered(db, participant)
            if answered >= n_pairs:
                return None
            row = db.execute(
                "SELECT token, position, comparison, left_method, left_table, left_row, right_method, right_table, "
                "right_row FROM pairs WHERE participant = ? AND token NOT IN (SELECT token FROM votes) "
                "ORDER BY rowid DESC LIMIT 1", (participant,)).fetchone()
            if row is not None:
                pending = ServedPair(row[0], row[1], group_from_json(row[2]), Side(*row[3:6]), Side(*row[6:9]))
                if still_valid(pending):
                    return pending
            group, left, right = make_pair(answered + 1)
            pair = ServedPair(secrets.token_urlsafe(16), answered + 1, group, left, right)
            db.execute("INSERT INTO pairs (token, participant, position, comparison, left_method, left_table, "
                       "left_row, right_method, right_table, right_row, served_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pair.token, participant, pair.position, group_json(group), left.method, left.table,
                        left.row, right.method, right.table, right.row, _now()))
            return pair

    def vote(self, participant: str, token: str, choice: str) -> bool:
        """Record (or replace) the participant's vote on a pair served to them; False when no such pair is theirs."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
        with self._transaction() as db:
            mine = db.execute("SELECT 1 FROM pairs WHERE token = ? AND participant = ?", (token, participant))
            if mine.fetchone() is None:
                return False
            db.execute("INSERT INTO votes (token, choice, voted_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (token) DO UPDATE SET choice = excluded.choice, voted_at = excluded.voted_at",
                       (token, choice, _now()))
            return True


def _answered(db, participant: str) -> int:
    return db.execute("SELECT count(*) FROM votes JOIN pairs USING (token) WHERE participant = ?",
                      (participant,)).fetchone()[0]


def read_votes(path) -> list[Vote]:
    """Every recorded vote of a survey database, read-only (the file is neither created nor changed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no survey votes at {path}: run `gansweep survey` on the sweep first")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise ValueError(_version_error(path, version))
        rows = db.execute("SELECT p.participant, p.left_method, p.right_method, v.choice, p.comparison, "
                          "p.left_table, p.right_table FROM votes v JOIN pairs p USING (token) "
                          "ORDER BY v.voted_at").fetchall()
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{path} is not a gansweep survey database ({e})") from e
    finally:
        db.close()
    return [Vote(*row[:4], group=group_from_json(row[4]), left_table=row[5], right_table=row[6]) for row in rows]


def _version_error(path, version: int) -> str:
    return (f"{path} is not a gansweep survey database of version {SCHEMA_VERSION} (it says {version}"
            f"{'; version 1 kept no comparison groups' if version == 1 else ''}): move it away or point the "
            "survey at another sweep")
