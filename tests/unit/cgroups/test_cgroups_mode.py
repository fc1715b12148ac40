"""Parsing mountinfo and /proc/self/cgroup, classifying the host, placing the cgroup."""

from __future__ import annotations

import pytest

from hutch.cgroups import build_manager
from hutch.cgroups.mode import (
    Hierarchy,
    find_hierarchies,
    mode_of,
    parse_mountinfo,
    parse_proc_cgroup,
    primary_own,
)
from hutch.cgroups.v1.manager import V1Manager
from hutch.cgroups.v2.manager import V2Manager
from hutch.errors import Unsupported

# The machine these tests were written on: hybrid, and our memory cgroup is elsewhere.
HYBRID_MOUNTINFO = """\
22 1 259:1 / / rw,relatime - ext4 /dev/vda rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/6c96
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""

# A systemd legacy host with co-mounted controllers and shared-subtree optional fields.
LEGACY_MOUNTINFO = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,freezer
"""
LEGACY_CGROUP = """\
5:freezer:/
4:net_cls,net_prio:/
3:cpu,cpuacct:/user.slice
2:perf_event:/
1:name=systemd:/user.slice/user-0.slice/session-1.scope
"""

UNIFIED_MOUNTINFO = """\
24 18 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""
UNIFIED_CGROUP = "0::/user.slice/user-1000.slice/session-3.scope\n"

# Inside a container without a cgroup namespace: the mount shows only our subtree.
NESTED_MOUNTINFO = (
    "700 690 0:27 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n"
    "701 690 0:27 /docker/abc /mnt/with\\040space rw - cgroup2 cgroup2 rw\n"
)


def test_parse_mountinfo_keeps_cgroup_mounts_only() -> None:
    mounts = parse_mountinfo(HYBRID_MOUNTINFO)
    assert [m.mountpoint for m in mounts][:2] == ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct"]
    assert len(mounts) == 10
    assert mounts[-1].fstype == "cgroup2" and mounts[-1].mountpoint == "/sys/fs/cgroup/unified"
    assert "name=systemd" in mounts[-2].options


def test_parse_mountinfo_optional_fields_and_escapes() -> None:
    legacy = parse_mountinfo(LEGACY_MOUNTINFO)
    assert legacy[1].options >= {"cpu", "cpuacct"}
    assert legacy[0].root == "/"
    nested = parse_mountinfo(NESTED_MOUNTINFO)
    assert nested[1].mountpoint == "/mnt/with space"
    assert nested[0].root == "/docker/abc"


def test_parse_proc_cgroup() -> None:
    entries = parse_proc_cgroup(LEGACY_CGROUP + "0::/with:colon\n")
    assert entries[2].hierarchy_id == 3
    assert entries[2].controllers == ("cpu", "cpuacct")
    assert entries[2].path == "/user.slice"
    assert entries[4].controllers == ("name=systemd",)
    assert entries[5].controllers == () and entries[5].path == "/with:colon"


@pytest.mark.parametrize(("text", "mode"), [
    (HYBRID_MOUNTINFO, "hybrid"), (LEGACY_MOUNTINFO, "legacy"), (UNIFIED_MOUNTINFO, "unified"),
    (NESTED_MOUNTINFO, "unified"),
])
def test_mode_of(text: str, mode: str) -> None:
    assert mode_of(parse_mountinfo(text)) == mode


def test_mode_of_nothing_mounted() -> None:
    with pytest.raises(Unsupported, match="no cgroup filesystem"):
        mode_of([])


def test_find_hierarchies_hybrid() -> None:
    hs = find_hierarchies(parse_mountinfo(HYBRID_MOUNTINFO), parse_proc_cgroup(HYBRID_CGROUP))
    by_key = {k: h for h in hs for k in h.keys}
    assert set(by_key) == {"name=systemd", "pids", "blkio", "freezer", "devices", "memory",
                           "cpuset", "cpuacct", "cpu", "unified"}
    assert by_key["memory"].own == "/process_api/6c96"
    assert by_key["unified"].version == 2
    assert by_key["unified"].mountpoint == "/sys/fs/cgroup/unified"


def test_find_hierarchies_skips_unmounted() -> None:
    hs = find_hierarchies(parse_mountinfo(LEGACY_MOUNTINFO), parse_proc_cgroup(LEGACY_CGROUP))
    keys = [k for h in hs for k in h.keys]
    assert "perf_event" not in keys  # listed in /proc/self/cgroup, mounted nowhere
    assert {"cpu", "cpuacct", "net_cls", "net_prio", "freezer", "name=systemd"} == set(keys)


def test_primary_own() -> None:
    assert primary_own(parse_proc_cgroup(LEGACY_CGROUP)) == "/"
    assert primary_own(parse_proc_cgroup(UNIFIED_CGROUP)) == "/user.slice/user-1000.slice/session-3.scope"
    assert primary_own(parse_proc_cgroup("1:name=systemd:/x\n")) == "/x"
    assert primary_own([]) == "/"


def test_dir_of_with_a_mount_root() -> None:
    h = Hierarchy(2, (), "/sys/fs/cgroup", "/docker/abc", "/docker/abc")
    assert h.dir_of("/docker/abc") == "/sys/fs/cgroup"
    assert h.dir_of("/docker/abc/hutch/x") == "/sys/fs/cgroup/hutch/x"
    with pytest.raises(Unsupported, match="not visible"):
        h.dir_of("/docker/abcdef/x")


def test_build_v1_manager_on_hybrid() -> None:
    m = build_manager("hutch-t/c1", "c1", parse_mountinfo(HYBRID_MOUNTINFO),
                      parse_proc_cgroup(HYBRID_CGROUP))
    assert isinstance(m, V1Manager)
    assert m.version == 1
    assert m.path == "/hutch-t/c1"  # as the freezer hierarchy shows it
    assert m.paths["memory"] == "/sys/fs/cgroup/memory/process_api/6c96/hutch-t/c1"
    assert m.paths["cpu"] == "/sys/fs/cgroup/cpu/hutch-t/c1"
    assert m.paths["name=systemd"] == "/sys/fs/cgroup/systemd/hutch-t/c1"
    assert m.paths["unified"] == "/sys/fs/cgroup/unified/hutch-t/c1"
    # absolute paths go from each hierarchy's root, also in memory
    a = build_manager("/abs/c1", "c1", parse_mountinfo(HYBRID_MOUNTINFO),
                      parse_proc_cgroup(HYBRID_CGROUP))
    assert a.paths["memory"] == "/sys/fs/cgroup/memory/abs/c1"


def test_build_v1_manager_co_mounted() -> None:
    m = build_manager(None, "abc", parse_mountinfo(LEGACY_MOUNTINFO),
                      parse_proc_cgroup(LEGACY_CGROUP))
    assert m.paths["cpu"] == m.paths["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/user.slice/hutch/abc"
    assert "unified" not in m.paths
    assert m.path == "/hutch/abc"


def test_build_v2_manager() -> None:
    m = build_manager(None, "abc", parse_mountinfo(UNIFIED_MOUNTINFO),
                      parse_proc_cgroup(UNIFIED_CGROUP))
    assert isinstance(m, V2Manager)
    assert m.version == 2
    assert m.path == "/user.slice/user-1000.slice/session-3.scope/hutch/abc"
    assert m.state() == {"version": 2, "path": m.path, "paths": {
        "unified": "/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope/hutch/abc"}}


def test_build_v2_manager_under_a_mount_root() -> None:
    m = build_manager("x", "abc", parse_mountinfo(NESTED_MOUNTINFO),
                      parse_proc_cgroup("0::/docker/abc\n"))
    assert m.paths["unified"] == "/sys/fs/cgroup/x"
    assert m.path == "/docker/abc/x"
