"""Probes of what the host can do, for gating tests by marker.

Each probe returns None when the host has the capability, or a reason naming
what is missing (the text a skipped test shows). Results are cached: the host
does not change during a test session.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

CRIU_MIN = (4, 1)


@dataclass(frozen=True)
class CgroupMount:
    """One cgroup hierarchy as /proc/self/mountinfo shows it."""

    mountpoint: str
    root: str  # the hierarchy's path that is mounted there
    version: int  # 1 or 2
    options: frozenset[str]  # super options: v1 names its controllers (cpu, name=systemd...)


def unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (\\040 for a space...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[CgroupMount]:
    """Every cgroup (v1) and cgroup2 mount of this mount namespace."""
    mounts = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, super_opts = fields[sep + 1], fields[sep + 3]
            if fstype in ("cgroup", "cgroup2"):
                mounts.append(CgroupMount(unescape(fields[4]), unescape(fields[3]),
                                          2 if fstype == "cgroup2" else 1,
                                          frozenset(super_opts.split(","))))
    return mounts


def own_cgroup_dir(mount: CgroupMount, proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    """The directory of this process's own cgroup in ``mount``, if it is visible there."""
    with open(proc_cgroup) as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            names = frozenset(c for c in ctrls.split(",") if c)
            if mount.version == 2 and hid == "0" or \
                    mount.version == 1 and names and names <= mount.options:
                rel = os.path.relpath(path, mount.root)
                return None if rel.startswith("..") else os.path.normpath(
                    os.path.join(mount.mountpoint, rel))
    return None


def cgroup_mode() -> str:
    """"legacy" (v1 only), "hybrid" (v1 plus a v2 mount) or "unified" (v2 only)."""
    versions = {m.version for m in cgroup_mounts()}
    if versions == {2}:
        return "unified"
    return "hybrid" if 2 in versions else "legacy"


@functools.cache
def probe_root() -> str | None:
    euid = os.geteuid()
    return None if euid == 0 else f"needs root (euid is {euid})"


@functools.cache
def probe_userns() -> str | None:
    """Can an unprivileged user make a user namespace? (Tried, not guessed.)"""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare(1) not found: install util-linux"
    argv = [unshare, "--user", "true"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            return "setpriv(1) not found: install util-linux"
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        return ("unprivileged user namespaces are not available "
                f"(`unshare --user true` as uid 65534: {res.stderr.strip()})")
    return None


def _filesystems() -> set[str]:
    with open("/proc/filesystems") as f:
        return {line.split()[-1] for line in f if line.strip()}


def _module_available(name: str) -> bool:
    base = f"/lib/modules/{os.uname().release}"
    for index in ("modules.builtin", "modules.dep"):
        try:
            with open(os.path.join(base, index)) as f:
                if any(f"/{name}.ko" in line for line in f):
                    return True
        except OSError:
            continue
    return False


@functools.cache
def probe_overlay() -> str | None:
    return None if "overlay" in _filesystems() else "overlayfs is not in /proc/filesystems"


@functools.cache
def probe_btrfs() -> str | None:
    if shutil.which("mkfs.btrfs") is None:
        return "mkfs.btrfs not found: install btrfs-progs"
    if "btrfs" not in _filesystems() and not _module_available("btrfs"):
        return "the kernel has no btrfs (not in /proc/filesystems, no module)"
    return None


@functools.cache
def probe_criu() -> str | None:
    criu = shutil.which("criu")
    if criu is None:
        return f"criu not found (needs >= {'.'.join(map(str, CRIU_MIN))})"
    out = subprocess.run([criu, "--version"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL).stdout
    m = re.search(r"Version:\s*(\d+)\.(\d+)", out)
    if m is None:
        return f"cannot read the version of {criu} from {out.strip()!r}"
    version = (int(m.group(1)), int(m.group(2)))
    if version < CRIU_MIN:
        return (f"criu {version[0]}.{version[1]} is too old "
                f"(needs >= {'.'.join(map(str, CRIU_MIN))})")
    return None


def _binary(name: str, package: str) -> Callable[[], str | None]:
    @functools.cache
    def probe() -> str | None:
        return None if shutil.which(name) else f"{name} not found: install {package}"
    probe.__name__ = f"probe_{name}"
    return probe


probe_nft = _binary("nft", "nftables")
probe_podman = _binary("podman", "podman")


@functools.cache
def probe_cgroup_v1() -> str | None:
    mode = cgroup_mode()
    return None if mode in ("legacy", "hybrid") else f"needs cgroup v1 (host is {mode})"


@functools.cache
def probe_cgroup_v2() -> str | None:
    mode = cgroup_mode()
    return None if mode == "unified" else f"needs a pure cgroup v2 host (host is {mode})"


# Marker name -> probe. conftest gates every marker listed here.
PROBES: dict[str, Callable[[], str | None]] = {
    "root": probe_root,
    "userns": probe_userns,
    "overlay": probe_overlay,
    "btrfs": probe_btrfs,
    "criu": probe_criu,
    "nft": probe_nft,
    "cgroup_v1": probe_cgroup_v1,
    "cgroup_v2": probe_cgroup_v2,
    "podman": probe_podman,
}
