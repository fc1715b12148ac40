"""apply()/update() of the v1 and v2 managers against fake cgroup directories.

The fakes are plain directories with the control files a kernel would show;
``files.write`` is replaced by a recorder that replaces a file's content (and can
be told to fail on a path, as the kernel would), so the tests see the exact
writes, their order, and what a failure undoes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from hutch.cgroups import convert, files
from hutch.cgroups.convert import IgnoredLimit
from hutch.cgroups.v1 import blkio as v1_blkio
from hutch.cgroups.v1 import cpuset as v1_cpuset
from hutch.cgroups.v1.manager import V1Manager
from hutch.cgroups.v2 import devices as v2_devices
from hutch.cgroups.v2.manager import V2Manager
from hutch.errors import InvalidArgument, NotFound, SystemFailure, Unsupported

UNLIMITED_V1 = "9223372036854771712"


class Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str | None], int] = {}  # (file name, value or None) -> errno

    def __call__(self, path: str, value: str) -> None:
        name = os.path.basename(path)
        err = self.fail.get((name, value), self.fail.get((name, None)))
        if err is not None:
            raise SystemFailure(err, f"write '{value}' to {path}: {os.strerror(err)}")
        if not os.path.exists(path):
            raise SystemFailure(errno.ENOENT, f"write '{value}' to {path}: No such file")
        self.writes.append((path, value))
        Path(path).write_text(value + "\n")

    def names(self) -> list[tuple[str, str]]:
        """(controller dir/file, value) with the fake root cut off."""
        def short(p: str) -> str:
            return f"{os.path.basename(os.path.dirname(os.path.dirname(p)))}/{os.path.basename(p)}"
        return [(short(p), v) for p, v in self.writes]


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Recorder:
    r = Recorder()
    monkeypatch.setattr(files, "write", r)
    host = tmp_path / "host"
    (host / "dev-block" / "7:0").mkdir(parents=True)
    (host / "cpus").write_text("0-3\n")
    (host / "nodes").write_text("0\n")
    monkeypatch.setattr(v1_blkio, "SYS_DEV_BLOCK", str(host / "dev-block"))
    monkeypatch.setattr(v1_cpuset, "HOST_FILES", {"cpus": str(host / "cpus"),
                                                  "mems": str(host / "nodes")})
    return r


def _files(d: Path, content: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, value in content.items():
        (d / name).write_text(value + "\n")


V1_FILES: dict[str, dict[str, str]] = {
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
            "cpu.cfs_burst_us": "0", "cpu.idle": "0", "cpu.rt_runtime_us": "0",
            "cpu.rt_period_us": "1000000"},
    "cpuset": {"cpuset.cpus": "0-3", "cpuset.mems": "0", "cpuset.effective_cpus": "0-3",
               "cpuset.effective_mems": "0"},
    "memory": {"memory.limit_in_bytes": UNLIMITED_V1, "memory.memsw.limit_in_bytes": UNLIMITED_V1,
               "memory.soft_limit_in_bytes": UNLIMITED_V1, "memory.usage_in_bytes": "1000000",
               "memory.max_usage_in_bytes": "2000000", "memory.swappiness": "60",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0",
               "memory.use_hierarchy": "1", "memory.kmem.tcp.limit_in_bytes": UNLIMITED_V1},
    "pids": {"pids.max": "max"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "",
              "blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
              "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": ""},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm"},
    "freezer": {"freezer.state": "THAWED"},
}


def fake_v1(root: Path, controllers: tuple[str, ...] = tuple(V1_FILES),
            extra: dict[str, dict[str, str]] | None = None) -> V1Manager:
    """<root>/<controller>/top/c1 for each controller; the parent "top" has the same files."""
    paths = {}
    for c in controllers:
        content = {**V1_FILES.get(c, {}), **(extra or {}).get(c, {})}
        _files(root / c / "top", content)
        _files(root / c / "top" / "c1", content)
        paths[c] = str(root / c / "top" / "c1")
    return V1Manager(paths, "/top/c1")


def test_v1_apply_writes_each_controller_in_order(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v1(tmp_path)
    m.apply({
        "cpu": {"shares": 512, "quota": 20000, "period": 50000, "cpus": "1", "mems": "0"},
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20,
                   "swappiness": 10, "disableOOMKiller": True, "kernelTCP": 1 << 20},
        "pids": {"limit": 10},
        "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 7, "minor": 0,
                                                              "rate": 1 << 20}]},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
    })
    assert rec.names() == [
        ("top/cpuset.cpus", "1"), ("top/cpuset.mems", "0"),
        ("top/cpu.shares", "512"), ("top/cpu.cfs_period_us", "50000"),
        ("top/cpu.cfs_quota_us", "20000"),
        ("top/memory.limit_in_bytes", str(64 << 20)),  # from unlimited: limit, then memsw
        ("top/memory.memsw.limit_in_bytes", str(128 << 20)),
        ("top/memory.soft_limit_in_bytes", str(32 << 20)),
        ("top/memory.kmem.tcp.limit_in_bytes", str(1 << 20)),
        ("top/memory.swappiness", "10"), ("top/memory.oom_control", "1"),
        ("top/pids.max", "10"),
        ("top/blkio.bfq.weight", "300"), ("top/blkio.throttle.read_bps_device", "7:0 1048576"),
        ("top/devices.deny", "a"), ("top/devices.allow", "c 1:3 rwm"),
    ]


@pytest.mark.parametrize(("current", "wanted", "order"), [
    # raising: memsw first, or the new limit would be above the old memsw
    ((64 << 20, 64 << 20), (128 << 20, 256 << 20), ["memsw", "limit"]),
    # lowering: the limit first, or the new memsw would be below the old limit
    ((128 << 20, 256 << 20), (32 << 20, 32 << 20), ["limit", "memsw"]),
    # unlimited memory lifts memory+swap too, memsw first
    ((64 << 20, 64 << 20), (-1, None), ["memsw", "limit"]),
])
def test_v1_memory_and_memsw_are_written_in_the_order_the_kernel_needs(
        rec: Recorder, tmp_path: Path, current: tuple[int, int],
        wanted: tuple[int, int | None], order: list[str]) -> None:
    m = fake_v1(tmp_path, ("memory",), {"memory": {
        "memory.limit_in_bytes": str(current[0]), "memory.memsw.limit_in_bytes": str(current[1])}})
    mem = {"limit": wanted[0]} if wanted[1] is None else {"limit": wanted[0], "swap": wanted[1]}
    m.apply({"memory": mem})
    kinds = ["memsw" if "memsw" in os.path.basename(p) else "limit" for p, _ in rec.writes]
    assert kinds == order


def test_v1_memory_refusals(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v1(tmp_path, ("memory",), {"memory": {"memory.limit_in_bytes": str(64 << 20),
                                                   "memory.memsw.limit_in_bytes": str(64 << 20)}})
    with pytest.raises(InvalidArgument, match="above the current memory.swap limit|above the"
                                              " current memory\\+swap limit"):
        m.apply({"memory": {"limit": 128 << 20}})
    with pytest.raises(InvalidArgument, match=r"memory\.swap: 1048576 \(memory\+swap\) is below"
                                              " the memory limit 67108864 in force"):
        m.apply({"memory": {"swap": 1 << 20}})
    with pytest.raises(InvalidArgument, match="below the current usage of 1000000 bytes"):
        m.update({"memory": {"limit": 1 << 19, "swap": 1 << 19, "checkBeforeUpdate": True}})
    with pytest.raises(Unsupported, match="useHierarchy: false is not possible"):
        m.apply({"memory": {"useHierarchy": False}})
    assert rec.writes == []
    m.apply({"memory": {"limit": 1 << 19, "swap": 1 << 19, "checkBeforeUpdate": True}})
    assert len(rec.writes) == 2  # apply (create time) does not check usage

    os.unlink(os.path.join(m.paths["memory"], "memory.memsw.limit_in_bytes"))
    with pytest.raises(Unsupported, match=r"memory\.swap: this host has no swap accounting"
                                          r" \(memory\.memsw\.\* missing"):
        m.apply({"memory": {"limit": 1 << 30, "swap": 2 << 30}})
    m.apply({"memory": {"limit": 1 << 30, "swap": -1}})  # nothing to lift: fine
    with pytest.warns(IgnoredLimit, match="kernel memory limits are obsolete"):
        m.apply({"memory": {"kernel": 1 << 20}})


def test_a_refused_write_undoes_the_earlier_ones(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v1(tmp_path, ("cpu", "memory", "pids"))
    rec.fail[("pids.max", "10")] = errno.EINVAL
    with pytest.raises(SystemFailure, match=r"write '10' to .*/pids\.max: Invalid argument"):
        m.apply({"cpu": {"shares": 512}, "memory": {"swappiness": 5}, "pids": {"limit": 10}})
    assert rec.names() == [("top/cpu.shares", "512"), ("top/memory.swappiness", "5"),
                           ("top/memory.swappiness", "60"), ("top/cpu.shares", "1024")]


def test_a_memory_limit_below_usage_says_so(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v1(tmp_path, ("memory",))
    rec.fail[("memory.limit_in_bytes", None)] = errno.EBUSY
    with pytest.raises(SystemFailure, match="memory.limit_in_bytes: Device or resource busy:"
                                            " the cgroup uses 1000000 bytes"):
        m.apply({"memory": {"limit": 4096}})


def test_v1_cpu_and_cpuset_checks(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v1(tmp_path, ("cpu", "cpuset"),
                {"cpuset": {"cpuset.effective_cpus": "0-1"}})
    with pytest.raises(InvalidArgument, match=r"'7' names cpu 7, which this host lacks"):
        m.apply({"cpu": {"cpus": "7"}})
    with pytest.raises(InvalidArgument, match=r"'1-3' names cpus 2-3, which the parent cgroup"
                                              r" .*/top lacks"):
        m.apply({"cpu": {"cpus": "1-3"}})
    with pytest.raises(Unsupported, match=r"realtimeRuntime: 10000 µs per 1000000 µs is more"
                                          " realtime than the parent cgroup"):
        m.apply({"cpu": {"realtimeRuntime": 10000}})
    assert rec.writes == []
    Path(tmp_path, "cpu/top/cpu.rt_runtime_us").write_text("950000\n")
    m.apply({"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 500000}})
    assert rec.names() == [("top/cpu.rt_period_us", "500000"), ("top/cpu.rt_runtime_us", "10000")]
    os.unlink(os.path.join(m.paths["cpu"], "cpu.rt_runtime_us"))
    with pytest.raises(Unsupported, match="no realtime group scheduling .CONFIG_RT_GROUP_SCHED"):
        m.apply({"cpu": {"realtimeRuntime": 10000}})


def test_v1_period_refused_first_is_retried_after_the_quota(
        rec: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = fake_v1(tmp_path, ("cpu",))
    rec.fail[("cpu.cfs_period_us", "10000")] = errno.EINVAL
    calls = 0

    def period_ok_second_time(path: str, value: str) -> None:
        nonlocal calls
        if path.endswith("cpu.cfs_period_us"):
            calls += 1
            if calls == 2:
                rec.fail.clear()
        rec(path, value)

    monkeypatch.setattr(files, "write", period_ok_second_time)
    m.apply({"cpu": {"quota": 5000, "period": 10000}})
    assert rec.names() == [("top/cpu.cfs_quota_us", "5000"), ("top/cpu.cfs_period_us", "10000")]


def test_v1_blkio_checks(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v1(tmp_path, ("blkio",), {"blkio": {"blkio.throttle.read_bps_device": "7:0 500"}})
    with pytest.raises(InvalidArgument, match=r"throttleReadBpsDevice\[0\]: there is no block"
                                              " device 8:0 on this host"):
        m.apply({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}})
    with pytest.raises(Unsupported, match="leafWeight: only CFQ had leaf weights"):
        m.apply({"blockIO": {"leafWeight": 100}})
    rec.fail[("blkio.bfq.weight", None)] = errno.EINVAL
    with pytest.raises(SystemFailure):
        m.apply({"blockIO": {"throttleReadBpsDevice": [{"major": 7, "minor": 0, "rate": 0}],
                             "weight": 100}})
    # the weight comes first, so nothing was written
    assert rec.writes == []
    rec.fail.clear()
    m.apply({"blockIO": {"throttleWriteIOPSDevice": [{"major": 7, "minor": 0, "rate": 50}],
                         "throttleReadBpsDevice": [{"major": 7, "minor": 0, "rate": 0}]}})
    assert rec.names() == [("top/blkio.throttle.read_bps_device", "7:0 0"),
                           ("top/blkio.throttle.write_iops_device", "7:0 50")]
    os.unlink(os.path.join(m.paths["blkio"], "blkio.bfq.weight"))
    with pytest.raises(Unsupported, match="no proportional-weight I/O scheduler"):
        m.apply({"blockIO": {"weight": 100}})


def test_v1_missing_controllers_and_unified(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v1(tmp_path, ("cpu", "memory", "freezer"))
    with pytest.raises(Unsupported, match=r"network\.classID: no cgroup v1 hierarchy with the"
                                          " net_cls controller is mounted"):
        m.apply({"cpu": {"shares": 100}, "network": {"classID": 1}})
    with pytest.raises(Unsupported, match="pids: no cgroup v1 hierarchy with the pids"):
        m.apply({"cpu": {"shares": 100}, "pids": {"limit": 1}})
    with pytest.raises(Unsupported, match=r"unified: raw cgroup v2 keys \(memory.high\) need a"
                                          " cgroup v2 host"):
        m.apply({"cpu": {"shares": 100}, "unified": {"memory.high": "1"}})
    with pytest.raises(Unsupported, match="devices: no cgroup v1 hierarchy with the devices"):
        m.apply({"devices": [{"allow": False}]})
    assert rec.writes == []


def test_v1_network_where_net_cls_and_net_prio_are_mounted(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v1(tmp_path, ("net_cls", "net_prio"),
                {"net_cls": {"net_cls.classid": "0"},
                 "net_prio": {"net_prio.ifpriomap": "lo 0\neth0 0"}})
    m.apply({"network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]}})
    assert rec.names() == [("top/net_cls.classid", str(0x100001)),
                           ("top/net_prio.ifpriomap", "eth0 5")]


def test_hybrid_drives_controllers_only_cgroup2_has_there(rec: Recorder, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    m = fake_v1(tmp_path, ("cpu", "memory"))
    unified = tmp_path / "unified" / "top" / "c1"
    _files(unified, {"cgroup.controllers": "hugetlb", "hugetlb.2MB.max": "max",
                     "hugetlb.2MB.rsvd.max": "max", "hugetlb.1GB.max": "max"})
    m.paths["unified"] = str(unified)
    m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 8 << 20}]})
    assert rec.names() == [("top/hugetlb.2MB.rsvd.max", str(8 << 20)),
                           ("top/hugetlb.2MB.max", str(8 << 20))]
    with pytest.raises(Unsupported, match=r"hugepageLimits\[0\]\.pageSize: this host has no 64KB"
                                          r" huge pages .*sizes here: 1GB, 2MB"):
        m.apply({"hugepageLimits": [{"pageSize": "64KB", "limit": 0}]})
    with pytest.raises(Unsupported, match="does not offer pids to"):
        m.apply({"pids": {"limit": 5}})
    installed: list[tuple[str, bytes]] = []
    monkeypatch.setattr(v2_devices, "install", lambda d, code: installed.append((d, code)))
    m.apply({"devices": [{"allow": False}]})  # no v1 devices: a BPF program on cgroup2
    assert installed and installed[0][0] == str(unified)


def test_apply_before_create_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist .create it first."):
        V1Manager({"pids": str(tmp_path / "nope")}, "/nope").apply({"pids": {"limit": 1}})
    with pytest.raises(NotFound, match="cannot update resources"):
        V2Manager(str(tmp_path / "nope"), "/nope").update({"pids": {"limit": 1}})


# --- v2 -------------------------------------------------------------------------------------

V2_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma",
    "cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
    "cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": "0-3",
    "cpuset.mems.effective": "0",
    "memory.max": "max", "memory.swap.max": "max", "memory.low": "0", "memory.high": "max",
    "memory.current": "1000000",
    "pids.max": "max", "io.max": "", "io.weight": "default 100", "rdma.max": "",
    "hugetlb.2MB.max": "max",
}


def fake_v2(root: Path, drop: tuple[str, ...] = (), controllers: str | None = None) -> V2Manager:
    content = {k: v for k, v in V2_FILES.items() if k not in drop}
    if controllers is not None:
        content["cgroup.controllers"] = controllers
    _files(root / "top", content)
    _files(root / "top" / "c1", content)
    return V2Manager(str(root / "top" / "c1"), "/top/c1")


def _v2_names(rec: Recorder) -> list[tuple[str, str]]:
    return [(os.path.basename(p), v) for p, v in rec.writes]


def test_v2_apply_converts_v1_semantics(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v2(tmp_path)
    m.apply({
        "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "2-3", "idle": 0},
        "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20},
        "pids": {"limit": -1},
        "blockIO": {"weight": 500,
                    "throttleReadBpsDevice": [{"major": 7, "minor": 0, "rate": 1024}],
                    "throttleWriteBpsDevice": [{"major": 7, "minor": 0, "rate": 0}],
                    "weightDevice": [{"major": 7, "minor": 0, "weight": 10}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
        "rdma": {"mlx5_0": {"hcaHandles": 2, "hcaObjects": 100}},
        "unified": {"memory.high": str(48 << 20)},
    })
    assert _v2_names(rec) == [
        ("cpuset.cpus", "2-3"),
        ("cpu.idle", "0"), ("cpu.weight", "39"), ("cpu.max", "20000 100000"),
        ("memory.swap.max", str(32 << 20)), ("memory.max", str(64 << 20)),
        ("memory.low", str(16 << 20)),
        ("pids.max", "max"),
        ("io.weight", "default 4950"), ("io.weight", "7:0 1"),
        ("io.max", "7:0 rbps=1024 wbps=max"),
        ("hugetlb.2MB.max", str(4 << 20)),
        ("rdma.max", "mlx5_0 hca_handle=2 hca_object=100"),
        ("memory.high", str(48 << 20)),
    ]


def test_v2_update_keeps_what_it_does_not_name(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v2(tmp_path)
    Path(m.directory, "cpu.max").write_text("50000 100000\n")
    Path(m.directory, "memory.max").write_text(f"{64 << 20}\n")
    m.update({"cpu": {"period": 200000}, "memory": {"swap": 128 << 20}})
    assert _v2_names(rec) == [("cpu.max", "50000 200000"),
                              ("memory.swap.max", str(64 << 20))]  # swap alone, from memory.max
    Path(m.directory, "memory.max").write_text("max\n")
    with pytest.raises(InvalidArgument, match="needs a memory limit"):
        m.update({"memory": {"swap": 128 << 20}})


def test_v2_refusals_and_warnings(rec: Recorder, tmp_path: Path) -> None:
    m = fake_v2(tmp_path, drop=("memory.swap.max",), controllers="cpu pids")
    with pytest.raises(Unsupported, match=r"memory: the memory controller is not enabled for"
                                          r" .*c1 \(its cgroup.controllers lists cpu pids\); it"
                                          r" must be enabled in .*/top/cgroup.subtree_control"):
        m.apply({"pids": {"limit": 3}, "memory": {"limit": 1 << 20}})
    with pytest.raises(Unsupported, match="cgroup v2 has no realtime group scheduling"):
        m.apply({"cpu": {"realtimeRuntime": 1000}})
    with pytest.raises(Unsupported, match="cgroup v2 has no net_cls or net_prio"):
        m.apply({"network": {"classID": 1}})
    with pytest.raises(Unsupported, match=r"unified\['memory.oom.group'\]: .* does not exist"
                                          r" \(the memory controller is not enabled"):
        m.apply({"unified": {"memory.oom.group": "1"}})
    assert rec.writes == []
    m.apply({"cpu": {"realtimeRuntime": 0, "shares": 2}})  # zero realtime asks nothing
    assert _v2_names(rec) == [("cpu.weight", "1")]

    m2 = fake_v2(tmp_path / "b", drop=("memory.swap.max",))
    with pytest.raises(Unsupported, match="memory.swap: this host has no swap accounting"):
        m2.apply({"memory": {"limit": 1 << 20, "swap": 2 << 20}})
    with pytest.warns(IgnoredLimit, match="disableOOMKiller: ignored on cgroup v2"):
        m2.apply({"memory": {"disableOOMKiller": True}})
    with pytest.warns(IgnoredLimit, match="swappiness: ignored on cgroup v2"):
        m2.apply({"memory": {"swappiness": 0}})
    with pytest.raises(Unsupported, match="leafWeight"):
        m2.apply({"blockIO": {"leafWeight": 100}})


def test_v2_devices_become_one_bpf_step(rec: Recorder, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    m = fake_v2(tmp_path)
    installed: list[tuple[str, bytes]] = []
    monkeypatch.setattr(v2_devices, "install", lambda d, code: installed.append((d, code)))
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    m.apply({"devices": rules})
    m.apply({"devices": rules})
    assert [d for d, _ in installed] == [m.directory, m.directory]
    assert installed[0][1] == installed[1][1] == v2_devices.program(
        convert.check({"devices": rules})["devices"])


def test_every_plan_step_is_checked_before_the_first_write(rec: Recorder, tmp_path: Path) -> None:
    """A bad value late in the object stops the whole apply, v1 and v2."""
    for m in (fake_v1(tmp_path / "v1"), fake_v2(tmp_path / "v2")):
        with pytest.raises((InvalidArgument, Unsupported)):
            m.apply({"cpu": {"shares": 512, "cpus": "0"}, "pids": {"limit": 5},
                     "blockIO": {"throttleReadBpsDevice": [{"major": 9, "minor": 9,
                                                            "rate": 1}]}})
    assert rec.writes == []

