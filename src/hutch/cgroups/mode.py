"""Where the cgroup hierarchies are, and where the caller sits in them.

The parsers take text so that they can be tested on samples; ``read_mounts()`` and
``read_own()`` read the real files. This module imports the stdlib only (no
``typing``), because every ``hutch-runtime`` call starts here.
"""

from __future__ import annotations

from hutch.errors import Unsupported

CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "unified"  # the key of the cgroup2 hierarchy in a manager's paths

MODES = ("unified", "hybrid", "legacy")


class Mount:
    """One cgroup or cgroup2 mount from /proc/self/mountinfo."""

    __slots__ = ("fstype", "mountpoint", "options", "root")

    def __init__(self, mountpoint: str, root: str, fstype: str, options: frozenset[str]) -> None:
        self.mountpoint = mountpoint
        self.root = root  # the directory of the hierarchy that is mounted there
        self.fstype = fstype  # "cgroup" (v1) or "cgroup2"
        self.options = options  # super options: v1 controllers, "name=...", flags

    def __repr__(self) -> str:
        return f"Mount({self.mountpoint!r}, root={self.root!r}, {self.fstype}, {sorted(self.options)})"


class OwnCgroup:
    """One line of /proc/self/cgroup: ``hierarchy-id:controllers:path``."""

    __slots__ = ("controllers", "hierarchy_id", "path")

    def __init__(self, hierarchy_id: int, controllers: tuple[str, ...], path: str) -> None:
        self.hierarchy_id = hierarchy_id
        self.controllers = controllers  # () for the cgroup2 hierarchy
        self.path = path

    def __repr__(self) -> str:
        return f"OwnCgroup({self.hierarchy_id}, {self.controllers}, {self.path!r})"


class Hierarchy:
    """A hierarchy the caller is in, with the mount through which we reach it."""

    __slots__ = ("controllers", "mountpoint", "own", "root", "version")

    def __init__(self, version: int, controllers: tuple[str, ...], mountpoint: str, root: str,
                 own: str) -> None:
        self.version = version
        self.controllers = controllers  # v1: ("cpu", "cpuacct"), ("name=systemd",); v2: ()
        self.mountpoint = mountpoint
        self.root = root
        self.own = own  # the caller's cgroup, as /proc/self/cgroup says

    @property
    def keys(self) -> tuple[str, ...]:
        """The names under which a manager records this hierarchy's directory."""
        return self.controllers if self.version == 1 else (UNIFIED,)

    def dir_of(self, cgroup_path: str) -> str:
        """The directory of ``cgroup_path`` (a path as in /proc/PID/cgroup) under our mount."""
        if not is_below(cgroup_path, self.root):
            raise Unsupported(
                f"cgroup {cgroup_path} of the {','.join(self.keys)} hierarchy is not visible"
                f" through the mount at {self.mountpoint}, which shows only {self.root}")
        rest = cgroup_path[len(self.root):].lstrip("/") if self.root != "/" else cgroup_path.lstrip("/")
        return f"{self.mountpoint}/{rest}" if rest else self.mountpoint

    def __repr__(self) -> str:
        return (f"Hierarchy(v{self.version}, {self.keys}, {self.mountpoint!r}, root={self.root!r},"
                f" own={self.own!r})")


def is_below(path: str, root: str) -> bool:
    """True if ``path`` is ``root`` or inside it (both absolute and normalized)."""
    return root == "/" or path == root or path.startswith(root + "/")


def _unescape(field: str) -> str:
    """Undo the octal escapes (``\\040`` for a space) of mountinfo fields."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts in a /proc/PID/mountinfo text, in order."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3 or rf[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(Mount(_unescape(lf[4]), _unescape(lf[3]), rf[0], frozenset(rf[2].split(","))))
    return mounts


def parse_proc_cgroup(text: str) -> list[OwnCgroup]:
    """The lines of a /proc/PID/cgroup text."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        hid, ctrls, path = line.split(":", 2)  # the path itself may contain ':'
        entries.append(OwnCgroup(int(hid), tuple(c for c in ctrls.split(",") if c), path))
    return entries


def mode_of(mounts: list[Mount]) -> str:
    """Classify the host from its cgroup mounts: "unified", "hybrid" or "legacy"."""
    if any(m.fstype == "cgroup2" and m.mountpoint == CGROUP_ROOT for m in mounts):
        return "unified"
    has_v1 = any(m.fstype == "cgroup" for m in mounts)
    has_v2 = any(m.fstype == "cgroup2" for m in mounts)
    if has_v1:
        return "hybrid" if has_v2 else "legacy"
    if has_v2:
        return "unified"
    raise Unsupported("no cgroup filesystem is mounted (see /proc/self/mountinfo);"
                      f" mount cgroup2 on {CGROUP_ROOT} or run without cgroups")


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def read_mounts() -> list[Mount]:
    return parse_mountinfo(_read("/proc/self/mountinfo"))


def read_own() -> list[OwnCgroup]:
    return parse_proc_cgroup(_read("/proc/self/cgroup"))


def detect_mode() -> str:
    """"unified" | "hybrid" | "legacy", from /proc/self/mountinfo."""
    return mode_of(read_mounts())


def _pick(candidates: list[Mount], own: str) -> Mount | None:
    """Prefer a mount that shows the caller's cgroup, then one under /sys/fs/cgroup."""
    def rank(m: Mount) -> tuple[bool, bool]:
        return (not is_below(own, m.root), not is_below(m.mountpoint, CGROUP_ROOT))
    return min(candidates, key=rank) if candidates else None


def find_hierarchies(mounts: list[Mount], own: list[OwnCgroup]) -> list[Hierarchy]:
    """Match each line of /proc/self/cgroup with a mount of that hierarchy.

    Hierarchies that are not mounted anywhere we can see are left out.
    """
    found = []
    for entry in own:
        if entry.hierarchy_id == 0:
            mount = _pick([m for m in mounts if m.fstype == "cgroup2"], entry.path)
            if mount:
                found.append(Hierarchy(2, (), mount.mountpoint, mount.root, entry.path))
            continue
        wanted = set(entry.controllers)
        mount = _pick([m for m in mounts if m.fstype == "cgroup" and wanted <= m.options],
                      entry.path)
        if mount and wanted:
            found.append(Hierarchy(1, entry.controllers, mount.mountpoint, mount.root, entry.path))
    return found


def primary_own(own: list[OwnCgroup]) -> str:
    """The caller's cgroup in the hierarchy that stands for "its" cgroup.

    That is the v1 freezer hierarchy when there is one (pause and status use it),
    else the cgroup2 hierarchy, else the first listed.
    """
    for e in own:
        if e.hierarchy_id != 0 and "freezer" in e.controllers:
            return e.path
    for e in own:
        if e.hierarchy_id == 0:
            return e.path
    return own[0].path if own else "/"
