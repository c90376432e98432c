"""The local backend's registry: one SQLite table of JSON documents, safe across processes.

Training and Glue runs are written by their own worker processes while the
server reads them, so every write is a short ``BEGIN IMMEDIATE`` transaction
(WAL mode lets readers go on meanwhile). Status changes are compare-and-set:
the expected state is checked and the new one written in that one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (kind, name)
)
"""


class AlreadyExists(Exception):
    pass


class NotFound(Exception):
    pass


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def create(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        with self._write() as db:
            if db.execute("SELECT 1 FROM resources WHERE kind=? AND name=?", (kind, name)).fetchone():
                raise AlreadyExists(f"{kind} {name!r} already exists")
            db.execute(
                "INSERT INTO resources (kind, name, body, created, updated) VALUES (?, ?, ?, ?, ?)",
                (kind, name, json.dumps(body), now, now),
            )
        return body

    def get(self, kind: str, name: str) -> dict[str, Any]:
        with self._connect() as db:
            row = db.execute("SELECT body FROM resources WHERE kind=? AND name=?", (kind, name)).fetchone()
        if row is None:
            raise NotFound(f"{kind} {name!r} not found")
        return json.loads(row[0])

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return self.get(kind, name)
        except NotFound:
            return None

    def compare_and_set(
        self,
        kind: str,
        name: str,
        expect: Callable[[dict[str, Any]], bool],
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """Apply ``change`` only if ``expect(body)`` holds, in one transaction; None if it does not (or no record).

        Every status transition goes through here, so two writers can never both win and a
        terminal state, once written, is never overwritten by a late or stale writer.
        """
        with self._write() as db:
            row = db.execute("SELECT body FROM resources WHERE kind=? AND name=?", (kind, name)).fetchone()
            if row is None:
                return None
            body = json.loads(row[0])
            if not expect(body):
                return None
            body = change(body) or body
            db.execute(
                "UPDATE resources SET body=?, updated=? WHERE kind=? AND name=?",
                (json.dumps(body), time.time(), kind, name),
            )
        return body

    def delete(self, kind: str, name: str) -> bool:
        """Remove the record; True if there was one."""
        with self._write() as db:
            return db.execute("DELETE FROM resources WHERE kind=? AND name=?", (kind, name)).rowcount > 0

    def list(self, kind: str) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT body FROM resources WHERE kind=? ORDER BY created", (kind,)).fetchall()
        return [json.loads(r[0]) for r in rows]
