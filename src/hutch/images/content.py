"""A content-addressed blob store: ``<root>/blobs/<algorithm>/<hex>``, immutable.

Writing follows containerd's local store. Bytes go to ``<root>/ingest/<name>/data``
(a random name, or one derived from a caller's ``ref`` so that an interrupted
download can be resumed), hashed as they are written (never read again);
``commit`` fsyncs them, checks the size and the digest, makes the file
read-only and only then links it into ``blobs/``. A blob is never rewritten:
the link fails when the name exists, and the writer that lost the race simply
drops its copy, so any number of processes may ingest the same blob at once. A
refused commit removes its ingest: nothing reaches ``blobs/`` that does not
match its name.

Durability: one fsync per blob file, at its commit; a big blob's pages are
sent to the disk every few MiB while it is written (sync_file_range, a hint),
so that fsync has little left to wait for. The directory ``blobs/<algorithm>``
is fsynced after each commit, or, for a caller committing many blobs
(``sync_dir=False``, a pull), once by ``sync()`` before anything names them.

Stdlib only (plus hutch.linux.writeback, imported once a blob passes 4 MiB).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Self

from hutch.common.digest import ALGORITHMS, CHUNK, Digest, Digester, DigestMismatch
from hutch.errors import Conflict, InvalidArgument, NotFound, SystemFailure

BLOB_MODE = 0o444
STALE_INGEST = 24 * 3600  # seconds after which an untouched, unlocked ingest may be removed
WRITEBACK_EVERY = 4 << 20  # bytes written between two hints to start writing them to disk


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int
    created: float  # mtime of the blob file (when it was committed)


@dataclass(frozen=True, slots=True)
class StoreUsage:
    blobs: int
    size: int  # bytes of content (not rounded up to blocks)
    ingest_size: int  # bytes in unfinished ingests


@dataclass(frozen=True, slots=True)
class IngestStatus:
    ref: str
    offset: int
    updated: float


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Let the disk start on bytes already written (the commit's fsync waits for less)."""
    try:
        from hutch.linux.writeback import start_writeback
    except (ImportError, OSError, AttributeError):  # pragma: no cover (no sync_file_range)
        return
    start_writeback(fd, offset, length)


