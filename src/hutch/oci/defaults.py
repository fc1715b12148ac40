"""The default config.json that `hutch-runtime spec` writes.

It is the one `runc spec` (runc 1.2) writes, key for key and in the same
order, except that the hostname is "hutch" and the cgroup namespace is always
listed (runc adds it only on a cgroup v2 host; this module does no system
calls, and every kernel hutch supports has cgroup namespaces).
"""

from __future__ import annotations

import os

from hutch import OCI_VERSION

DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
)

DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

DEFAULT_CAPABILITIES: tuple[str, ...] = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")

DEFAULT_ENV: tuple[str, ...] = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "TERM=xterm",
)

DEFAULT_HOSTNAME = "hutch"


def _mount(destination: str, type_: str, source: str, *options: str) -> dict[str, object]:
    mount: dict[str, object] = {"destination": destination, "type": type_, "source": source}
    if options:
        mount["options"] = list(options)
    return mount


def default_spec(rootless: bool = False, uid: int | None = None,
                 gid: int | None = None) -> dict[str, object]:
    """A fresh default config (a new dict each call; callers may change it).

    ``rootless`` gives what `runc spec --rootless` writes: a user namespace
    mapping container root to ``uid``/``gid`` (default: the caller's effective
    ids, as runc uses), no network namespace, no uid=/gid= mount options, /sys
    bind-mounted from the host instead of a new sysfs (a user namespace cannot
    mount sysfs without its own network namespace), and no cgroup resources.
    """
    caps = list(DEFAULT_CAPABILITIES)
    mounts = [
        _mount("/proc", "proc", "proc"),
        _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        _mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance",
               "ptmxmode=0666", "mode=0620", "gid=5"),
        _mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777",
               "size=65536k"),
        _mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        _mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime",
               "ro"),
    ]
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    linux: dict[str, object] = {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": namespaces,
        "maskedPaths": list(DEFAULT_MASKED_PATHS),
        "readonlyPaths": list(DEFAULT_READONLY_PATHS),
    }
    spec: dict[str, object] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": list(DEFAULT_ENV),
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": DEFAULT_HOSTNAME,
        "mounts": mounts,
        "linux": linux,
    }
    if rootless:
        _make_rootless(linux, namespaces, mounts,
                       os.geteuid() if uid is None else uid,
                       os.getegid() if gid is None else gid)
    return spec


def _make_rootless(linux: dict[str, object], namespaces: list[dict[str, str]],
                   mounts: list[dict[str, object]], uid: int, gid: int) -> None:
    namespaces[:] = [ns for ns in namespaces if ns["type"] not in ("network", "user")]
    namespaces.append({"type": "user"})
    for i, mount in enumerate(mounts):
        if mount["destination"] == "/sys":
            mounts[i] = _mount("/sys", "none", "/sys", "rbind", "nosuid", "noexec", "nodev", "ro")
            continue
        options = mount.get("options")
        if isinstance(options, list):
            mount["options"] = [o for o in options if not o.startswith(("uid=", "gid="))]
    # runc drops the whole resources object, and its key order puts the id
    # mappings first in "linux".
    masked, readonly = linux["maskedPaths"], linux["readonlyPaths"]
    linux.clear()
    linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
    linux["namespaces"] = namespaces
    linux["maskedPaths"] = masked
    linux["readonlyPaths"] = readonly
