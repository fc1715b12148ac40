"""OCI bundles for tests: a copied root file system and a config.json to edit.

The default config is written out here on purpose, not taken from hutch.oci:
the tests check the runtime against the spec, so they must not share its
defaults. It is what ``runc spec`` prints, except: terminal false, a writable
root, no cgroup mount, hostname "hutch-test" and a few more capabilities that
tests need (chown, setuid...).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What runc 1.1's `spec` writes, less "-dev": every runtime here accepts it, while
# crun 1.8 (Debian 12) refuses "1.2.0" ("unknown version specified").
OCI_VERSION = "1.0.2"

CAPABILITIES = [
    "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE",  # runc spec's default
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID",
    "CAP_SYS_CHROOT",
]

MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/proc/scsi",
]

READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

_DEFAULT: dict[str, Any] = {
    "ociVersion": OCI_VERSION,
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: list(CAPABILITIES) for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": False},
    "hostname": "hutch-test",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
    },
}


def default_config(args: list[str] | None = None) -> dict[str, Any]:
    """A fresh copy of the default config (the caller may change it freely)."""
    config = copy.deepcopy(_DEFAULT)
    if args is not None:
        config["process"]["args"] = list(args)
    return config


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` into ``base`` in place: dicts recursively, other values replace,
    None deletes the key."""
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


@dataclass
class Bundle:
    """A bundle directory: ``path/config.json`` and ``path/rootfs``."""

    path: Path
    config: dict[str, Any] = field(default_factory=default_config)

    @property
    def rootfs(self) -> Path:
        return self.path / str(self.config["root"]["path"])

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def write(self) -> Path:
        """Write config.json atomically (tests may edit ``config`` and write again)."""
        tmp = self.path / ".config.json.tmp"
        tmp.write_text(json.dumps(self.config, indent=2) + "\n")
        os.replace(tmp, self.config_path)
        return self.config_path


def copy_rootfs(template: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Copy a root file system, symlinks as symlinks; files are real copies (no
    hardlinks), so a container that writes to its busybox cannot change the template."""
    shutil.copytree(template, dest, symlinks=True, copy_function=shutil.copy2)


def make_bundle(directory: str | os.PathLike[str], rootfs_template: str | os.PathLike[str],
                args: list[str] | None = None, **overrides: Any) -> Bundle:
    """Make a bundle in ``directory`` (created if missing) and write its config.json.

    ``overrides`` are merged into the default config (see :func:`merge`), e.g.
    ``hostname="x"`` or ``linux={"cgroupsPath": "a/b"}``.
    """
    path = Path(directory).absolute()
    path.mkdir(parents=True, exist_ok=True)
    bundle = Bundle(path, merge(default_config(args), overrides))
    copy_rootfs(rootfs_template, bundle.rootfs)
    bundle.write()
    return bundle