class Writer:
    """One blob being written. Use as a context manager, ``write`` bytes, then ``commit``.

    Leaving the ``with`` block without a commit aborts an anonymous writer (its
    bytes are removed) but keeps a named (``ref``) one for a later resume; an
    exception aborts either.
    """

    def __init__(self, store: ContentStore, directory: str, ref: str | None,
                 expected: Digest | None, size: int | None, algorithm: str) -> None:
        self._store = store
        self._dir = directory
        self.ref = ref
        self.expected = expected
        self.expected_size = size
        self._digester = Digester(expected.algorithm if expected else algorithm)
        self._lock_fd = -1
        self._fd = -1
        self._written_back = 0  # offset up to which write-out to disk was started
        self.done = False
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._lock_fd = os.open(os.path.join(directory, "lock"),
                                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise Conflict(f"content ingest {ref!r} is being written by another process; "
                           "wait for it or use another ref") from None
        try:
            if ref is not None:
                with open(os.path.join(directory, "ref"), "w") as f:
                    f.write(ref)
            self._fd = os.open(os.path.join(directory, "data"),
                               os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            # Resume: hash what an earlier writer left, and go on after it.
            os.lseek(self._fd, 0, os.SEEK_SET)
            while chunk := os.read(self._fd, CHUNK):
                self._digester.update(chunk)
            self._written_back = self.offset
        except BaseException:
            self._release(remove=ref is None)
            raise

    @property
    def offset(self) -> int:
        """Bytes written so far (including those of an earlier, resumed writer)."""
        return self._digester.size

    def digest(self) -> Digest:
        """The digest of what was written so far."""
        return self._digester.digest()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.done:
            raise InvalidArgument("write to a content writer that is closed")
        view = memoryview(data)
        if self.expected_size is not None and self.offset + len(view) > self.expected_size:
            raise DigestMismatch(f"content for {self.expected or self.ref or 'a blob'} is longer "
                                 f"than the {self.expected_size} bytes expected")
        total = 0
        while total < len(view):
            total += os.write(self._fd, view[total:])
        self._digester.update(view)
        if self.offset - self._written_back >= WRITEBACK_EVERY:
            _start_writeback(self._fd, self._written_back, self.offset - self._written_back)
            self._written_back = self.offset
        return total

    def write_from(self, stream: BinaryIO) -> int:
        """Copy ``stream`` to its end into this writer; returns the bytes copied."""
        n = 0
        while chunk := stream.read(CHUNK):
            n += self.write(chunk)
        return n

    def truncate(self, size: int = 0) -> None:
        """Drop what was written after ``size`` bytes (0: start again)."""
        os.ftruncate(self._fd, size)
        self._written_back = min(self._written_back, size)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._digester = Digester(self._digester.algorithm)
        remaining = size
        while remaining > 0 and (chunk := os.read(self._fd, min(CHUNK, remaining))):
            self._digester.update(chunk)
            remaining -= len(chunk)
        os.lseek(self._fd, 0, os.SEEK_END)

    def commit(self, size: int | None = None, expected: Digest | None = None, *,
               sync_dir: bool = True) -> BlobInfo:
        """Verify and move the content into ``blobs/``; returns the blob's info.

        ``size`` and ``expected`` default to those given when the writer was
        opened. On a mismatch the ingest is removed and DigestMismatch raised.
        The content is fsynced before it is linked; ``sync_dir=False`` leaves the
        fsync of the directory (the new name) to a later ``ContentStore.sync()``.
        """
        if self.done:
            raise InvalidArgument("commit of a content writer that is closed")
        size = self.expected_size if size is None else size
        expected = expected or self.expected
        try:
            os.fsync(self._fd)
            actual = self.digest()
            if size is not None and self.offset != size:
                raise DigestMismatch(f"content {expected or actual} has {self.offset} bytes, "
                                     f"expected {size}")
            if expected is not None and actual != expected:
                raise DigestMismatch(f"content has digest {actual}, expected {expected}")
            data = os.path.join(self._dir, "data")
            os.fchmod(self._fd, BLOB_MODE)
            info = self._store._link_into_place(data, actual, self.offset, sync_dir)
        except BaseException:
            self._release(remove=True)
            raise
        self._release(remove=True)
        return info

    def abort(self) -> None:
        """Drop everything written, named ingest included."""
        self._release(remove=True)

    def close(self) -> None:
        """Stop writing: an anonymous ingest is removed, a named one kept for resuming."""
        self._release(remove=self.ref is None)

    def _release(self, remove: bool) -> None:
        if self.done:
            return
        self.done = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if remove:
            shutil.rmtree(self._dir, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


class ContentStore:
    """Blobs by digest below ``root``. Safe to share between processes."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._blobs = os.path.join(self.root, "blobs")
        self._ingest = os.path.join(self.root, "ingest")
        for algorithm in ALGORITHMS:
            os.makedirs(os.path.join(self._blobs, algorithm), mode=0o755, exist_ok=True)
        os.makedirs(self._ingest, mode=0o700, exist_ok=True)

    # --- reading ------------------------------------------------------------------------

    def path(self, digest: Digest | str) -> str:
        """Where the blob ``digest`` is (or would be) stored."""
        d = Digest.parse(digest)
        return os.path.join(self._blobs, d.algorithm, d.hex)

    def exists(self, digest: Digest | str) -> bool:
        return os.path.isfile(self.path(digest))

    def info(self, digest: Digest | str) -> BlobInfo:
        d = Digest.parse(digest)
        try:
            st = os.stat(self.path(d))
        except FileNotFoundError:
            raise NotFound(f"blob {d} is not in the content store {self.root}") from None
        return BlobInfo(d, st.st_size, st.st_mtime)

    def open(self, digest: Digest | str) -> BinaryIO:
        """The blob's bytes as a file (trusted: it was verified when committed)."""
        d = Digest.parse(digest)
        try:
            return open(self.path(d), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {d} is not in the content store {self.root}") from None

    def read(self, digest: Digest | str, max_size: int | None = None,
             verify: bool = True) -> bytes:
        """The whole blob (for manifests and configs), checked against its name."""
        d = Digest.parse(digest)
        with self.open(d) as f:
            size = os.fstat(f.fileno()).st_size
            if max_size is not None and size > max_size:
                raise InvalidArgument(f"blob {d} is {size} bytes, more than the {max_size} "
                                      "expected for this kind of content")
            data = f.read()
        if verify:
            d.verify(data, what=f"blob {d} in {self.root} (corrupt on disk?)")
        return data

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob (the order is that of the directories)."""
        for algorithm, length in ALGORITHMS.items():
            directory = os.path.join(self._blobs, algorithm)
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                if len(entry.name) != length or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    digest = Digest(algorithm, entry.name)
                    st = entry.stat(follow_symlinks=False)
                except (InvalidArgument, FileNotFoundError):
                    continue
                yield BlobInfo(digest, st.st_size, st.st_mtime)

    def usage(self) -> StoreUsage:
        count = size = 0
        for info in self.walk():
            count += 1
            size += info.size
        ingest = 0
        for status in self.ingests():
            ingest += status.offset
        return StoreUsage(count, size, ingest)

    # --- writing ------------------------------------------------------------------------

    def writer(self, ref: str | None = None, expected: Digest | str | None = None,
               size: int | None = None, algorithm: str = "sha256") -> Writer:
        """A Writer. With ``ref``, bytes left by an earlier writer of that ref are kept
        (resume), and a second writer of the same ref at once gets Conflict."""
        exp = Digest.parse(expected) if expected is not None else None
        if size is not None and size < 0:
            raise InvalidArgument(f"blob size must not be negative, not {size}")
        if ref is None:
            name = "w-" + secrets.token_hex(16)
        else:
            if not ref or len(ref) > 1024:
                raise InvalidArgument("an ingest ref must be 1 to 1024 characters")
            name = "r-" + hashlib.sha256(ref.encode()).hexdigest()
        return Writer(self, os.path.join(self._ingest, name), ref, exp, size, algorithm)

    def ingest(self, stream: BinaryIO, expected: Digest | str | None = None,
               size: int | None = None, ref: str | None = None) -> BlobInfo:
        """Copy ``stream`` into the store, verified; returns the blob's info.

        When ``expected`` is given and that blob is present, the stream is not read.
        """
        exp = Digest.parse(expected) if expected is not None else None
        if exp is not None and self.exists(exp):
            info = self.info(exp)
            if size is not None and info.size != size:
                raise DigestMismatch(f"blob {exp} has {info.size} bytes in the store, "
                                     f"but {size} were announced")
            return info
        with self.writer(ref, exp, size) as w:
            if ref is not None and w.offset:
                w.truncate(0)  # a stream starts at 0; callers resuming use writer()
            w.write_from(stream)
            return w.commit()

    def ingest_bytes(self, data: bytes, expected: Digest | str | None = None, *,
                     sync_dir: bool = True) -> BlobInfo:
        exp = Digest.parse(expected) if expected is not None else Digest.from_bytes(data)
        if self.exists(exp):
            return self.info(exp)
        with self.writer(None, exp, len(data)) as w:
            w.write(data)
            return w.commit(sync_dir=sync_dir)

    def sync(self) -> None:
        """Make the names of blobs committed with ``sync_dir=False`` durable (one fsync of
        each blob directory); call it before writing anything that points at them."""
        for algorithm in ALGORITHMS:
            _fsync_dir(os.path.join(self._blobs, algorithm))

    def _link_into_place(self, data: str, digest: Digest, size: int,
                         sync_dir: bool = True) -> BlobInfo:
        target = self.path(digest)
        try:
            os.link(data, target)  # atomic, and never replaces an existing blob
        except FileExistsError:
            return self.info(digest)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise SystemFailure(e.errno or errno.EIO,
                                    f"cannot store blob {digest} in {self.root}: "
                                    f"{e.strerror}") from e
            if os.path.exists(target):  # a file system without hard links
                return self.info(digest)
            os.rename(data, target)
        if sync_dir:
            _fsync_dir(os.path.dirname(target))
        st = os.stat(target)
        return BlobInfo(digest, size, st.st_mtime)

    # --- removing -----------------------------------------------------------------------

    def delete(self, digest: Digest | str) -> None:
        d = Digest.parse(digest)
        try:
            os.unlink(self.path(d))
        except FileNotFoundError:
            raise NotFound(f"blob {d} is not in the content store {self.root}") from None

    def ingests(self) -> list[IngestStatus]:
        """Unfinished ingests (named ones can be resumed)."""
        out = []
        for entry in os.scandir(self._ingest):
            try:
                st = os.stat(os.path.join(entry.path, "data"))
            except FileNotFoundError:
                continue
            try:
                with open(os.path.join(entry.path, "ref")) as f:
                    ref = f.read()
            except FileNotFoundError:
                ref = entry.name
            out.append(IngestStatus(ref, st.st_size, st.st_mtime))
        return out

    def abort(self, ref: str) -> None:
        """Remove the unfinished ingest of ``ref`` (Conflict while someone writes it)."""
        w = self.writer(ref)
        w.abort()

    def clean_ingests(self, older_than: float = STALE_INGEST) -> int:
        """Remove ingests untouched for ``older_than`` seconds that nobody writes."""
        removed = 0
        now = time.time()
        for entry in os.scandir(self._ingest):
            try:
                mtime = max(os.stat(os.path.join(entry.path, f)).st_mtime
                            for f in os.listdir(entry.path)) if os.listdir(entry.path) \
                    else entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if now - mtime < older_than:
                continue
            try:
                fd = os.open(os.path.join(entry.path, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                             0o600)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
            finally:
                os.close(fd)
        return removed


def is_readonly_blob(path: str) -> bool:
    return stat.S_IMODE(os.stat(path).st_mode) == BLOB_MODE
