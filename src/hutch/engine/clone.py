"""``hutch copy``, ``snapshot`` and ``restore`` (lxc-copy, lxc-snapshot): committed layers.

A stopped container's own layer is committed into a snapshot of the
snapshotter and the container goes on on a fresh layer above it. Then

- a user's snapshot is such a commit named ``snap/<id>/<name>``; restoring it
  throws the container's current layer away and prepares a new one on it;
- a copy commits the source's layer as a shared ``layer/<token>`` that the
  source and the copy both rest on: copy-on-write, nothing is duplicated.

Committed layers are lower layers, seen through idmapped mounts, so their files
must have the image's ids (0-based). Overlay stores what an unprivileged
container writes with its host ids (its upper layer is not idmapped): those are
shifted down by the container's id base before the commit. The copy gets its
own id range and sees the same files as its own.

The layers live as long as a container or another layer rests on them:
``collect`` removes the ones nothing needs any more (after rm and restore).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from typing import TYPE_CHECKING

from hutch.engine.db import IDMAP_SIZE
from hutch.errors import AlreadyExists, InvalidArgument, NotFound, WrongState

if TYPE_CHECKING:
    from hutch.engine.api import Engine

OWNER = "io.hutch.container"  # label: the container a snapshot was taken of
SNAPSHOT = "io.hutch.snapshot"  # label: the user's name of it
SHARED = "io.hutch.shared-layer"
_SNAPNAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")


def _stopped(engine: Engine, ref: str, what: str) -> dict:
    row = engine.db.find(ref)
    status = engine.status(row["id"])
    if status not in ("created", "exited"):
        raise WrongState(f"{what}: container {row['name']} is {status}; stop it first")
    return dict(row)


def _rootfs(engine: Engine, cid: str) -> str:
    return os.path.join(engine.layout.container_dir(cid), "rootfs")


def shift_ids(top: str, old_base: int, new_base: int, size: int = IDMAP_SIZE) -> None:
    """Every file below ``top`` owned in [old_base, old_base+size) moved to new_base.

    chown clears set-id bits, so the mode is put back afterwards."""
    def shift(path: str, st: os.stat_result) -> None:
        uid, gid = st.st_uid, st.st_gid
        nuid = uid - old_base + new_base if old_base <= uid < old_base + size else uid
        ngid = gid - old_base + new_base if old_base <= gid < old_base + size else gid
        if (nuid, ngid) == (uid, gid):
            return
        os.lchown(path, nuid, ngid)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(st.st_mode))

    shift(top, os.lstat(top))
    for parent, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(parent, name)
            shift(path, os.lstat(path))


def _upper(mounts: list) -> str | None:
    """The directory where a container's writes are stored with their host ids."""
    if len(mounts) == 1 and mounts[0].type == "overlay":
        for opt in mounts[0].options:
            if opt.startswith("upperdir="):
                return opt.split("=", 1)[1]
    return None


def _commit_layer(engine: Engine, cid: str, name: str, labels: dict[str, str]) -> None:
    """Commit stopped container ``cid``'s layer as ``name``; it goes on on a new one."""
    from hutch.storage.mount import unmount_all
    snap = engine.snapshotter
    key = f"container/{cid}"
    root = _rootfs(engine, cid)
    base = engine.db.idmap_of(cid)
    mounts = snap.mounts(key)
    upper = _upper(mounts) if base is not None else None
    unmount_all(root)
    if upper is not None:
        shift_ids(upper, base, 0)  # type: ignore[arg-type]
    try:
        snap.commit(name, key, labels)
    except BaseException:
        if upper is not None:
            shift_ids(upper, 0, base)  # type: ignore[arg-type]
        engine._mount_root(mounts, root, base)  # as it was
        raise
    try:
        mounts = snap.prepare(key, name)
    except BaseException as e:
        e.add_note(f"the container's file system is kept in snapshot {name}; its own layer "
                   "could not be made again")
        raise
    engine._mount_root(mounts, root, base)


def snapshot(engine: Engine, ref: str, name: str | None = None) -> str:
    """Take a snapshot of a stopped container's file system; returns its name."""
    row = _stopped(engine, ref, "snapshot")
    cid = row["id"]
    taken = {s["name"] for s in snapshots(engine, cid)}
    if name is None:
        name = next(f"snap{i}" for i in range(len(taken) + 1) if f"snap{i}" not in taken)
    if not _SNAPNAME.match(name):
        raise InvalidArgument(f"snapshot name {name!r}: use letters, digits, '_', '.' and '-' "
                              "(at most 64)")
    if name in taken:
        raise AlreadyExists(f"container {row['name']} already has a snapshot {name!r}")
    _commit_layer(engine, cid, f"snap/{cid}/{name}", {OWNER: cid, SNAPSHOT: name})
    return name


