"""Named and anonymous volumes (``hutch volume ...``, ``-v NAME:/path``), Docker's local driver.

A volume is a directory below the instance root, ``volumes/<name>/_data``,
owned by the host's root, with a row in the instance's database (name,
creation time, labels). ``-v NAME:/path`` mounts it, making it on first use.
In the container the directory is an ordinary bind, idmapped like host
directories are (engine/spec.py), so a container with its own user namespace
sees it as its root's. (The image's Volumes get anonymous volumes in the
container's bundle: engine/images.py.)

A volume that a container names (running or not) cannot be removed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from typing import TYPE_CHECKING

from hutch.errors import AlreadyExists, Conflict, InvalidArgument, NotFound

if TYPE_CHECKING:
    from hutch.engine.api import Engine
    from hutch.engine.spec import RunOptions

SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}'
);
"""
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class Volumes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = engine.db
        self.db.conn.executescript(SCHEMA)
        self.root = os.path.join(engine.layout.root, "volumes")

    def path(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    # -- the volume commands -----------------------------------------------------------

    def create(self, name: str | None = None, labels: dict[str, str] | None = None,
               exist_ok: bool = False) -> dict:
        name = name or secrets.token_hex(32)
        if not _NAME.match(name):
            raise InvalidArgument(f"volume name {name!r}: use letters, digits, '_', '.' and "
                                  "'-', at least two, starting with a letter or digit")
        try:
            with self.db.transaction() as c:
                c.execute("INSERT INTO volumes (name, created, labels) VALUES (?, ?, ?)",
                          (name, time.time(), json.dumps(labels or {})))
                self._make_dir(name)
        except sqlite3.IntegrityError:
            if not exist_ok:
                raise AlreadyExists(f"a volume named {name!r} exists already") from None
            self._make_dir(name)  # another hutch made it at the same moment: fine
        return self.inspect(name)

    def _make_dir(self, name: str) -> None:
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        os.makedirs(os.path.join(self.root, name), mode=0o711, exist_ok=True)
        os.makedirs(self.path(name), mode=0o755, exist_ok=True)

    def _row(self, name: str) -> sqlite3.Row:
        row = self.db.conn.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no such volume: {name}")
        return row

    def inspect(self, name: str) -> dict:
        row = self._row(name)
        return {"Name": row["name"], "Driver": "local", "Mountpoint": self.path(row["name"]),
                "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row["created"])),
                "Labels": json.loads(row["labels"]), "Scope": "local",
                "UsedBy": sorted(self.users().get(row["name"], []))}

    def ls(self) -> list[dict]:
        rows = self.db.conn.execute("SELECT name FROM volumes ORDER BY created").fetchall()
        return [self.inspect(r[0]) for r in rows]

    def users(self) -> dict[str, list[str]]:
        """Volume name -> the names of the containers that mount it."""
        used: dict[str, list[str]] = {}
        for row in self.db.all():
            for volume in referenced(json.loads(row["config"])):
                used.setdefault(volume, []).append(row["name"])
        return used

    def rm(self, name: str, force: bool = False) -> None:
        """Remove a volume no container names; ``force`` ignores one that is missing."""
        try:
            self._row(name)
        except NotFound:
            if force:
                return
            raise
        users = self.users().get(name)
        if users:
            raise Conflict(f"volume {name} is in use by container {', '.join(sorted(users))}: "
                           "remove the container first")
        with self.db.transaction() as c:
            c.execute("DELETE FROM volumes WHERE name = ?", (name,))
        shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def prune(self) -> list[str]:
        """Remove every volume no container names."""
        used = self.users()
        gone = []
        for row in self.db.conn.execute("SELECT name FROM volumes").fetchall():
            if row["name"] not in used:
                self.rm(row["name"])
                gone.append(row["name"])
        return gone

    # -- containers ------------------------------------------------------------------

    def check(self, opts: RunOptions) -> None:
        """Bad -v sources are refused before anything is made."""
        for v in opts.volumes:
            source, _, rest = v.partition(":")
            if not rest:
                raise InvalidArgument(f"-v {v}: expected SOURCE:/CONTAINER/PATH[:OPTIONS], SOURCE "
                                      "a host path or a volume name")
            if not source.startswith("/") and not _NAME.match(source):
                raise InvalidArgument(f"-v {v}: {source!r} is neither an absolute host path "
                                      "nor a volume name")

    def for_spec(self, opts: RunOptions) -> RunOptions:
        """``opts`` with volume names turned into their directories, made if need be."""
        out = []
        for v in opts.volumes:
            source, _, rest = v.partition(":")
            if not source.startswith("/"):
                self.create(source, exist_ok=True)
                v = f"{self.path(source)}:{rest}"
            out.append(v)
        return dataclasses.replace(opts, volumes=out)


def referenced(config: dict) -> list[str]:
    """The volume names a container's options mount."""
    names = []
    for v in config.get("volumes") or []:
        source = v.split(":", 1)[0]
        if not source.startswith("/"):
            names.append(source)
    return names
