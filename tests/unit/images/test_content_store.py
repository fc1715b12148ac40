"""hutch.images.content: verified ingest, immutable blobs, concurrent writers, resume."""

from __future__ import annotations

import io
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from hutch.common.digest import Digest, DigestMismatch
from hutch.errors import Conflict, NotFound
from hutch.images.content import ContentStore


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "content"))


def blob_names(store: ContentStore) -> list[str]:
    return sorted(os.listdir(os.path.join(store.root, "blobs", "sha256")))


def test_ingest_read_walk_usage_delete(store: ContentStore) -> None:
    info = store.ingest_bytes(b"hello")
    assert info.digest == Digest.from_bytes(b"hello") and info.size == 5
    assert store.exists(info.digest) and store.read(info.digest) == b"hello"
    path = store.path(info.digest)
    assert path.endswith(f"blobs/sha256/{info.digest.hex}")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
    other = store.ingest(io.BytesIO(b"world" * 1000))
    assert {i.digest for i in store.walk()} == {info.digest, other.digest}
    usage = store.usage()
    assert (usage.blobs, usage.size, usage.ingest_size) == (2, 5 + 5000, 0)
    store.delete(info.digest)
    assert not store.exists(info.digest)
    with pytest.raises(NotFound, match="not in the content store"):
        store.delete(info.digest)
    with pytest.raises(NotFound):
        store.read(info.digest)
    assert os.listdir(os.path.join(store.root, "ingest")) == []


def test_wrong_digest_is_refused_and_leaves_nothing(store: ContentStore) -> None:
    wrong = Digest.from_bytes(b"something else")
    with pytest.raises(DigestMismatch, match=f"expected {wrong}"):
        store.ingest(io.BytesIO(b"hello"), expected=wrong)
    assert blob_names(store) == [] and os.listdir(os.path.join(store.root, "ingest")) == []


def test_wrong_size_is_refused_and_leaves_nothing(store: ContentStore) -> None:
    d = Digest.from_bytes(b"hello")
    with pytest.raises(DigestMismatch, match="longer than the 4 bytes"):
        store.ingest(io.BytesIO(b"hello"), expected=d, size=4)
    with pytest.raises(DigestMismatch, match="has 5 bytes, expected 6"):
        store.ingest(io.BytesIO(b"hello"), expected=d, size=6)
    assert blob_names(store) == [] and os.listdir(os.path.join(store.root, "ingest")) == []
    assert store.ingest(io.BytesIO(b"hello"), expected=d, size=5).size == 5


def test_an_existing_blob_is_not_rewritten(store: ContentStore) -> None:
    first = store.ingest_bytes(b"same")
    inode = os.stat(store.path(first.digest)).st_ino
    with store.writer() as w:  # a second writer of the same content
        w.write(b"same")
        second = w.commit()
    assert second.digest == first.digest
    assert os.stat(store.path(first.digest)).st_ino == inode
    assert os.listdir(os.path.join(store.root, "ingest")) == []


def test_a_corrupted_blob_is_noticed_on_read(store: ContentStore) -> None:
    info = store.ingest_bytes(b"precious")
    path = store.path(info.digest)
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(b"tampered")
    with pytest.raises(DigestMismatch, match="corrupt on disk"):
        store.read(info.digest)


def test_an_exception_aborts_the_writer(store: ContentStore) -> None:
    with pytest.raises(RuntimeError), store.writer(ref="r1") as w:
        w.write(b"partial")
        raise RuntimeError("network went away")
    assert store.ingests() == [] and blob_names(store) == []


def test_a_named_ingest_resumes(store: ContentStore) -> None:
    data = b"0123456789" * 1000
    d = Digest.from_bytes(data)
    with store.writer(ref="pull layer x", expected=d, size=len(data)) as w:
        w.write(data[:3000])  # interrupted: closed without a commit
    assert [(s.ref, s.offset) for s in store.ingests()] == [("pull layer x", 3000)]
    with store.writer(ref="pull layer x", expected=d, size=len(data)) as w:
        assert w.offset == 3000
        w.write(data[w.offset:])
        info = w.commit()
    assert info.digest == d and store.ingests() == []