def snapshots(engine: Engine, ref: str) -> list[dict]:
    """A container's snapshots, oldest first."""
    from hutch.storage.snapshotter import Kind
    cid = engine.db.find(ref)["id"]
    out = [{"name": i.labels[SNAPSHOT], "created": i.created, "key": i.name}
           for i in engine.snapshotter.walk([Kind.COMMITTED])
           if i.labels.get(OWNER) == cid and SNAPSHOT in i.labels]
    return sorted(out, key=lambda s: s["created"])


def restore(engine: Engine, ref: str, name: str) -> None:
    """Throw the stopped container's file system away for its snapshot ``name``."""
    from hutch.storage.mount import unmount_all
    row = _stopped(engine, ref, "restore")
    cid = row["id"]
    found = [s for s in snapshots(engine, cid) if s["name"] == name]
    if not found:
        raise NotFound(f"container {row['name']} has no snapshot {name!r} (hutch snapshot ls "
                       f"{row['name']})")
    key = f"container/{cid}"
    root = _rootfs(engine, cid)
    unmount_all(root)
    engine.snapshotter.remove(key)
    engine._mount_root(engine.snapshotter.prepare(key, found[0]["key"]), root,
                       engine.db.idmap_of(cid))
    collect(engine)


def copy(engine: Engine, src: str, new_name: str) -> dict:
    """A copy-on-write clone of stopped container ``src`` with a new name, id and id range."""
    from hutch.engine.spec import RunOptions
    from hutch.engine.api import _NAME
    row = _stopped(engine, src, "copy")
    if not _NAME.match(new_name):
        raise InvalidArgument(f"copy: the name {new_name!r}: use letters, digits, '_', '.' and "
                              "'-', starting with a letter or digit")
    if any(r["name"] == new_name for r in engine.db.all()):
        raise AlreadyExists(f"the container name {new_name!r} is already in use")
    config = dict(json.loads(row["config"]))
    restart = config.get("restart") or {}
    config["restart"] = restart.get("policy", "no") + (
        f":{restart['max_retries']}" if restart.get("max_retries") else "")
    fields = RunOptions.__dataclass_fields__
    opts = RunOptions(**{k: v for k, v in config.items() if k in fields})
    opts.name = new_name
    if opts.hostname == row["name"]:
        opts.hostname = new_name  # an OS container is named after its host (LXC does so)
    layer = f"layer/{secrets.token_hex(8)}"
    _commit_layer(engine, row["id"], layer, {SHARED: "1"})
    try:
        made = engine.create(opts, rootfs_from=layer)
    except BaseException:
        collect(engine)
        raise
    if opts.template:
        _write_hostname(engine, made["id"], opts.hostname or new_name)
    return made


def _write_hostname(engine: Engine, cid: str, hostname: str) -> None:
    """/etc/hostname of a copied OS container, resolved inside its root (it may be a link)."""
    from hutch.linux.safepath import resolve_in_root
    path = resolve_in_root(_rootfs(engine, cid), "/etc/hostname")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        os.write(fd, (hostname + "\n").encode())
        base = engine.db.idmap_of(cid)
        if base is not None:
            os.fchown(fd, base, base)  # the container's root owns it
    finally:
        os.close(fd)


def forget(engine: Engine, cid: str) -> None:
    """The container is being removed: its snapshots go, and the layers nothing needs."""
    collect(engine, gone=cid)


def collect(engine: Engine, gone: str | None = None) -> int:
    """Remove snapshots of removed containers and shared layers no one rests on."""
    from hutch.storage.snapshotter import Kind
    live = {r["id"] for r in engine.db.all()} - {gone}
    removed = 0
    while True:
        infos = engine.snapshotter.walk()
        parents = {i.parent for i in infos if i.parent}
        doomed = [i.name for i in infos if i.kind is Kind.COMMITTED and i.name not in parents
                  and (SHARED in i.labels or (OWNER in i.labels and
                                              i.labels[OWNER] not in live))]
        if not doomed:
            return removed
        for name in doomed:
            engine.snapshotter.remove(name)
            removed += 1
