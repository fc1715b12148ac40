"""Tests for hutch.oci.defaults: the config `hutch-runtime spec` writes."""

from __future__ import annotations

import os

from hutch import OCI_VERSION
from hutch.oci.defaults import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, default_spec

CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def mount_at(spec: dict, destination: str) -> dict:
    (mount,) = [m for m in spec["mounts"] if m["destination"] == destination]
    return mount


def test_top_level_keys_in_runc_order() -> None:
    assert list(default_spec()) == ["ociVersion", "process", "root", "hostname", "mounts",
                                    "linux"]


def test_version_and_root() -> None:
    spec = default_spec()
    assert spec["ociVersion"] == OCI_VERSION == "1.2.0"
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert spec["hostname"] == "hutch"


def test_process() -> None:
    assert default_spec()["process"] == {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"],
        "cwd": "/",
        "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }


def test_mounts() -> None:
    assert default_spec()["mounts"] == [
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
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def test_linux() -> None:
    linux = default_spec()["linux"]
    assert list(linux) == ["resources", "namespaces", "maskedPaths", "readonlyPaths"]
    assert linux["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "network", "ipc", "uts",
                                                        "mount", "cgroup"]
    assert all(list(n) == ["type"] for n in linux["namespaces"])
    assert linux["maskedPaths"] == [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/proc/scsi"]
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"]
    assert linux["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    assert linux["readonlyPaths"] == list(DEFAULT_READONLY_PATHS)


def test_each_call_returns_a_fresh_spec() -> None:
    a = default_spec()
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    a["linux"]["maskedPaths"].clear()
    a["mounts"][1]["options"].append("ro")
    b = default_spec()
    assert b["process"]["capabilities"]["bounding"] == CAPS
    assert b["linux"]["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    assert "ro" not in mount_at(b, "/dev")["options"]


def test_capability_lists_are_not_shared() -> None:
    caps = default_spec()["process"]["capabilities"]
    caps["effective"].remove("CAP_KILL")
    assert caps["bounding"] == CAPS and caps["permitted"] == CAPS


def test_rootless_namespaces_and_mappings() -> None:
    linux = default_spec(rootless=True, uid=1000, gid=1001)["linux"]
    assert list(linux) == ["uidMappings", "gidMappings", "namespaces", "maskedPaths",
                           "readonlyPaths"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1}]
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "cgroup",
                                                        "user"]
    assert "resources" not in linux


def test_rootless_defaults_to_the_callers_ids() -> None:
    linux = default_spec(rootless=True)["linux"]
    assert linux["uidMappings"][0]["hostID"] == os.geteuid()
    assert linux["gidMappings"][0]["hostID"] == os.getegid()


def test_rootless_mounts() -> None:
    spec = default_spec(rootless=True, uid=1000, gid=1000)
    assert mount_at(spec, "/sys") == {"destination": "/sys", "type": "none", "source": "/sys",
                                      "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    assert mount_at(spec, "/dev/pts")["options"] == ["nosuid", "noexec", "newinstance",
                                                     "ptmxmode=0666", "mode=0620"]
    assert [m["destination"] for m in spec["mounts"]] == [
        m["destination"] for m in default_spec()["mounts"]]
    # Only the sysfs mount and the gid= option change.
    for mine, theirs in zip(spec["mounts"], default_spec()["mounts"], strict=True):
        if mine["destination"] not in ("/sys", "/dev/pts"):
            assert mine == theirs


def test_rootless_keeps_process_and_root() -> None:
    plain, rootless = default_spec(), default_spec(rootless=True, uid=5, gid=5)
    assert rootless["process"] == plain["process"]
    assert rootless["root"] == plain["root"]
    assert rootless["hostname"] == plain["hostname"]
