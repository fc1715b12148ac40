"""Image names and leases in SQLite: what the content store's blobs are for.

An image is a name (``docker.io/library/debian:12``, ``busybox:latest``) that
points at a descriptor (a manifest or an index) in the content store, with
labels and times. A lease holds blobs that nothing names yet (a pull or an
import in progress), so that garbage collection leaves them alone until the
name is written.

The database is in WAL mode with a busy timeout, and every change runs in one
``BEGIN IMMEDIATE`` transaction, so several hutch processes (the CLI, hutchd)
may use it at once. A change to the names is durable when it returns
(synchronous=FULL: the WAL is fsynced at its commit); leases, which only
matter while their holder runs, are written with synchronous=NORMAL (no fsync
of their own: a power cut may forget the last of them, never corrupts), so a
pull pays for one fsync of the database, the name's. Stdlib only.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Self

from hutch.common.digest import Digest
from hutch.common.sqlite import use_wal
from hutch.errors import AlreadyExists, InvalidArgument, NotFound
from hutch.oci.image_spec import Descriptor, parse_descriptor

BUSY_TIMEOUT_MS = 30_000
MAX_NAME = 512

_List = list  # MetadataStore.list shadows the builtin in the class body

_SCHEMA = [
    # version 1
    """
    CREATE TABLE images (
        name        TEXT PRIMARY KEY,
        target      TEXT NOT NULL,     -- the descriptor, JSON
        digest      TEXT NOT NULL,     -- target's digest, for lookups
        created     REAL NOT NULL,
        updated     REAL NOT NULL,
        labels      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX images_digest ON images(digest);
    CREATE TABLE leases (
        id          TEXT PRIMARY KEY,
        created     REAL NOT NULL,
        expires     REAL               -- NULL: until deleted
    );
    CREATE TABLE lease_resources (
        lease       TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        digest      TEXT NOT NULL,
        PRIMARY KEY (lease, digest)
    );
    """,
]


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, busy timeout."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = use_wal(conn)
    if mode != "wal":  # pragma: no cover (a file system without shared memory)
        conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection, schema: list[str], what: str) -> None:
    """Bring the database to ``len(schema)`` (PRAGMA user_version), in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(schema):
            raise InvalidArgument(f"the {what} database has schema version {version}, newer "
                                  f"than this hutch knows ({len(schema)}): upgrade hutch")
        for i in range(version, len(schema)):
            for statement in schema[i].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(schema)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def validate_name(name: str) -> str:
    """An image name: 1 to 512 printable characters, no spaces."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument("an image name must be a non-empty string")
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"image name {name[:40]!r}... is longer than {MAX_NAME} characters")
    if any(c.isspace() or not c.isprintable() for c in name):
        raise InvalidArgument(f"image name {name!r} has spaces or control characters")
    return name


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    target: Descriptor
    created: float = 0.0
    updated: float = 0.0
    labels: dict[str, str] = field(default_factory=dict, compare=False)


class MetadataStore:
    """Names -> descriptors, and leases, in ``path`` (an SQLite file)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._lock = threading.RLock()
        self._conn = connect(self.path)
        # The schema needs no fsync of its own either: it is all there or not at all,
        # and the first durable commit's fsync of the WAL carries it.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        try:
            migrate(self._conn, _SCHEMA, "image metadata")
        finally:
            self._conn.execute("PRAGMA synchronous = FULL")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, write: bool, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; ``durable=False``: its commit is not fsynced (a later
        durable commit's fsync of the WAL covers it)."""
        with self._lock:
            if not durable:
                self._conn.execute("PRAGMA synchronous = NORMAL")
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            finally:
                if not durable:
                    self._conn.execute("PRAGMA synchronous = FULL")

    @staticmethod
    def _row(row: tuple[str, str, float, float, str]) -> Image:
        name, target, created, updated, labels = row
        return Image(name, parse_descriptor(target, f"image {name} target"), created, updated,
                     json.loads(labels))

    # --- images -------------------------------------------------------------------------

    def create(self, name: str, target: Descriptor, labels: dict[str, str] | None = None) -> Image:
        """A new name; AlreadyExists if it is taken."""
        validate_name(name)
        now = time.time()
        with self._tx(write=True) as db:
            if db.execute("SELECT 1 FROM images WHERE name = ?", (name,)).fetchone():
                raise AlreadyExists(f"image {name} exists already")
            db.execute("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?)",
                       (name, json.dumps(target.to_dict()), str(target.digest), now, now,
                        json.dumps(labels or {})))
        return Image(name, target, now, now, dict(labels or {}))

    def put(self, name: str, target: Descriptor, labels: dict[str, str] | None = None) -> Image:
        """Point ``name`` at ``target``, creating or moving it (what a pull does to a tag).
        Labels are replaced when given, kept otherwise."""
        validate_name(name)
        now = time.time()
        with self._tx(write=True) as db:
            row = db.execute("SELECT created, labels FROM images WHERE name = ?",
                             (name,)).fetchone()
            created = row[0] if row else now
            new_labels = labels if labels is not None else (json.loads(row[1]) if row else {})
            db.execute("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?)",
                       (name, json.dumps(target.to_dict()), str(target.digest), created, now,
                        json.dumps(new_labels)))
        return Image(name, target, created, now, dict(new_labels))

    def get(self, name: str) -> Image:
        with self._tx(write=False) as db:
            row = db.execute("SELECT name, target, created, updated, labels FROM images "
                             "WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no image named {name}")
        return self._row(row)

    def list(self, prefix: str | None = None) -> _List[Image]:
        """Every image, by name; with ``prefix``, those whose name starts with it."""
        with self._tx(write=False) as db:
            if prefix:
                rows = db.execute("SELECT name, target, created, updated, labels FROM images "
                                  "WHERE substr(name, 1, ?) = ? ORDER BY name",
                                  (len(prefix), prefix)).fetchall()
            else:
                rows = db.execute("SELECT name, target, created, updated, labels FROM images "
                                  "ORDER BY name").fetchall()
        return [self._row(r) for r in rows]

    def by_digest(self, digest: Digest | str) -> _List[Image]:
        """The images whose target is ``digest``."""
        with self._tx(write=False) as db:
            rows = db.execute("SELECT name, target, created, updated, labels FROM images "
                              "WHERE digest = ? ORDER BY name", (str(digest),)).fetchall()
        return [self._row(r) for r in rows]

    def tag(self, source: str, name: str) -> Image:
        """Give the image ``source`` a second name (moved if it exists)."""
        image = self.get(source)
        return self.put(name, image.target, image.labels)

    def set_labels(self, name: str, labels: dict[str, str]) -> Image:
        image = self.get(name)
        return self.put(name, image.target, labels)

    def delete(self, name: str) -> Image:
        with self._tx(write=True) as db:
            row = db.execute("SELECT name, target, created, updated, labels FROM images "
                             "WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no image named {name}")
            db.execute("DELETE FROM images WHERE name = ?", (name,))
        return self._row(row)

    # --- leases -------------------------------------------------------------------------

    def create_lease(self, lease_id: str | None = None, ttl: float | None = None) -> str:
        lease_id = lease_id or "lease-" + secrets.token_hex(8)
        now = time.time()
        with self._tx(write=True, durable=False) as db:
            if db.execute("SELECT 1 FROM leases WHERE id = ?", (lease_id,)).fetchone():
                raise AlreadyExists(f"lease {lease_id} exists already")
            db.execute("INSERT INTO leases VALUES (?, ?, ?)",
                       (lease_id, now, now + ttl if ttl is not None else None))
        return lease_id

    def add_to_lease(self, lease_id: str, *digests: Digest | str) -> None:
        with self._tx(write=True, durable=False) as db:
            if not db.execute("SELECT 1 FROM leases WHERE id = ?", (lease_id,)).fetchone():
                raise NotFound(f"no lease {lease_id}")
            db.executemany("INSERT OR IGNORE INTO lease_resources VALUES (?, ?)",
                           [(lease_id, str(Digest.parse(d))) for d in digests])

    def delete_lease(self, lease_id: str) -> None:
        with self._tx(write=True, durable=False) as db:
            if db.execute("DELETE FROM leases WHERE id = ?", (lease_id,)).rowcount == 0:
                raise NotFound(f"no lease {lease_id}")

    def leases(self) -> _List[str]:
        with self._tx(write=False) as db:
            return [r[0] for r in db.execute("SELECT id FROM leases ORDER BY id")]

    @contextmanager
    def lease(self, ttl: float | None = 24 * 3600) -> Iterator[str]:
        """A lease for the ``with`` block; blobs added to it survive gc until it ends.
        The ttl bounds how long a crashed holder's lease keeps them."""
        lease_id = self.create_lease(ttl=ttl)
        try:
            yield lease_id
        finally:
            self.delete_lease(lease_id)

    # --- garbage collection roots -------------------------------------------------------

    def roots(self) -> tuple[_List[Descriptor], set[Digest]]:
        """What gc keeps: every image target, and every blob of a live lease.

        Expired leases are removed on the way. One transaction: a consistent view.
        """
        now = time.time()
        with self._tx(write=True) as db:
            db.execute("DELETE FROM leases WHERE expires IS NOT NULL AND expires < ?", (now,))
            targets = [parse_descriptor(r[0], "image target")
                       for r in db.execute("SELECT target FROM images")]
            leased = {Digest.parse(r[0]) for r in
                      db.execute("SELECT DISTINCT digest FROM lease_resources")}
        return targets, leased
