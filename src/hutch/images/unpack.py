"""Apply an image layer (a tar, plain, gzip or zstd) to a directory, safely.

Every member is created relative to a directory file descriptor reached by a
checked walk from the target: a parent that is a symlink is followed only
when it is relative and stays inside the target; absolute names, ``..``,
absolute or climbing symlinks on the way, hard links to anything outside,
device nodes (unless allowed) and names or sizes beyond ``Limits`` are refused
with an ``UnsafeLayer`` error naming the member. Files are opened with
O_NOFOLLOW|O_EXCL, so nothing is ever written outside the target. (What was
applied before a refusal stays in the target: callers remove the snapshot.)

Whiteouts (``.wh.NAME`` deletes NAME of a lower layer, ``.wh..wh..opq`` hides
all of a directory's lower content) are either

- ``APPLY``: carried out on the target, which holds the lower layers' files
  (the copy and btrfs snapshotters); or
- ``OVERLAY``: turned into overlayfs's own form in a fresh upper directory
  (a 0/0 character device for a deleted name, ``trusted.overlay.opaque=y`` on
  an opaque directory), looking at the lower directories (top first) for
  whether there is anything to hide and for the metadata of directories that
  a member needs but the layer does not list.

Ownership (shifted through an ``IdShift`` for a user namespace), modes,
mtimes, xattrs, hard links and symlinks are kept. The diff_id (digest of the
uncompressed tar) is computed on the way and checked against the expected one.
``zstandard`` is imported only for a zstd layer.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, BinaryIO

from hutch.common.digest import CHUNK, Digest, DigestMismatch, HashingReader
from hutch.errors import InvalidArgument, Unsupported
from hutch.oci.image_spec import chain_ids

if TYPE_CHECKING:
    from hutch.common.mount import Mount
    from hutch.images.content import ContentStore
    from hutch.images.walk import ResolvedImage
    from hutch.storage.snapshotter import Snapshotter

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_XATTR_PREFIX = "trusted.overlay."

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_OTHER_MAGIC = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x04\x22\x4d\x18": "lz4"}

_MAX_SYMLINKS = 40
_ZERO = bytes(CHUNK)
_DIR_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


class UnsafeLayer(InvalidArgument):
    """A layer member that hutch refuses to apply. ``member`` is its name in the tar."""

    def __init__(self, member: str, reason: str) -> None:
        shown = member if len(member) <= 200 else member[:200] + f"... ({len(member)} chars)"
        super().__init__(f"layer member {shown!r}: {reason}")
        self.member = member
        self.reason = reason


class Whiteouts(str, Enum):
    APPLY = "apply"
    OVERLAY = "overlay"


class Devices(str, Enum):
    REFUSE = "refuse"  # an UnsafeLayer error
    SKIP = "skip"  # left out, silently
    CREATE = "create"  # mknod (needs CAP_MKNOD)


@dataclass(frozen=True, slots=True)
class IdMapping:
    """``size`` ids from ``container_id`` on are ``host_id`` on, on the host."""

    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True, slots=True)
class IdShift:
    """How ids in a layer map to the host: a user namespace's uid and gid maps."""

    uid_map: tuple[IdMapping, ...]
    gid_map: tuple[IdMapping, ...]

    @classmethod
    def offset(cls, host_id: int, size: int = 65536) -> IdShift:
        """The usual map: container ids 0..size-1 are host ids host_id..host_id+size-1."""
        m = (IdMapping(0, host_id, size),)
        return cls(m, m)

    @staticmethod
    def _map(mappings: tuple[IdMapping, ...], value: int, what: str, member: str) -> int:
        for m in mappings:
            if m.container_id <= value < m.container_id + m.size:
                return m.host_id + value - m.container_id
        raise UnsafeLayer(member, f"{what} {value} is outside the user namespace's id map")

    def uid(self, uid: int, member: str = "") -> int:
        return self._map(self.uid_map, uid, "uid", member)

    def gid(self, gid: int, member: str = "") -> int:
        return self._map(self.gid_map, gid, "gid", member)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a layer may hold before it is refused as hostile or broken."""

    max_path: int = 4096  # bytes of a member's name (PATH_MAX)
    max_name: int = 255  # bytes of one path component (NAME_MAX)
    max_link: int = 4096  # bytes of a symlink target or hard link name
    max_members: int = 2_000_000
    max_file_size: int = 64 << 30
    max_total_size: int = 512 << 30  # uncompressed bytes of the whole tar
    max_header: int = 1 << 20  # a pax or GNU long-name header (read into memory)
    max_xattrs: int = 128  # per member
    max_xattr_size: int = 64 << 10  # per value


@dataclass(frozen=True, slots=True)
class ApplyResult:
    diff_id: Digest  # sha256 of the uncompressed tar
    size: int  # bytes of the uncompressed tar
    members: int
    compression: str  # "none", "gzip", "zstd"
    skipped: tuple[str, ...] = ()  # members left out (devices with Devices.SKIP)


# --- decompression --------------------------------------------------------------------------

def detect_compression(head: bytes) -> str:
    """"gzip", "zstd" or "none" from a stream's first bytes; Unsupported for bzip2/xz/lz4."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    for magic, name in _OTHER_MAGIC.items():
        if head.startswith(magic):
            raise Unsupported(f"{name} compressed layers are not supported "
                              "(OCI layers are tar, tar+gzip or tar+zstd)")
    return "none"


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to sniff its compression)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[:len(data)] = data
        return len(data)


