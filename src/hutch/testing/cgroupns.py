"""Cgroup namespaces whose cgroup mounts are rooted at our own cgroups.

Peers such as podman put their cgroups at absolute paths (``/libpod_parent``),
which would land at the root of each hierarchy, outside the cgroup the tests
run in. Inside such a namespace the same absolute paths land below our own
cgroups, so the peer runs without touching cgroups we do not own.
"""

from __future__ import annotations

import os

_GENERIC = {"rw", "ro", "relatime", "nosuid", "nodev", "noexec", "seclabel"}

SCRIPT = r"""
set -e
for m in $(awk '$3 == "cgroup" {print $2}' /proc/self/mounts); do
  opts=$(awk -v m="$m" '$2 == m {print $4}' /proc/self/mounts | tr , '\n' |
         grep -v -E '^(rw|ro|relatime|nosuid|nodev|noexec)$' | paste -sd, -)
  umount "$m"
  mount -t cgroup -o "$opts" cgroup "$m"
done
for m in $(awk '$3 == "cgroup2" {print $2}' /proc/self/mounts); do
  umount "$m"
  mount -t cgroup2 cgroup2 "$m"
done
status=0
"$@" || status=$?
for m in $(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts); do
  for d in ${HUTCH_CGROUP_LEFTOVERS:-}; do
    [ -d "$m/$d" ] && find "$m/$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
done
exit $status
"""


def wrap(argv: list[str], leftovers: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv that runs ``argv`` in such a namespace, and the env to add; the
    (empty) cgroup dirs named in ``leftovers`` are removed afterwards."""
    env = {"HUTCH_CGROUP_LEFTOVERS": " ".join(leftovers or [])}
    return (["unshare", "--cgroup", "--mount", "--propagation", "private",
             "sh", "-c", SCRIPT, "sh", *argv], env)


def cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, controller options) of every cgroup mount we see."""
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            _, target, fstype, options = line.split()[:4]
            if fstype in ("cgroup", "cgroup2"):
                opts = ",".join(o for o in options.split(",") if o not in _GENERIC)
                out.append((target, fstype, opts))
    return out


def enter() -> list[str]:
    """Move this process into such a namespace (new cgroup and mount namespaces).

    Returns the mount points of the hierarchies, for cleanup inside the namespace.
    """
    from hutch.linux import constants as C
    from hutch.linux.syscalls import mount, umount2, unshare

    unshare(C.CLONE_NEWCGROUP | C.CLONE_NEWNS)
    mount(None, "/", None, C.MS_REC | C.MS_PRIVATE)
    points = []
    for target, fstype, opts in cgroup_mounts():
        umount2(target, C.MNT_DETACH)
        mount(fstype, target, fstype, 0, opts or None)
        points.append(target)
    return points


def remove_empty(points: list[str], name: str) -> None:
    """rmdir the (empty) cgroup tree ``name`` in each hierarchy, deepest first."""
    for point in points:
        top = os.path.join(point, name)
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
