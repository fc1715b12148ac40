"""The container's file system: spec mounts, /dev, pivot_root, masked and read-only paths.

Runs inside the container's init process, in its new mount namespace, before
and after pivot_root. Every mount target is resolved inside the root file
system (see hutch.linux.safepath) and mounted through an O_PATH descriptor, so a
symlink swapped in during setup cannot redirect a mount onto the host.
"""

from __future__ import annotations

import errno
import os
import stat

from hutch.errors import InvalidArgument
from hutch.linux import constants as C
from hutch.linux.idmap import attach_at_fd
from hutch.linux.mountopts import parse_mount_options
from hutch.linux.safepath import (EscapeError, create_file_in_root, mkdir_all_in_root,
                                  open_in_root)
from hutch.linux.syscalls import mount, pivot_root, umount2

PROPAGATION = {
    "private": C.MS_PRIVATE, "rprivate": C.MS_PRIVATE | C.MS_REC,
    "slave": C.MS_SLAVE, "rslave": C.MS_SLAVE | C.MS_REC,
    "shared": C.MS_SHARED, "rshared": C.MS_SHARED | C.MS_REC,
    "unbindable": C.MS_UNBINDABLE, "runbindable": C.MS_UNBINDABLE | C.MS_REC,
}

# Flags the kernel locks on a mount made in a less privileged user namespace:
# a bind remount must keep them or it fails with EPERM.
_STATVFS_LOCKED = (
    (os.ST_RDONLY, C.MS_RDONLY), (os.ST_NOSUID, C.MS_NOSUID), (os.ST_NODEV, C.MS_NODEV),
    (os.ST_NOEXEC, C.MS_NOEXEC), (os.ST_NOATIME, C.MS_NOATIME),
    (os.ST_NODIRATIME, C.MS_NODIRATIME), (os.ST_RELATIME, C.MS_RELATIME),
)

# The /dev entries every container gets (path, major, minor, mode), as runc makes them.
DEFAULT_DEVICES = (
    ("/dev/null", 1, 3, 0o666), ("/dev/zero", 1, 5, 0o666), ("/dev/full", 1, 7, 0o666),
    ("/dev/random", 1, 8, 0o666), ("/dev/urandom", 1, 9, 0o666), ("/dev/tty", 5, 0, 0o666),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
    ("/proc/kcore", "/dev/core"),
)


def locked_flags(path: str) -> int:
    """The MS_* flags of the mount at ``path`` that a bind remount must keep."""
    f_flag = os.statvfs(path).f_flag
    return sum(ms for st, ms in _STATVFS_LOCKED if f_flag & st)


def _describe(m: dict) -> str:
    return f"mount {m.get('source') or m.get('type')} on {m['destination']}"


