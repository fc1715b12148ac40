"""SQLite connections as hutch's stores open them: WAL, a busy timeout, autocommit."""

from __future__ import annotations

import sqlite3
import time

_WAL_TRIES = 200


def use_wal(conn: sqlite3.Connection) -> str:
    """Switch the database to write-ahead logging; returns the journal mode in force.

    WAL is a property of the file, so a database that has it is left alone. Switching
    needs the database to itself for a moment, and SQLite answers "database is locked"
    at once (not after its busy timeout) when another process creating the same new
    database holds it: so this asks again for a while (many `hutch run` at once).
    """
    mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    for attempt in range(_WAL_TRIES):
        if mode == "wal":
            return mode
        try:
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            return mode
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == _WAL_TRIES - 1:
                raise
            time.sleep(0.01)
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    return mode
