"""The network state database: one SQLite file in WAL mode, shared by processes.

Writers take the database's write lock up front (``BEGIN IMMEDIATE``), so two
hutch commands that allocate at once are serialised by SQLite, not by luck; a
reader never waits for a writer (WAL). ``busy_timeout`` makes a waiting writer
retry for up to ``BUSY_TIMEOUT_MS`` before it reports the database as busy.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from hutch.common.sqlite import use_wal
from hutch.errors import Conflict, SystemFailure

BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS ipam_pools (
    network TEXT PRIMARY KEY,
    subnet  TEXT NOT NULL UNIQUE,
    gateway INTEGER NOT NULL,
    hint    INTEGER NOT NULL          -- where the search for a free address starts
);
CREATE TABLE IF NOT EXISTS ipam_leases (
    network TEXT NOT NULL REFERENCES ipam_pools(network) ON DELETE CASCADE,
    address INTEGER NOT NULL,
    owner   TEXT NOT NULL,
    PRIMARY KEY (network, address),
    UNIQUE (network, owner)
);
CREATE TABLE IF NOT EXISTS networks (
    name     TEXT PRIMARY KEY,
    id       TEXT NOT NULL UNIQUE,
    bridge   TEXT NOT NULL UNIQUE,
    internal INTEGER NOT NULL,
    mtu      INTEGER,
    created  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    network   TEXT NOT NULL REFERENCES networks(name),
    owner     TEXT NOT NULL,
    host_if   TEXT NOT NULL UNIQUE,
    ifname    TEXT NOT NULL,
    netns     TEXT NOT NULL,
    address   TEXT NOT NULL,
    mac       TEXT NOT NULL,
    ports     TEXT NOT NULL,          -- JSON list of resolved PortMapping.to_json()
    egress    INTEGER,                -- bit/s, NULL: unlimited
    ingress   INTEGER,
    PRIMARY KEY (network, owner)
);
"""


def connect(path: str) -> sqlite3.Connection:
    """Open (creating) the database at ``path`` with the schema in place."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        with write(conn, path):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
    except sqlite3.Error as e:
        raise SystemFailure(errno.EIO, f"open network database {path}: {e}") from None
    return conn


@contextmanager
def write(conn: sqlite3.Connection, what: str = "the network database") -> Iterator[None]:
    """One write transaction holding the database's write lock from its start."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        raise Conflict(f"{what} is busy: {e}; try again") from None
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