class RootfsBuilder:
    """Builds one container's root file system from the spec, in its mount namespace."""

    def __init__(self, spec: dict, rootfs: str, in_userns: bool, cgroup_paths: dict[str, str],
                 cgroup_ns: bool, idmapped: dict[int, int] | None = None) -> None:
        self.spec = spec
        # mount index -> a detached idmapped clone of its source (hutch.runtime.idmapped)
        self.idmapped = idmapped or {}
        self.rootfs = rootfs
        self.in_userns = in_userns
        self.cgroup_paths = cgroup_paths
        self.cgroup_ns = cgroup_ns
        linux = spec.get("linux") or {}
        self.linux = linux
        self.dev_is_tmpfs = False

    # -- before pivot_root ------------------------------------------------------------

    def prepare(self) -> None:
        """Propagation, the rootfs bind mount, spec mounts, devices. Before pivot_root."""
        prop = self.linux.get("rootfsPropagation") or "rslave"
        # Never let our mounts propagate back to the host: private/slave first.
        root_flag = PROPAGATION[prop]
        if root_flag & C.MS_SHARED:
            root_flag = C.MS_SLAVE | C.MS_REC  # shared is applied to the new root below
        mount(None, "/", None, root_flag)
        _make_parent_mount_private(self.rootfs)
        mount(self.rootfs, self.rootfs, None, C.MS_BIND | C.MS_REC)
        if PROPAGATION[prop] & (C.MS_SHARED | C.MS_PRIVATE | C.MS_UNBINDABLE):
            mount(None, self.rootfs, None, PROPAGATION[prop])
        self._root_fd = os.open(self.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._pinned: list[int] = []
        try:
            for i, m in enumerate(self.spec.get("mounts") or []):
                try:
                    self._mount_one(m, self.idmapped.get(i))
                except EscapeError as e:
                    raise InvalidArgument(f"{_describe(m)}: {e.strerror}") from None
                except OSError as e:
                    if e.errno == errno.ENODEV and m.get("type") not in (None, "", "bind"):
                        reason = f"unknown file system type {m['type']!r}"
                    else:
                        reason = os.strerror(e.errno) if e.errno else str(e)
                    raise OSError(e.errno, f"{_describe(m)}: {reason}") from None
                finally:
                    for fd in self._pinned:
                        os.close(fd)
                    self._pinned.clear()
        finally:
            os.close(self._root_fd)
        if self.dev_is_tmpfs:
            self._default_devices()
        for dev in self.linux.get("devices") or []:
            self._make_device(dev)
        cwd = (self.spec.get("process") or {}).get("cwd") or "/"
        mkdir_all_in_root(self.rootfs, cwd)

    def _target(self, m: dict, source_is_file: bool) -> str:
        """Create the mount point and return a /proc/self/fd path that pins it.

        Mounting on the descriptor rather than the path means a symlink swapped
        in after the check cannot move the mount elsewhere.
        """
        dest = m["destination"]
        if source_is_file:
            self._host_target = create_file_in_root(self.rootfs, dest)
        else:
            self._host_target = mkdir_all_in_root(self.rootfs, dest)
        fd = open_in_root(self._root_fd, dest)
        self._pinned.append(fd)
        return f"/proc/self/fd/{fd}"

    def _reopen(self, dest: str) -> str:
        """A fresh /proc/self/fd path for ``dest``: after a mount it names the new mount."""
        fd = open_in_root(self._root_fd, dest)
        self._pinned.append(fd)
        return f"/proc/self/fd/{fd}"

    def _mount_one(self, m: dict, idmapped_fd: int | None = None) -> None:
        mtype = m.get("type") or ""
        source = m.get("source") or ""
        opts = parse_mount_options(m.get("options") or [])
        is_bind = opts.bind or mtype == "bind"
        if idmapped_fd is not None:
            st = os.fstat(idmapped_fd)
            self._target(m, not stat.S_ISDIR(st.st_mode))
            attach_at_fd(idmapped_fd, self._pinned[-1])
            self._bind_flags(opts, m["destination"])
        elif is_bind:
            if not os.path.isabs(source):
                source = os.path.join(self.spec.get("_bundle", ""), source)
            st = os.stat(source)
            target = self._target(m, not stat.S_ISDIR(st.st_mode))
            self._bind(source, target, opts, m["destination"])
        elif mtype == "cgroup":
            self._mount_cgroup(self._target(m, False), self._host_target, opts)
            return
        else:
            target = self._target(m, False)
            if m["destination"] == "/dev" and mtype == "tmpfs":
                self.dev_is_tmpfs = True
            flags = opts.flags
            try:
                mount(source or mtype, target, mtype, flags, opts.data or None)
            except PermissionError:
                if mtype == "sysfs":
                    # A sysfs needs a network namespace owned by our user namespace;
                    # without one, show the host's /sys read-only as runc does.
                    self._bind("/sys", target, parse_mount_options(["rbind", "nosuid", "noexec",
                                                                     "nodev", "ro"]),
                               m["destination"])
                    return
                if mtype == "mqueue" and self.in_userns:
                    self._bind("/dev/mqueue", target, opts, m["destination"])
                    return
                raise
        if opts.propagation:
            target = self._reopen(m["destination"])
        for prop in opts.propagation:
            mount(None, target, None, prop)

    def _bind(self, source: str, target: str, opts: object, dest: str) -> None:
        flags = C.MS_BIND | (C.MS_REC if opts.recursive else 0)  # type: ignore[attr-defined]
        mount(source, target, None, flags)
        self._bind_flags(opts, dest)

    def _bind_flags(self, opts: object, dest: str) -> None:
        """Apply a bind mount's flags (ro, nosuid...) by remounting it."""
        wanted = opts.flags & ~(C.MS_BIND | C.MS_REC | C.MS_REMOUNT)  # type: ignore[attr-defined]
        if wanted:
            target = self._reopen(dest)
            keep = locked_flags(target)
            flags = C.MS_BIND | C.MS_REMOUNT | wanted | (keep & ~opts.clear)  # type: ignore
            mount(None, target, None, flags)

    def _mount_cgroup(self, target: str, host_target: str, opts: object) -> None:
        """Show the container its own cgroups at the target (v1: one dir per hierarchy)."""
        flags = opts.flags  # type: ignore[attr-defined]
        if "unified" in self.cgroup_paths and len(self.cgroup_paths) == 1:
            if self.cgroup_ns:
                mount("cgroup2", target, "cgroup2", flags & ~C.MS_RDONLY)
            else:
                mount(self.cgroup_paths["unified"], target, None, C.MS_BIND)
        else:
            mount("tmpfs", target, "tmpfs", C.MS_NOSUID | C.MS_NODEV | C.MS_NOEXEC, "mode=755")
            for name, host_dir in sorted(self.cgroup_paths.items()):
                if not os.path.isdir(host_dir):
                    continue
                sub = os.path.join(host_target, name.replace("name=", ""))
                os.makedirs(sub, exist_ok=True)
                mount(host_dir, sub, None, C.MS_BIND | C.MS_REC)
                mount(None, sub, None, C.MS_BIND | C.MS_REMOUNT | (flags & ~C.MS_REC)
                      | locked_flags(sub))
        if flags & C.MS_RDONLY:
            mount(None, host_target, None, C.MS_BIND | C.MS_REMOUNT | flags
                  | locked_flags(host_target))

    def _default_devices(self) -> None:
        for path, major, minor, mode in DEFAULT_DEVICES:
            self._make_device({"path": path, "type": "c", "major": major, "minor": minor,
                               "fileMode": mode, "uid": 0, "gid": 0})
        for src, dst in DEV_SYMLINKS:
            link = os.path.join(self.rootfs, dst.lstrip("/"))
            try:
                os.symlink(src, link)
            except FileExistsError:
                pass
        ptmx = os.path.join(self.rootfs, "dev/ptmx")
        try:
            os.unlink(ptmx)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", ptmx)

    def _make_device(self, dev: dict) -> None:
        path = dev["path"]
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[
            dev["type"]]
        mode = dev.get("fileMode", 0o666) & 0o7777
        target = mkdir_all_in_root(self.rootfs, os.path.dirname(path))
        target = os.path.join(target, os.path.basename(path))
        if os.path.lexists(target):
            if os.path.isdir(target) and not os.path.islink(target):
                raise InvalidArgument(f"device {path}: a directory is in the way")
            os.unlink(target)
        if self.in_userns and kind != stat.S_IFIFO:
            # mknod needs CAP_MKNOD in the initial user namespace: bind the host's node.
            host = path
            if not os.path.exists(host):
                raise InvalidArgument(f"device {path}: cannot create device nodes in a user "
                                      "namespace and the host has no such node to bind")
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o000)
            os.close(fd)
            mount(host, target, None, C.MS_BIND)
            return
        dev_t = os.makedev(dev.get("major", 0), dev.get("minor", 0))
        os.mknod(target, kind | mode, dev_t)
        os.chmod(target, mode)  # mknod applies the umask
        os.chown(target, dev.get("uid", 0), dev.get("gid", 0))

    # -- pivot_root ---------------------------------------------------------------------

    def pivot(self, no_pivot: bool) -> None:
        """Make the rootfs the root of the mount namespace and detach the old root."""
        os.chdir(self.rootfs)
        if no_pivot:
            # Moving the rootfs over / means a second chroot from inside still
            # finds the container's rootfs at the top of the namespace.
            mount(self.rootfs, "/", None, C.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            return
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            pivot_root(".", ".")
            # The old root now sits on top of the new one at "/": detach it without
            # letting the unmount propagate to the host.
            os.fchdir(old)
            mount(None, ".", None, C.MS_SLAVE | C.MS_REC)
            umount2(".", C.MNT_DETACH)
        finally:
            os.close(old)
        os.chdir("/")

    # -- after pivot_root ---------------------------------------------------------------

    def finalize(self, readonly_root: bool) -> None:
        """Sysctls, read-only and masked paths, read-only root. After pivot_root."""
        for key, value in (self.linux.get("sysctl") or {}).items():
            path = "/proc/sys/" + key.replace(".", "/")
            try:
                with open(path, "wb") as f:
                    f.write(value.encode())
            except OSError as e:
                raise OSError(e.errno, f"sysctl {key}={value}: {e.strerror}") from None
        for path in self.linux.get("readonlyPaths") or []:
            readonly_path(path)
        for path in self.linux.get("maskedPaths") or []:
            mask_path(path)
        if readonly_root:
            mount(None, "/", None, C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | locked_flags("/"))


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _make_parent_mount_private(rootfs: str) -> None:
    """Make the mount holding the rootfs private when it is shared.

    Otherwise the bind mount of the rootfs would join the host's peer group and
    mounts made in the container would show up on the host (and the other way
    round) whatever rootfsPropagation says, as with a non-recursive "private".
    """
    best, shared = "", False
    with open("/proc/self/mountinfo", "rb") as f:
        for raw in f:
            fields = raw.decode("utf-8", "replace").split()
            point = _unescape(fields[4])
            inside = rootfs == point or rootfs.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best = point
                optional = fields[6:fields.index("-")]
                shared = any(o.startswith("shared:") for o in optional)
    if best and shared:
        mount(None, best, None, C.MS_PRIVATE)


def readonly_path(path: str) -> None:
    try:
        mount(path, path, None, C.MS_BIND | C.MS_REC)
    except FileNotFoundError:
        return
    mount(None, path, None, C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | C.MS_REC
          | locked_flags(path))


def mask_path(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            mount("tmpfs", path, "tmpfs", C.MS_RDONLY, "size=0,mode=0")
        else:
            mount("/dev/null", path, None, C.MS_BIND)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return
        raise