def test_one_writer_per_ref(store: ContentStore) -> None:
    with store.writer(ref="busy"), pytest.raises(Conflict, match="another process"):
        store.writer(ref="busy")


def test_stale_ingests_are_cleaned(store: ContentStore) -> None:
    with store.writer(ref="old") as w:
        w.write(b"abc")
    assert store.clean_ingests(older_than=3600) == 0
    assert store.clean_ingests(older_than=0) == 1
    assert store.ingests() == []


def _ingest_many(root: str, payload: bytes, rounds: int, queue: multiprocessing.Queue) -> None:
    store = ContentStore(root)
    try:
        for _ in range(rounds):
            store.ingest(io.BytesIO(payload), expected=Digest.from_bytes(payload))
            with store.writer() as w:  # no expected digest: the race is in the link
                w.write(payload)
                w.commit()
        queue.put("ok")
    except BaseException as e:  # noqa: BLE001
        queue.put(repr(e))


def test_concurrent_writers_of_one_blob(store: ContentStore) -> None:
    payload = os.urandom(256 << 10)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ingest_many, args=(store.root, payload, 20, queue))
             for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == ["ok"] * 3
    assert blob_names(store) == [Digest.from_bytes(payload).hex]
    assert store.read(Digest.from_bytes(payload)) == payload
    assert os.listdir(os.path.join(store.root, "ingest")) == []


def _fsynced_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record what each os.fsync call syncs (by the fd's path), then let it run."""
    paths: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return paths


def test_each_commit_fsyncs_its_file_and_the_directory(store: ContentStore,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _fsynced_paths(monkeypatch)
    store.ingest_bytes(b"one")
    store.ingest_bytes(b"two")
    blobs = os.path.join(store.root, "blobs", "sha256")
    assert [p for p in synced if p == blobs] == [blobs, blobs]
    assert len([p for p in synced if p.endswith("/data")]) == 2


def test_many_commits_can_share_one_directory_fsync(store: ContentStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _fsynced_paths(monkeypatch)
    infos = [store.ingest_bytes(data, sync_dir=False) for data in (b"one", b"two", b"three")]
    with store.writer(ref="r", size=4) as w:
        w.write(b"four")
        infos.append(w.commit(sync_dir=False))
    # Every file was fsynced before it was linked; no directory yet.
    assert len(synced) == 4 and all(p.endswith("/data") for p in synced)
    assert all(store.read(i.digest) for i in infos)
    store.sync()
    assert synced[4:] == [os.path.join(store.root, "blobs", a) for a in ("sha256", "sha512")]


def test_a_big_blob_is_sent_to_disk_while_it_is_written(store: ContentStore) -> None:
    chunk = os.urandom(1 << 20)
    data = chunk * 20
    d = Digest.from_bytes(data)
    with store.writer(ref="big", expected=d, size=len(data)) as w:
        for _ in range(10):
            w.write(chunk)
        assert w._written_back == 8 << 20  # write-out hints at 4 and 8 MiB
        w.truncate(4 << 20)  # a resume that starts over before what was written out
        assert w._written_back == 4 << 20 and w.offset == 4 << 20
        while w.offset < len(data):
            w.write(chunk)
        info = w.commit()
    assert info.digest == d and info.size == len(data)
    with store.open(d) as f:
        assert f.read() == data


def test_start_writeback_accepts_files_and_refuses_pipes(tmp_path: Path) -> None:
    from hutch.linux.writeback import start_writeback
    with open(tmp_path / "f", "wb") as f:
        f.write(b"x" * 100_000)
        f.flush()
        assert start_writeback(f.fileno(), 0, 100_000) is True
    r, w = os.pipe()
    try:
        assert start_writeback(w, 0, 1) is False  # ESPIPE: nothing to write out
    finally:
        os.close(r)
        os.close(w)
