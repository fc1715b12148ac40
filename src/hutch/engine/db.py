"""The engine's records in SQLite (WAL): many hutch commands at once lose nothing."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from hutch.common.sqlite import use_wal
from hutch.errors import AlreadyExists, NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    created REAL NOT NULL,
    config TEXT NOT NULL,          -- the options it was made with (JSON)
    snapshot TEXT NOT NULL,        -- the snapshot key of its root file system
    state TEXT NOT NULL DEFAULT 'created'  -- what the engine last did; status is derived
);
-- The id ranges handed to containers' user namespaces (LXD's isolated idmaps): a
-- slot is never given to two containers.
CREATE TABLE IF NOT EXISTS idmaps (
    slot INTEGER PRIMARY KEY,
    container TEXT NOT NULL UNIQUE
);
"""

IDMAP_BASE = 1_000_000  # first host id handed out
IDMAP_SIZE = 65536      # ids per container


class Database:
    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout=30000")
        use_wal(self.conn)
        self.conn.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def add_container(self, cid: str, name: str, image: str, config: dict,
                      snapshot: str) -> None:
        try:
            with self.transaction() as c:
                c.execute("INSERT INTO containers (id, name, image, created, config, snapshot)"
                          " VALUES (?, ?, ?, ?, ?, ?)",
                          (cid, name, image, time.time(), json.dumps(config), snapshot))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"the container name {name!r} is already in use; remove that "
                                "container or choose another --name") from None

    def set_state(self, cid: str, state: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE containers SET state = ? WHERE id = ?", (state, cid))

    def update_config(self, cid: str, changes: dict) -> None:
        """Merge ``changes`` into a container's options (read and written in one go)."""
        with self.transaction() as c:
            row = c.execute("SELECT config FROM containers WHERE id = ?", (cid,)).fetchone()
            if row is None:
                raise NotFound(f"no such container: {cid}")
            c.execute("UPDATE containers SET config = ? WHERE id = ?",
                      (json.dumps({**json.loads(row[0]), **changes}), cid))

    def remove_container(self, cid: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def find(self, ref: str) -> sqlite3.Row:
        """A container by name, full id, or unique id prefix."""
        rows = self.conn.execute(
            "SELECT * FROM containers WHERE name = ? OR id = ? OR id LIKE ?",
            (ref, ref, ref.replace("%", "") + "%")).fetchall()
        exact = [r for r in rows if ref in (r["name"], r["id"])]
        if exact:
            return exact[0]
        if len(rows) == 1 and len(ref) >= 3:
            return rows[0]
        if len(rows) > 1:
            raise NotFound(f"{ref!r} matches several containers; give more of the id")
        raise NotFound(f"no such container: {ref}")

    def all(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM containers ORDER BY created").fetchall()

    def allocate_idmap(self, cid: str) -> int:
        """The first host id of a free range for ``cid`` (the lowest free slot)."""
        with self.transaction() as c:
            used = {r[0] for r in c.execute("SELECT slot FROM idmaps")}
            slot = next(i for i in range(len(used) + 1) if i not in used)
            c.execute("INSERT INTO idmaps (slot, container) VALUES (?, ?)", (slot, cid))
        return IDMAP_BASE + slot * IDMAP_SIZE

    def idmap_of(self, cid: str) -> int | None:
        row = self.conn.execute("SELECT slot FROM idmaps WHERE container = ?", (cid,)).fetchone()
        return None if row is None else IDMAP_BASE + row[0] * IDMAP_SIZE

    def release_idmap(self, cid: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM idmaps WHERE container = ?", (cid,))

    def close(self) -> None:
        self.conn.close()
