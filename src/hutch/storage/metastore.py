"""The bookkeeping every snapshotter shares: key -> id, kind, parent chain, labels.

One SQLite file per snapshotter root (WAL, busy timeout). A driver wraps each
operation in ``transaction()``: it records the change, does its file system
work, and the record is committed only when that work succeeded (a failure
rolls it back). Ids are never reused, so a directory named after an id always
belongs to one snapshot. Stdlib only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from hutch.common.sqlite import use_wal
from hutch.errors import AlreadyExists, InvalidArgument, NotFound, WrongState
from hutch.storage.snapshotter import Info, Kind, Usage

BUSY_TIMEOUT_MS = 30_000
MAX_KEY = 1024

_SCHEMA = [
    """
    CREATE TABLE snapshots (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        key      TEXT NOT NULL UNIQUE,
        kind     TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
        parent   INTEGER REFERENCES snapshots(id),
        created  REAL NOT NULL,
        updated  REAL NOT NULL,
        labels   TEXT NOT NULL DEFAULT '{}',
        size     INTEGER NOT NULL DEFAULT 0,
        inodes   INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX snapshots_parent ON snapshots(parent);
    """,
]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot's record: its id, kind, and the ids of its parents (nearest first)."""

    id: int
    kind: Kind
    parent_ids: tuple[int, ...]
    info: Info
    usage: Usage


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    use_wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def validate_key(key: str, what: str = "snapshot key") -> str:
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"a {what} must be a non-empty string")
    if len(key) > MAX_KEY or "\0" in key:
        raise InvalidArgument(f"{what} {key[:40]!r}... is too long or holds a NUL")
    return key


class MetaStore:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._lock = threading.RLock()
        self._conn = _connect(self.path)
        self._depth = 0
        with self.transaction():
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(_SCHEMA):
                raise InvalidArgument(f"snapshot database {self.path} has schema version "
                                      f"{version}, newer than this hutch knows: upgrade hutch")
            for i in range(version, len(_SCHEMA)):
                for statement in _SCHEMA[i].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version = {len(_SCHEMA)}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE: other processes wait). Nests."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    # --- reading (inside or outside a transaction) ---------------------------------------

    def _row(self, key: str) -> tuple[int, str, int | None, float, float, str, int, int] | None:
        row: tuple[int, str, int | None, float, float, str, int, int] | None = \
            self._conn.execute(
                "SELECT id, kind, parent, created, updated, labels, size, inodes FROM snapshots "
                "WHERE key = ?", (key,)).fetchone()
        return row

    def _key_of(self, sid: int) -> str:
        key: str = self._conn.execute("SELECT key FROM snapshots WHERE id = ?",
                                      (sid,)).fetchone()[0]
        return key

    def _parents(self, parent: int | None) -> tuple[int, ...]:
        chain: list[int] = []
        while parent is not None:
            chain.append(parent)
            parent = self._conn.execute("SELECT parent FROM snapshots WHERE id = ?",
                                        (parent,)).fetchone()[0]
        return tuple(chain)

    def get(self, key: str) -> Snapshot:
        with self._lock:
            row = self._row(key)
            if row is None:
                raise NotFound(f"no snapshot {key!r}")
            sid, kind, parent, created, updated, labels, size, inodes = row
            parents = self._parents(parent)
            parent_key = self._key_of(parent) if parent is not None else None
        info = Info(Kind(kind), key, parent_key, json.loads(labels), created, updated)
        return Snapshot(sid, Kind(kind), parents, info, Usage(size, inodes))

    def walk(self, kinds: Sequence[Kind] | None = None) -> list[Info]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.key, s.kind, p.key, s.labels, s.created, s.updated FROM snapshots s "
                "LEFT JOIN snapshots p ON p.id = s.parent ORDER BY s.id").fetchall()
        infos = [Info(Kind(kind), key, parent, json.loads(labels), created, updated)
                 for key, kind, parent, labels, created, updated in rows]
        return [i for i in infos if kinds is None or i.kind in kinds]

    def ids(self) -> set[int]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT id FROM snapshots")}

    def children(self, key: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute(
                "SELECT c.key FROM snapshots c JOIN snapshots p ON c.parent = p.id "
                "WHERE p.key = ? ORDER BY c.id", (key,))]

    # --- changes (call inside transaction()) --------------------------------------------

    def create(self, kind: Kind, key: str, parent: str | None,
               labels: dict[str, str] | None) -> Snapshot:
        validate_key(key)
        if kind is Kind.COMMITTED:
            raise InvalidArgument("snapshots are created active or view, then committed")
        with self._lock:
            if self._row(key) is not None:
                raise AlreadyExists(f"snapshot {key!r} exists already")
            parent_id = None
            if parent is not None:
                prow = self._row(parent)
                if prow is None:
                    raise NotFound(f"parent snapshot {parent!r} of {key!r} does not exist")
                if prow[1] != Kind.COMMITTED.value:
                    raise WrongState(f"parent snapshot {parent!r} is {prow[1]}: only a "
                                     "committed snapshot can be a parent (commit it first)")
                parent_id = prow[0]
            now = time.time()
            self._conn.execute(
                "INSERT INTO snapshots (key, kind, parent, created, updated, labels) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, kind.value, parent_id, now, now, json.dumps(labels or {})))
        return self.get(key)

    def commit(self, name: str, key: str, usage: Usage,
               labels: dict[str, str] | None) -> Snapshot:
        validate_key(name, "snapshot name")
        with self._lock:
            row = self._row(key)
            if row is None:
                raise NotFound(f"no snapshot {key!r} to commit")
            if row[1] != Kind.ACTIVE.value:
                raise WrongState(f"snapshot {key!r} is {row[1]}: only an active snapshot "
                                 "can be committed")
            if self._row(name) is not None:
                raise AlreadyExists(f"snapshot {name!r} exists already")
            new_labels = labels if labels is not None else json.loads(row[5])
            self._conn.execute(
                "UPDATE snapshots SET key = ?, kind = 'committed', updated = ?, labels = ?, "
                "size = ?, inodes = ? WHERE id = ?",
                (name, time.time(), json.dumps(new_labels), usage.size, usage.inodes, row[0]))
        return self.get(name)

    def update(self, key: str, labels: dict[str, str]) -> Snapshot:
        with self._lock:
            cur = self._conn.execute("UPDATE snapshots SET labels = ?, updated = ? WHERE key = ?",
                                     (json.dumps(labels), time.time(), key))
            if cur.rowcount == 0:
                raise NotFound(f"no snapshot {key!r}")
        return self.get(key)

    def remove(self, key: str) -> Snapshot:
        with self._lock:
            snap = self.get(key)
            kids = self.children(key)
            if kids:
                raise WrongState(f"snapshot {key!r} has {len(kids)} children "
                                 f"({', '.join(repr(k) for k in kids[:3])}"
                                 f"{', ...' if len(kids) > 3 else ''}): remove them first")
            self._conn.execute("DELETE FROM snapshots WHERE id = ?", (snap.id,))
        return snap