def open_layer(stream: BinaryIO) -> tuple[BinaryIO, str]:
    """The uncompressed tar stream of a layer, and the compression it had."""
    head = stream.read(8)
    compression = detect_compression(head)
    raw: BinaryIO = io.BufferedReader(_Prefixed(head, stream), CHUNK)  # type: ignore[arg-type]
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb"), compression  # type: ignore[return-value]
    if compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise Unsupported("a zstd compressed layer needs the Python package zstandard "
                              "(pip install zstandard)") from None
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return reader, compression  # type: ignore[return-value]
    return raw, compression


_CORRUPT = (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError)


def _corrupt_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = _CORRUPT
    try:
        import sys
        zstd = sys.modules.get("zstandard")
        if zstd is not None:
            errors += (zstd.ZstdError,)
    except AttributeError:  # pragma: no cover
        pass
    return errors


# --- tar headers with bounded size ------------------------------------------------------------

_LONG_HEADER_TYPES = {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                      tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses pax and GNU long-name headers bigger than ``max_header`` before tarfile
    reads them into memory (a header claiming gigabytes would otherwise be read whole)."""

    max_header = Limits().max_header

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        if self.type in _LONG_HEADER_TYPES and self.size > self.max_header:
            raise UnsafeLayer(self.name, f"an extended header of {self.size} bytes is more "
                                         f"than the {self.max_header} allowed")
        return super()._proc_member(tarfile_)  # type: ignore[misc,no-any-return]


# --- the applier ------------------------------------------------------------------------------

def _split(name: str, member: str, limits: Limits, what: str = "name") -> list[str]:
    """A member name as path components below the root; refuses what leaves it."""
    if "\0" in name:
        raise UnsafeLayer(member, f"the {what} holds a NUL byte")
    raw_len = len(name.encode("utf-8", "surrogateescape"))
    if raw_len > limits.max_path:
        raise UnsafeLayer(member, f"the {what} is {raw_len} bytes, more than the "
                                  f"{limits.max_path} allowed")
    if name.startswith("/"):
        raise UnsafeLayer(member, f"absolute {what} {name[:100]!r} refused (layer members "
                                  "must be relative to the root)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayer(member, f"'..' in the {what} {name[:100]!r} refused")
    for p in parts:
        if len(p.encode("utf-8", "surrogateescape")) > limits.max_name:
            raise UnsafeLayer(member, f"a component of the {what} is longer than "
                                      f"{limits.max_name} bytes")
    return parts


def _symlink_parts(member: str, where: str, target: str, depth: int) -> list[str]:
    """The parts of a relative symlink's ``target`` to walk next, from ``depth`` levels
    below the layer's root; refused when it is absolute or climbs above the root."""
    if target.startswith("/"):
        raise UnsafeLayer(member, f"writing through the symlink {where} -> {target} "
                                  "refused: it points outside the layer's root")
    for p in target.split("/"):
        if p == "..":
            depth -= 1
            if depth < 0:
                raise UnsafeLayer(member, f"writing through the symlink {where} -> "
                                          f"{target} refused: it points outside the "
                                          "layer's root")
        elif p not in ("", "."):
            depth += 1
    return [p for p in target.split("/") if p not in ("", ".")]


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_whiteout_dev(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _remove(parent_fd: int, name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)


class _Applier:
    def __init__(self, target: str, *, whiteouts: Whiteouts, lowers: Sequence[str],
                 devices: Devices, id_shift: IdShift | None, chown: bool, xattrs: bool,
                 limits: Limits, overlay_prefix: str) -> None:
        self.target = target
        self.whiteouts = whiteouts
        self.lowers = [os.path.abspath(p) for p in lowers]
        self.devices = devices
        self.id_shift = id_shift
        self.chown = chown
        self.xattrs = xattrs
        self.limits = limits
        self.overlay_prefix = overlay_prefix
        self.root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.touched: set[tuple[str, ...]] = set()  # paths this layer made or listed
        self.dirs: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []  # metadata set at the end
        self.skipped: list[str] = []
        self.total = 0

    def close(self) -> None:
        os.close(self.root_fd)

    # -- path resolution -------------------------------------------------------------

    def _open_dirs(self, parts: Sequence[str]) -> int:
        """An fd of the directory at ``parts`` (all real directories, checked before)."""
        fd = os.dup(self.root_fd)
        try:
            for name in parts:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def resolve_dir(self, comps: Sequence[str], member: str,
                    create: bool) -> tuple[int, list[str]] | None:
        """The directory at ``comps`` as an fd and its resolved components.

        Symlinks on the way are followed only when relative and staying inside;
        a missing directory is made (``create``) or None is returned.
        """
        todo = list(comps)
        done: list[str] = []
        links = 0
        fd = os.dup(self.root_fd)
        try:
            while todo:
                name = todo.pop(0)
                if name == "..":  # only from a symlink's target
                    if not done:
                        raise UnsafeLayer(member, "writing through a symlink on its path "
                                                  "refused: it points outside the layer's root")
                    done.pop()
                    os.close(fd)
                    fd = self._open_dirs(done)
                    continue
                try:
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    found = self._lower_lookup(done + [name]) if self.lowers else None
                    if found is not None and stat.S_ISLNK(found[1].st_mode):
                        links = self._follow(member, done + [name], os.readlink(found[0]),
                                             links, todo)
                        continue
                    if found is not None and not stat.S_ISDIR(found[1].st_mode):
                        raise UnsafeLayer(member, f"{'/'.join(done + [name])} is not a "
                                                  "directory in the lower layers")
                    self._mkdir_implicit(fd, name, done + [name], found)
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except (NotADirectoryError, OSError) as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise UnsafeLayer(member, f"{'/'.join(done + [name])} is not a "
                                                  "directory") from None
                    links = self._follow(member, done + [name],
                                         os.readlink(name, dir_fd=fd), links, todo)
                    continue
                os.close(fd)
                fd = nfd
                done.append(name)
            return fd, done
        except BaseException:
            os.close(fd)
            raise

    def _follow(self, member: str, at: list[str], target: str, links: int,
                todo: list[str]) -> int:
        links += 1
        if links > _MAX_SYMLINKS:
            raise UnsafeLayer(member, "too many levels of symbolic links on its path")
        where = "/".join(at)
        todo[:0] = _symlink_parts(member, where, target, len(at) - 1)
        return links

    # -- lower layers (overlay mode) -------------------------------------------------

    def _lower_lookup(self, parts: Sequence[str]) -> tuple[str, os.stat_result] | None:
        """What the lower layers show at ``parts`` (top first), as overlayfs would merge
        them: None when absent, whited out, or hidden by an opaque directory."""
        rel = os.path.join(*parts) if parts else "."
        parent_rel = os.path.dirname(rel)
        for lower in self.lowers:
            path = os.path.join(lower, rel)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            if st is not None:
                return None if _is_whiteout_dev(st) else (path, st)
            parent = os.path.join(lower, parent_rel) if parent_rel else lower
            try:
                pst = os.lstat(parent)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISDIR(pst.st_mode):
                return None  # the parent is a file or whiteout here: nothing below shows
            try:
                if os.getxattr(parent, self.overlay_prefix + "opaque",
                               follow_symlinks=False) == b"y":
                    return None
            except OSError:
                pass
        return None

    def _mkdir_implicit(self, parent_fd: int, name: str, parts: list[str],
                        found: tuple[str, os.stat_result] | None) -> None:
        """A directory a member needs that the layer does not list: like the lower
        layers' one (overlay), or root-owned 0755."""
        os.mkdir(name, 0o755, dir_fd=parent_fd)
        self.touched.add(tuple(parts))
        if found is None or not stat.S_ISDIR(found[1].st_mode):
            return
        path, st = found
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
        try:
            if self.chown:
                os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            if self.xattrs:
                for key in _listxattr(path):
                    if key.startswith(self.overlay_prefix):
                        continue
                    try:
                        os.setxattr(fd, key, os.getxattr(path, key, follow_symlinks=False))
                    except OSError:
                        pass
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd)

    # -- members ---------------------------------------------------------------------

    def apply(self, member: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        name = member.name
        parts = _split(name, name, self.limits)
        if member.isfile() and member.size > self.limits.max_file_size:
            raise UnsafeLayer(name, f"a file of {member.size} bytes is more than the "
                                        f"{self.limits.max_file_size} allowed")
        if not parts:  # the root itself ("./")
            if not member.isdir():
                raise UnsafeLayer(name, "the root of the layer must be a directory")
            self.dirs.append(((), member))
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(member, parts)
            return
        resolved = self.resolve_dir(parts[:-1], name, create=True)
        assert resolved is not None
        parent_fd, parent_parts = resolved
        try:
            path = tuple(parent_parts + [base])
            existing = _lstat(base, parent_fd)
            if member.isdir():
                if existing is not None and not stat.S_ISDIR(existing.st_mode):
                    _remove(parent_fd, base, existing)
                    existing = None
                if existing is None:
                    os.mkdir(base, 0o700, dir_fd=parent_fd)
                self.touched.add(path)
                fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=parent_fd)
                try:
                    self._owner_and_xattrs(fd, member)
                finally:
                    os.close(fd)
                self.dirs.append((path, member))
                return
            if member.islnk():
                self._hardlink(member, parent_fd, base, existing)
                self.touched.add(path)
                return
            if member.ischr() or member.isblk():
                if self.devices is Devices.REFUSE:
                    raise UnsafeLayer(name, f"device node ({member.devmajor}, "
                                            f"{member.devminor}) refused; devices are not "
                                            "allowed in this layer")
                if self.devices is Devices.SKIP:
                    self.skipped.append(name)
                    return
            if existing is not None:
                _remove(parent_fd, base, existing)
            self.touched.add(path)
            if member.issym():
                lb = len(member.linkname.encode("utf-8", "surrogateescape"))
                if lb > self.limits.max_link:
                    raise UnsafeLayer(name, f"the symlink target is {lb} bytes, more than "
                                            f"the {self.limits.max_link} allowed")
                os.symlink(member.linkname, base, dir_fd=parent_fd)
                self._link_metadata(parent_fd, base, member)
            elif member.ischr() or member.isblk() or member.isfifo():
                kind = stat.S_IFCHR if member.ischr() else \
                    stat.S_IFBLK if member.isblk() else stat.S_IFIFO
                dev = os.makedev(member.devmajor, member.devminor) if kind != stat.S_IFIFO else 0
                os.mknod(base, kind | 0o600, dev, dir_fd=parent_fd)
                fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
                try:
                    self._path_metadata(fd, member)
                finally:
                    os.close(fd)
            elif member.isfile():
                self._file(member, tf, parent_fd, base)
            else:
                raise UnsafeLayer(name, f"unsupported member type {member.type!r}")
        finally:
            os.close(parent_fd)

    def _file(self, member: tarfile.TarInfo, tf: tarfile.TarFile, parent_fd: int,
              base: str) -> None:
        self.total += member.size
        if self.total > self.limits.max_total_size:
            raise UnsafeLayer(member.name, f"the layer's files add up to more than the "
                                           f"{self.limits.max_total_size} bytes allowed")
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent_fd)
        try:
            src = tf.extractfile(member)
            written = 0
            if src is not None:
                while written < member.size:
                    chunk = src.read(min(CHUNK, member.size - written))
                    if not chunk:
                        raise UnsafeLayer(member.name, "the tar ends inside this file")
                    if chunk == _ZERO[:len(chunk)]:
                        os.lseek(fd, len(chunk), os.SEEK_CUR)  # keep it sparse
                    else:
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view):]
                    written += len(chunk)
            os.ftruncate(fd, member.size)
            self._owner_and_xattrs(fd, member)
            os.fchmod(fd, member.mode & 0o7777)
            os.utime(fd, ns=(_ns(member.mtime), _ns(member.mtime)))
        finally:
            os.close(fd)

    def _hardlink(self, member: tarfile.TarInfo, parent_fd: int, base: str,
                  existing: os.stat_result | None) -> None:
        name = member.name
        link = _split(member.linkname, name, self.limits, what="hard link target")
        if not link:
            raise UnsafeLayer(name, "a hard link to the root directory refused")
        resolved = self.resolve_dir(link[:-1], name, create=False)
        if resolved is None:
            raise UnsafeLayer(name, f"hard link target {member.linkname!r} is not in this layer")
        src_fd, _ = resolved
        try:
            st = _lstat(link[-1], src_fd)
            if st is None:
                raise UnsafeLayer(name, f"hard link target {member.linkname!r} is not in "
                                        "this layer")
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeLayer(name, f"hard link to the directory {member.linkname!r} refused")
            if existing is not None:
                if existing.st_ino == st.st_ino and existing.st_dev == st.st_dev:
                    return
                _remove(parent_fd, base, existing)
            os.link(link[-1], base, src_dir_fd=src_fd, dst_dir_fd=parent_fd,
                    follow_symlinks=False)
        finally:
            os.close(src_fd)

    def _whiteout(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        name = member.name
        base = parts[-1]
        if base == WHITEOUT_OPAQUE:
            self._opaque(member, parts[:-1])
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not content
        victim = base[len(WHITEOUT_PREFIX):]
        if not victim or victim in (".", ".."):
            raise UnsafeLayer(name, "a whiteout that names nothing")
        if self.whiteouts is Whiteouts.APPLY:
            resolved = self.resolve_dir(parts[:-1], name, create=False)
            if resolved is None:
                return
            fd, _ = resolved
            try:
                st = _lstat(victim, fd)
                if st is not None:
                    _remove(fd, victim, st)
            finally:
                os.close(fd)
            return
        # overlay: a 0/0 character device, where a lower layer has something to hide
        resolved = self.resolve_dir(parts[:-1], name, create=True)
        assert resolved is not None
        fd, done = resolved
        try:
            st = _lstat(victim, fd)
            if st is not None:
                _remove(fd, victim, st)
            if self._lower_lookup(done + [victim]) is not None:
                os.mknod(victim, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=fd)
        finally:
            os.close(fd)

    def _opaque(self, member: tarfile.TarInfo, dir_parts: list[str]) -> None:
        name = member.name
        resolved = self.resolve_dir(dir_parts, name, create=self.whiteouts is Whiteouts.OVERLAY)
        if resolved is None:
            return
        fd, done = resolved
        try:
            if self.whiteouts is Whiteouts.OVERLAY:
                found = self._lower_lookup(done) if done else None
                if found is not None and stat.S_ISDIR(found[1].st_mode):
                    dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                    try:
                        os.setxattr(dfd, self.overlay_prefix + "opaque", b"y")
                    finally:
                        os.close(dfd)
                return
            self._clear_untouched(fd, tuple(done))
        finally:
            os.close(fd)

    def _clear_untouched(self, fd: int, at: tuple[str, ...]) -> None:
        """Remove what lower layers put below ``at``, keeping what this layer made."""
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        try:
            entries = os.listdir(dfd)
        finally:
            os.close(dfd)
        for entry in entries:
            path = at + (entry,)
            st = _lstat(entry, fd)
            if st is None:
                continue
            if path not in self.touched:
                _remove(fd, entry, st)
            elif stat.S_ISDIR(st.st_mode):
                sub = os.open(entry, _DIR_FLAGS, dir_fd=fd)
                try:
                    self._clear_untouched(sub, path)
                finally:
                    os.close(sub)

    # -- metadata --------------------------------------------------------------------

    def _ids(self, member: tarfile.TarInfo) -> tuple[int, int]:
        uid, gid = member.uid, member.gid
        if self.id_shift is not None:
            uid = self.id_shift.uid(uid, member.name)
            gid = self.id_shift.gid(gid, member.name)
        return uid, gid

    def _xattr_items(self, member: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
        items = []
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                items.append((key[len("SCHILY.xattr."):],
                              value.encode("utf-8", "surrogateescape")))
            elif key.startswith("LIBARCHIVE.xattr."):
                import base64
                import urllib.parse
                xname = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
                items.append((xname, base64.b64decode(value + "=" * (-len(value) % 4))))
        if len(items) > self.limits.max_xattrs:
            raise UnsafeLayer(member.name, f"{len(items)} xattrs, more than the "
                                           f"{self.limits.max_xattrs} allowed")
        for key, raw in items:
            if len(raw) > self.limits.max_xattr_size:
                raise UnsafeLayer(member.name, f"xattr {key} of {len(raw)} bytes is more than "
                                               f"the {self.limits.max_xattr_size} allowed")
            if key.startswith(("trusted.overlay.", "user.overlay.")):
                continue  # overlayfs's own: never taken from a layer
            yield key, raw

    def _owner_and_xattrs(self, fd: int, member: tarfile.TarInfo) -> None:
        if self.chown:
            os.fchown(fd, *self._ids(member))
        if self.xattrs:
            for key, value in self._xattr_items(member):
                try:
                    os.setxattr(fd, key, value)
                except OSError as e:
                    if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                        raise

    def _link_metadata(self, parent_fd: int, base: str, member: tarfile.TarInfo) -> None:
        if self.chown:
            os.chown(base, *self._ids(member), dir_fd=parent_fd, follow_symlinks=False)
        os.utime(base, ns=(_ns(member.mtime), _ns(member.mtime)), dir_fd=parent_fd,
                 follow_symlinks=False)

    def _path_metadata(self, fd: int, member: tarfile.TarInfo) -> None:
        """Owner, mode and mtime of a device or fifo through an O_PATH fd."""
        proc = f"/proc/self/fd/{fd}"
        if self.chown:
            os.chown(proc, *self._ids(member))
        os.chmod(proc, member.mode & 0o7777)
        os.utime(proc, ns=(_ns(member.mtime), _ns(member.mtime)))

    def finish(self) -> None:
        """Modes and mtimes of directories, deepest first (children change a dir's mtime)."""
        for parts, member in sorted(self.dirs, key=lambda d: len(d[0]), reverse=True):
            try:
                resolved = self.resolve_dir(parts, member.name, create=False)
            except UnsafeLayer:
                continue
            if resolved is None:
                continue  # removed again later in the layer
            fd, _ = resolved
            try:
                dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            finally:
                os.close(fd)
            try:
                if not parts:
                    self._owner_and_xattrs(dfd, member)
                os.fchmod(dfd, member.mode & 0o7777)
                os.utime(dfd, ns=(_ns(member.mtime), _ns(member.mtime)))
            finally:
                os.close(dfd)


def _ns(mtime: float) -> int:
    return int(mtime * 1_000_000_000)


def _listxattr(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []


def apply_layer(target: str, stream: BinaryIO, *,
                whiteouts: Whiteouts | str = Whiteouts.APPLY,
                lowers: Sequence[str] = (),
                devices: Devices | str = Devices.REFUSE,
                id_shift: IdShift | None = None,
                chown: bool | None = None,
                xattrs: bool = True,
                limits: Limits = Limits(),
                expected_diff_id: Digest | None = None,
                overlay_xattr_prefix: str = OVERLAY_XATTR_PREFIX) -> ApplyResult:
    """Apply the layer read from ``stream`` to the directory ``target``.

    ``whiteouts``: APPLY (``target`` holds the lower layers) or OVERLAY (``target``
    is a fresh upper directory over ``lowers``, top first). ``chown`` defaults to
    whether we are root. Raises UnsafeLayer (an InvalidArgument) for a refused
    member, DigestMismatch when the diff_id is not ``expected_diff_id``, and
    InvalidArgument for a corrupt stream.
    """
    wo = Whiteouts(whiteouts)
    dev = Devices(devices)
    if not os.path.isdir(target):
        raise InvalidArgument(f"cannot apply a layer to {target}: not a directory")
    applier = _Applier(target, whiteouts=wo, lowers=lowers if wo is Whiteouts.OVERLAY else (),
                       devices=dev, id_shift=id_shift,
                       chown=os.geteuid() == 0 if chown is None else chown,
                       xattrs=xattrs, limits=limits, overlay_prefix=overlay_xattr_prefix)
    compression = "none"
    try:
        try:
            tar_stream, compression = open_layer(stream)
            hashing = HashingReader(tar_stream)
            info_cls = type("_LimitedTarInfo", (_BoundedTarInfo,),
                            {"max_header": limits.max_header})
            count = 0
            with tarfile.open(fileobj=hashing, mode="r|", tarinfo=info_cls,  # type: ignore[call-overload]
                              encoding="utf-8", errors="surrogateescape") as tf:
                for member in tf:
                    count += 1
                    if count > limits.max_members:
                        raise UnsafeLayer(member.name, f"the layer has more than "
                                                       f"{limits.max_members} members")
                    applier.apply(member, tf)
            hashing.drain()  # the zero blocks after the end marker count in the diff_id
            applier.finish()
        except _corrupt_errors() as e:
            raise InvalidArgument(f"layer ({compression}) is not a valid tar stream: "
                                  f"{e or type(e).__name__}") from None
    finally:
        applier.close()
    diff_id = hashing.digest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise DigestMismatch(f"layer has diff_id {diff_id}, but the image config says "
                             f"{expected_diff_id}")
    return ApplyResult(diff_id, hashing.size, count, compression, tuple(applier.skipped))


def diff_id_of(stream: BinaryIO) -> tuple[Digest, int, str]:
    """The diff_id of a layer (sha256 of its uncompressed tar), its size, its compression."""
    try:
        tar_stream, compression = open_layer(stream)
        hashing = HashingReader(tar_stream)
        hashing.drain()
    except _corrupt_errors() as e:
        raise InvalidArgument(f"layer is corrupt: {e or type(e).__name__}") from None
    return hashing.digest(), hashing.size, compression


def apply_to_mounts(mounts: Sequence[Mount], stream: BinaryIO, **kw: Any) -> ApplyResult:
    """Apply a layer to an active snapshot, given as the mounts its snapshotter returned.

    A single read-write bind mount is applied to its source directly (whiteouts
    applied); an overlay mount to its upper directory in overlay form, over its
    lower directories. Anything else is mounted on a temporary directory first.
    """
    if len(mounts) == 1:
        m = mounts[0]
        if m.is_bind and not m.readonly and not m.target:
            return apply_layer(m.source, stream, whiteouts=Whiteouts.APPLY, **kw)
        if m.type == "overlay" and m.option("upperdir") and not m.target:
            lowers = (m.option("lowerdir") or "").split(":")
            return apply_layer(m.option("upperdir") or "", stream, whiteouts=Whiteouts.OVERLAY,
                               lowers=[x for x in lowers if x], **kw)
    from hutch.storage.mount import mounted  # only for unusual drivers
    with mounted(mounts) as root:
        return apply_layer(root, stream, whiteouts=Whiteouts.APPLY, **kw)


@dataclass
class UnpackedImage:
    """The committed snapshot of each layer stack of an image (by chain id)."""

    chain_ids: list[Digest] = field(default_factory=list)
    applied: int = 0  # layers applied now (the others were there already)

    @property
    def top(self) -> str | None:
        return str(self.chain_ids[-1]) if self.chain_ids else None


def unpack_image(content: ContentStore, snapshotter: Snapshotter, image: ResolvedImage,
                 **kw: Any) -> UnpackedImage:
    """Make sure a committed snapshot exists for each layer stack of ``image``.

    Snapshots are named by chain id, so images that share base layers share
    their snapshots, and a layer already unpacked (by anyone) is not unpacked
    again. Each layer is applied to a fresh active snapshot and committed; on
    any failure that snapshot is removed. ``kw`` goes to ``apply_layer``.
    Returns the chain ids: prepare a container's root with the last as parent.
    """
    import secrets

    from hutch.errors import AlreadyExists, NotFound

    diff_ids = image.config.diff_ids
    result = UnpackedImage(chain_ids(diff_ids))
    parent: str | None = None
    for layer, diff_id, chain_id in zip(image.layers, diff_ids, result.chain_ids):
        name = str(chain_id)
        try:
            snapshotter.stat(name)
            parent = name
            continue
        except NotFound:
            pass
        key = f"extract-{secrets.token_hex(6)} {name}"
        mounts = snapshotter.prepare(key, parent, labels={"hutch.unpack.chain": name})
        try:
            with content.open(layer.digest) as f:
                apply_to_mounts(mounts, f, expected_diff_id=diff_id, **kw)
            snapshotter.commit(name, key)
            result.applied += 1
        except AlreadyExists:
            snapshotter.remove(key)  # another process unpacked the same stack meanwhile
        except BaseException as e:
            try:
                snapshotter.remove(key)
            except Exception as cleanup:  # noqa: BLE001 (reported with the first error)
                e.add_note(f"removing the snapshot {key!r} failed too: {cleanup}")
            raise
        parent = name
    return result


# --- dry run: the applier's checks, without writing anything ---------------------------------

@dataclass
class ScanResult:
    """What ``scan_layer`` found: the layer's diff_id and every problem (empty: safe)."""

    diff_id: Digest | None = None
    size: int = 0
    members: int = 0
    compression: str = "none"
    problems: list[str] = field(default_factory=list)


class LayerScanner:
    """Runs the checks of ``apply_layer`` over a stack of layers on a tree held in memory.

    The tree carries over from one layer to the next (whiteouts remove from it), so
    a symlink a lower layer made is seen when a member of an upper one is written
    through it, as it would be when applying. Unlike the applier, a refused member
    does not stop the scan: every problem is listed (up to ``max_problems`` a layer).
    Hard links must name a file of the same layer, as overlay (the default) needs.
    """

    def __init__(self, devices: Devices | str = Devices.REFUSE, limits: Limits = Limits(),
                 max_problems: int = 100) -> None:
        self.devices = Devices(devices)
        self.limits = limits
        self.max_problems = max_problems
        # path -> (kind, link target, layer number): kind is dir, file, symlink, other
        self.tree: dict[tuple[str, ...], tuple[str, str, int]] = {}
        self.children: dict[tuple[str, ...], set[str]] = {}
        self.layer = 0

    def _set(self, path: tuple[str, ...], node: tuple[str, str, int]) -> None:
        self.tree[path] = node
        self.children.setdefault(path[:-1], set()).add(path[-1])

    def _resolve(self, comps: Sequence[str], member: str) -> tuple[str, ...] | None:
        """The resolved parent directory of a member (None: a missing parent under a
        file). Raises UnsafeLayer as the applier would."""
        todo = list(comps)
        done: list[str] = []
        links = 0
        while todo:
            name = todo.pop(0)
            if name == "..":
                if not done:
                    raise UnsafeLayer(member, "writing through a symlink on its path "
                                              "refused: it points outside the layer's root")
                done.pop()
                continue
            node = self.tree.get(tuple(done + [name]))
            if node is None or node[0] == "dir":
                done.append(name)
                continue
            if node[0] != "symlink":
                raise UnsafeLayer(member, f"{'/'.join(done + [name])} is not a directory")
            links += 1
            if links > _MAX_SYMLINKS:
                raise UnsafeLayer(member, "too many levels of symbolic links on its path")
            target, where = node[1], "/".join(done + [name])
            todo[:0] = _symlink_parts(member, where, target, len(done))
        return tuple(done)

    def _drop(self, path: tuple[str, ...]) -> None:
        """Forget ``path`` and everything below it."""
        self.tree.pop(path, None)
        if path:
            self.children.get(path[:-1], set()).discard(path[-1])
        stack = [path]
        while stack:
            p = stack.pop()
            for child in self.children.pop(p, ()):
                self.tree.pop(p + (child,), None)
                stack.append(p + (child,))

    def _check(self, member: tarfile.TarInfo, total: list[int]) -> None:
        name = member.name
        parts = _split(name, name, self.limits)
        if member.isfile() and member.size > self.limits.max_file_size:
            raise UnsafeLayer(name, f"a file of {member.size} bytes is more than the "
                                    f"{self.limits.max_file_size} allowed")
        if len(member.pax_headers) > 0:
            xattrs = [k for k in member.pax_headers
                      if k.startswith(("SCHILY.xattr.", "LIBARCHIVE.xattr."))]
            if len(xattrs) > self.limits.max_xattrs:
                raise UnsafeLayer(name, f"{len(xattrs)} xattrs, more than the "
                                        f"{self.limits.max_xattrs} allowed")
            for k in xattrs:
                size = len(member.pax_headers[k].encode("utf-8", "surrogateescape"))
                if size > self.limits.max_xattr_size:
                    raise UnsafeLayer(name, f"xattr {k.split('xattr.', 1)[1]} of {size} bytes "
                                            f"is more than the {self.limits.max_xattr_size} "
                                            "allowed")
        if not parts:
            if not member.isdir():
                raise UnsafeLayer(name, "the root of the layer must be a directory")
            return
        base = parts[-1]
        parent = self._resolve(parts[:-1], name)
        assert parent is not None
        path = parent + (base,)
        if base.startswith(WHITEOUT_PREFIX):
            if base == WHITEOUT_OPAQUE:
                self._drop_below(parent)
                return
            if base.startswith(WHITEOUT_META_PREFIX):
                return
            victim = base[len(WHITEOUT_PREFIX):]
            if not victim or victim in (".", ".."):
                raise UnsafeLayer(name, "a whiteout that names nothing")
            self._drop(parent + (victim,))
            return
        if member.isdir():
            self._drop_unless_dir(path)
            self._set(path, ("dir", "", self.layer))
            return
        if member.islnk():
            link = _split(member.linkname, name, self.limits, what="hard link target")
            if not link:
                raise UnsafeLayer(name, "a hard link to the root directory refused")
            lparent = self._resolve(link[:-1], name)
            node = self.tree.get((lparent or ()) + (link[-1],))
            if node is None or node[2] != self.layer:
                raise UnsafeLayer(name, f"hard link target {member.linkname!r} is not in "
                                        "this layer")
            if node[0] == "dir":
                raise UnsafeLayer(name, f"hard link to the directory {member.linkname!r} "
                                        "refused")
            self._drop(path)
            self._set(path, (node[0], node[1], self.layer))
            return
        if member.ischr() or member.isblk():
            if self.devices is Devices.REFUSE:
                raise UnsafeLayer(name, f"device node ({member.devmajor}, {member.devminor}) "
                                        "refused; devices are not allowed in this layer")
        self._drop(path)
        if member.issym():
            lb = len(member.linkname.encode("utf-8", "surrogateescape"))
            if lb > self.limits.max_link:
                raise UnsafeLayer(name, f"the symlink target is {lb} bytes, more than the "
                                        f"{self.limits.max_link} allowed")
            self._set(path, ("symlink", member.linkname, self.layer))
        elif member.isfile():
            total[0] += member.size
            if total[0] > self.limits.max_total_size:
                raise UnsafeLayer(name, f"the layer's files add up to more than the "
                                        f"{self.limits.max_total_size} bytes allowed")
            self._set(path, ("file", "", self.layer))
        elif member.ischr() or member.isblk() or member.isfifo():
            self._set(path, ("other", "", self.layer))
        else:
            raise UnsafeLayer(name, f"unsupported member type {member.type!r}")

    def _drop_below(self, directory: tuple[str, ...]) -> None:
        """An opaque directory: lower layers' content below it goes."""
        for child in list(self.children.get(directory, ())):
            node = self.tree.get(directory + (child,))
            if node is None or node[2] != self.layer:
                self._drop(directory + (child,))

    def _drop_unless_dir(self, path: tuple[str, ...]) -> None:
        node = self.tree.get(path)
        if node is not None and node[0] != "dir":
            self._drop(path)

    def scan(self, stream: BinaryIO, expected_diff_id: Digest | None = None) -> ScanResult:
        """Check the next layer of the stack, read from ``stream``."""
        self.layer += 1
        result = ScanResult()
        total = [0]

        def problem(text: str) -> None:
            if len(result.problems) < self.max_problems:
                result.problems.append(text)
            elif len(result.problems) == self.max_problems:
                result.problems.append("... more problems not shown")

        hashing: HashingReader | None = None
        try:
            tar_stream, result.compression = open_layer(stream)
            hashing = HashingReader(tar_stream)
            info_cls = type("_LimitedTarInfo", (_BoundedTarInfo,),
                            {"max_header": self.limits.max_header})
            with tarfile.open(fileobj=hashing, mode="r|", tarinfo=info_cls,  # type: ignore[call-overload]
                              encoding="utf-8", errors="surrogateescape") as tf:
                for member in tf:
                    result.members += 1
                    if result.members > self.limits.max_members:
                        problem(str(UnsafeLayer(member.name, f"the layer has more than "
                                                f"{self.limits.max_members} members")))
                        break
                    try:
                        self._check(member, total)
                    except UnsafeLayer as e:
                        problem(str(e))
            hashing.drain()
        except UnsafeLayer as e:  # a header too large to read: the rest cannot be read
            problem(str(e))
        except Unsupported as e:
            problem(str(e))
            return result
        except _corrupt_errors() as e:
            problem(f"layer ({result.compression}) is not a valid tar stream: "
                    f"{e or type(e).__name__}")
            return result
        if hashing is not None:
            result.diff_id, result.size = hashing.digest(), hashing.size
            if expected_diff_id is not None and result.diff_id != expected_diff_id \
                    and not any("extended header" in p for p in result.problems):
                problem(f"layer has diff_id {result.diff_id}, but the image config says "
                        f"{expected_diff_id}")
        return result


def scan_layer(stream: BinaryIO, expected_diff_id: Digest | None = None,
               **kw: Any) -> ScanResult:
    """``apply_layer``'s checks on one layer, writing nothing; lists every problem."""
    return LayerScanner(**kw).scan(stream, expected_diff_id)
