"""OCI / fstab mount option names and what each does to a mount.

``parse_mount_options`` splits an OCI ``mounts[].options`` list into what each
step of mounting needs: MS_* flags for mount(2), propagation changes for the
calls that follow it, mount_setattr(2) attributes for the read-only /
nosuid / ... remount of a bind mount, hutch extensions (tmpcopyup, idmap), and
the filesystem-specific rest that the kernel gets as the data string.

Later options win over earlier ones ("ro,rw" is read-write), as in mount(8).
Pure data: no system calls.
"""

from __future__ import annotations

from hutch.linux.constants import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

# mount_setattr(2) attributes that hutch.linux.constants does not have yet
# (include/uapi/linux/mount.h). The atime mode is a 3-bit field, not flags:
# to change it, clear MOUNT_ATTR__ATIME and set one mode (relatime is 0).
MOUNT_ATTR_RELATIME = 0x00
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x00200000

# name -> (clears the flag?, MS_* flag)
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME),
    "nolazytime": (True, MS_LAZYTIME),
    "nosymfollow": (False, MS_NOSYMFOLLOW),  # kernel 5.10
    "symfollow": (True, MS_NOSYMFOLLOW),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
}

# Per-mount attributes a bind mount only gets through a remount (or
# mount_setattr): name -> (clears the attribute?, MOUNT_ATTR_*).
MOUNT_ATTRS: dict[str, tuple[bool, int]] = {
    "ro": (False, MOUNT_ATTR_RDONLY),
    "rw": (True, MOUNT_ATTR_RDONLY),
    "nosuid": (False, MOUNT_ATTR_NOSUID),
    "suid": (True, MOUNT_ATTR_NOSUID),
    "nodev": (False, MOUNT_ATTR_NODEV),
    "dev": (True, MOUNT_ATTR_NODEV),
    "noexec": (False, MOUNT_ATTR_NOEXEC),
    "exec": (True, MOUNT_ATTR_NOEXEC),
    "nodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "diratime": (True, MOUNT_ATTR_NODIRATIME),
    "nosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "symfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}

# The atime mode: name -> (mode it selects, or None, the mode it cancels).
ATIME_MODES: dict[str, tuple[int | None, int | None]] = {
    "noatime": (MOUNT_ATTR_NOATIME, None),
    "relatime": (MOUNT_ATTR_RELATIME, None),
    "strictatime": (MOUNT_ATTR_STRICTATIME, None),
    "atime": (None, MOUNT_ATTR_NOATIME),
    "norelatime": (None, MOUNT_ATTR_RELATIME),
    "nostrictatime": (None, MOUNT_ATTR_STRICTATIME),
}

# Propagation changes, each a separate mount(2) call after the mount itself.
PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# runtime-spec 1.1 "recursive" options: mount_setattr(AT_RECURSIVE) over the
# whole tree. name -> (clears the attribute?, MOUNT_ATTR_*); the atime ones
# select a mode as in ATIME_MODES.
RECURSIVE_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}
RECURSIVE_ATIME_MODES: dict[str, tuple[int | None, int | None]] = {
    "rnoatime": (MOUNT_ATTR_NOATIME, None),
    "rrelatime": (MOUNT_ATTR_RELATIME, None),
    "rstrictatime": (MOUNT_ATTR_STRICTATIME, None),
    "ratime": (None, MOUNT_ATTR_NOATIME),
    "rnorelatime": (None, MOUNT_ATTR_RELATIME),
    "rnostrictatime": (None, MOUNT_ATTR_STRICTATIME),
}

# Options the runtime acts on itself; the kernel never sees them.
#   tmpcopyup: copy the directory's old contents into a fresh tmpfs mount.
#   idmap / ridmap: an idmapped bind mount (ridmap: the whole tree).
EXTENSIONS: frozenset[str] = frozenset({"tmpcopyup", "idmap", "ridmap"})


def known_options() -> list[str]:
    """Every option name this table knows, sorted (for `features`)."""
    names = set(MOUNT_FLAGS) | set(PROPAGATION) | set(RECURSIVE_ATTRS)
    names |= set(RECURSIVE_ATIME_MODES) | EXTENSIONS
    return sorted(names)


