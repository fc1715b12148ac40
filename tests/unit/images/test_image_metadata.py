"""hutch.images.metadata: names, labels, leases in SQLite, shared by processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from hutch.common.digest import Digest
from hutch.errors import AlreadyExists, InvalidArgument, NotFound
from hutch.images.metadata import MetadataStore
from hutch.oci.image_spec import OCI_INDEX, OCI_MANIFEST, Descriptor, Platform


def desc(n: int, media_type: str = OCI_MANIFEST) -> Descriptor:
    return Descriptor(media_type, Digest.from_bytes(str(n).encode()), n,
                      platform=Platform("linux", "amd64"))


@pytest.fixture
def meta(tmp_path: Path) -> MetadataStore:
    with MetadataStore(str(tmp_path / "images.db")) as m:
        yield m


def test_create_get_list_delete(meta: MetadataStore) -> None:
    a = meta.create("busybox:latest", desc(1), {"org.example": "x"})
    assert meta.get("busybox:latest") == a
    assert meta.get("busybox:latest").labels == {"org.example": "x"}
    assert meta.get("busybox:latest").target.platform == Platform("linux", "amd64")
    with pytest.raises(AlreadyExists, match="busybox:latest"):
        meta.create("busybox:latest", desc(2))
    meta.create("debian:12", desc(2, OCI_INDEX))
    assert [i.name for i in meta.list()] == ["busybox:latest", "debian:12"]
    assert [i.name for i in meta.list("deb")] == ["debian:12"]
    assert meta.delete("debian:12").target.media_type == OCI_INDEX
    with pytest.raises(NotFound, match="no image named debian:12"):
        meta.get("debian:12")
    with pytest.raises(NotFound):
        meta.delete("debian:12")


def test_put_moves_a_tag_and_keeps_created(meta: MetadataStore) -> None:
    first = meta.put("app:1", desc(1), {"k": "v"})
    moved = meta.put("app:1", desc(2))
    assert moved.target.digest == desc(2).digest
    assert moved.created == first.created and moved.updated >= first.updated
    assert moved.labels == {"k": "v"}
    meta.tag("app:1", "app:latest")
    assert [i.name for i in meta.by_digest(desc(2).digest)] == ["app:1", "app:latest"]
    assert meta.set_labels("app:1", {}).labels == {}


@pytest.mark.parametrize("name", ["", "has space", "tab\tname", "x" * 600])
def test_bad_names_are_refused(meta: MetadataStore, name: str) -> None:
    with pytest.raises(InvalidArgument):
        meta.create(name, desc(1))


def test_database_is_in_wal_mode(meta: MetadataStore) -> None:
    conn = sqlite3.connect(meta.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_leases_are_roots_until_they_end(meta: MetadataStore) -> None:
    meta.put("a:1", desc(1))
    with meta.lease() as lease:
        meta.add_to_lease(lease, desc(5).digest, str(desc(6).digest))
        targets, leased = meta.roots()
        assert [t.digest for t in targets] == [desc(1).digest]
        assert leased == {desc(5).digest, desc(6).digest}
    assert meta.roots()[1] == set() and meta.leases() == []
    expired = meta.create_lease(ttl=-1)
    meta.add_to_lease(expired, desc(7).digest)
    assert meta.roots()[1] == set() and expired not in meta.leases()
    with pytest.raises(NotFound):
        meta.add_to_lease("no-such-lease", desc(1).digest)


def _writer(path: str, worker: int, queue: multiprocessing.Queue) -> None:
    try:
        with MetadataStore(path) as m:
            for i in range(25):
                m.put(f"w{worker}:{i}", desc(i))
                m.put("shared:latest", desc(worker))
        queue.put("ok")
    except BaseException as e:  # noqa: BLE001
        queue.put(repr(e))


def test_concurrent_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "images.db")
    MetadataStore(path).close()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, w, queue)) for w in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == ["ok"] * 3
    with MetadataStore(path) as m:
        names = [i.name for i in m.list()]
    assert len(names) == 3 * 25 + 1 and "shared:latest" in names


def _synchronous(meta: MetadataStore) -> int:
    return int(meta._conn.execute("PRAGMA synchronous").fetchone()[0])


def test_leases_skip_the_fsync_that_names_keep(meta: MetadataStore) -> None:
    FULL, NORMAL = 2, 1
    assert _synchronous(meta) == FULL
    with meta._tx(write=True, durable=False):
        assert _synchronous(meta) == NORMAL  # a lease's commit: no fsync of its own
    lease = meta.create_lease()
    meta.add_to_lease(lease, desc(1).digest)
    with pytest.raises(NotFound):
        meta.add_to_lease("no-such-lease", desc(2).digest)
    meta.delete_lease(lease)
    # Back to FULL after each, failed or not: a name's commit is fsynced when it returns.
    assert _synchronous(meta) == FULL
    meta.put("a:1", desc(1))
    assert _synchronous(meta) == FULL