class MountOptions:
    """What a list of mount options asks for, split by the step that does it.

    flags          MS_* flags to pass to mount(2) (MS_BIND and MS_REC included
                   for bind / rbind)
    clear          MS_* flags explicitly cleared ("rw", "suid", "exec", ...)
    propagation    MS_* propagation flags, in the order given
    bind           "bind" or "rbind" was given
    recursive      "rbind" was given
    data           the options the kernel gets as its data string, comma-joined
    extensions     runtime-side options (tmpcopyup, idmap, ridmap), in order
    attr_set       MOUNT_ATTR_* to set when remounting a bind mount
    attr_clr       MOUNT_ATTR_* to clear then (MOUNT_ATTR__ATIME if an atime
                   mode was chosen; the mode itself is then in attr_set)
    rec_attr_set   the same for the recursive options (rro, rnosuid, ...),
    rec_attr_clr   applied with mount_setattr(AT_RECURSIVE)
    """

    __slots__ = ("flags", "clear", "propagation", "bind", "recursive", "data",
                 "extensions", "attr_set", "attr_clr", "rec_attr_set", "rec_attr_clr")

    def __init__(self) -> None:
        self.flags = 0
        self.clear = 0
        self.propagation: list[int] = []
        self.bind = False
        self.recursive = False
        self.data = ""
        self.extensions: list[str] = []
        self.attr_set = 0
        self.attr_clr = 0
        self.rec_attr_set = 0
        self.rec_attr_clr = 0

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"MountOptions({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MountOptions):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)


def _set_bit(on: int, off: int, bit: int, clear: bool) -> tuple[int, int]:
    """Record that ``bit`` is set (or cleared), undoing an earlier opposite choice."""
    if clear:
        return on & ~bit, off | bit
    return on | bit, off & ~bit


def parse_mount_options(options: list[str] | tuple[str, ...] | None) -> MountOptions:
    """Split OCI mount ``options`` into a MountOptions (see its docstring)."""
    result = MountOptions()
    data: list[str] = []
    atime: int | None = None
    rec_atime: int | None = None
    for opt in options or ():
        known = False
        if opt in MOUNT_FLAGS:
            known = True
            clear, flag = MOUNT_FLAGS[opt]
            if flag:
                result.flags, result.clear = _set_bit(result.flags, result.clear, flag, clear)
            if opt == "bind":
                result.bind = True
            elif opt == "rbind":
                result.bind = result.recursive = True
        if opt in MOUNT_ATTRS:
            clear, attr = MOUNT_ATTRS[opt]
            result.attr_set, result.attr_clr = _set_bit(result.attr_set, result.attr_clr,
                                                        attr, clear)
        if opt in ATIME_MODES:
            mode, cancels = ATIME_MODES[opt]
            if mode is not None:
                atime = mode
            elif atime == cancels:
                atime = None
        if known:
            continue
        if opt in PROPAGATION:
            result.propagation.append(PROPAGATION[opt])
        elif opt in RECURSIVE_ATTRS:
            clear, attr = RECURSIVE_ATTRS[opt]
            result.rec_attr_set, result.rec_attr_clr = _set_bit(
                result.rec_attr_set, result.rec_attr_clr, attr, clear)
        elif opt in RECURSIVE_ATIME_MODES:
            mode, cancels = RECURSIVE_ATIME_MODES[opt]
            if mode is not None:
                rec_atime = mode
            elif rec_atime == cancels:
                rec_atime = None
        elif opt in EXTENSIONS:
            if opt not in result.extensions:
                result.extensions.append(opt)
        else:
            data.append(opt)
    if atime is not None:
        result.attr_clr |= MOUNT_ATTR__ATIME
        result.attr_set |= atime
    if rec_atime is not None:
        result.rec_attr_clr |= MOUNT_ATTR__ATIME
        result.rec_attr_set |= rec_atime
    result.data = ",".join(data)
    return result
