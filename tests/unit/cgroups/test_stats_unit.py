"""stats.py and accounting.py on cgroup directories faked in tmp_path (v1 and v2 samples)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hutch.cgroups import accounting, stats
from hutch.cgroups.accounting import UNLIMITED, Row
from hutch.cgroups.null import NullCgroupManager
from hutch.cgroups.v1.manager import V1Manager
from hutch.cgroups.v2.manager import V2Manager
from hutch.errors import NotFound, Unsupported

V1_HUGE = "9223372036854771712"  # what v1 shows for "no limit"


def _write(d: Path, entries: dict[str, str]) -> str:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in entries.items():
        (d / name).write_text(text + "\n")
    return str(d)


def _v1(tmp_path: Path) -> dict[str, str]:
    cpu = _write(tmp_path / "cpu", {
        "cpu.stat": "nr_periods 50\nnr_throttled 7\nthrottled_time 123456789\nnr_bursts 0",
        "cpu.cfs_quota_us": "20000", "cpu.cfs_period_us": "100000", "cpu.shares": "1024"})
    acct = _write(tmp_path / "cpuacct", {
        "cpuacct.usage": "3000000000", "cpuacct.usage_percpu": "1000000000 2000000000",
        "cpuacct.usage_all": "cpu user system\n0 900000000 100000000\n1 1500000000 500000000",
        "cpuacct.usage_user": "2400000000", "cpuacct.usage_sys": "600000000"})
    mem = _write(tmp_path / "memory", {
        "memory.usage_in_bytes": "52428800", "memory.max_usage_in_bytes": "67108864",
        "memory.limit_in_bytes": "67108864", "memory.soft_limit_in_bytes": V1_HUGE,
        "memory.failcnt": "0",
        "memory.memsw.usage_in_bytes": "52428800", "memory.memsw.max_usage_in_bytes": "67108864",
        "memory.memsw.limit_in_bytes": "67108864", "memory.memsw.failcnt": "3",
        "memory.kmem.usage_in_bytes": "4096", "memory.kmem.max_usage_in_bytes": "8192",
        "memory.kmem.limit_in_bytes": V1_HUGE, "memory.kmem.failcnt": "0",
        "memory.stat": "cache 1048576\nrss 51380224\ntotal_cache 1048576\n"
                       "hierarchical_memory_limit 67108864",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2"})
    pids = _write(tmp_path / "pids", {"pids.current": "4", "pids.max": "10", "pids.peak": "10",
                                      "pids.events": "max 5"})
    blkio = _write(tmp_path / "blkio", {
        "blkio.bfq.io_service_bytes_recursive": "Total 0",
        "blkio.throttle.io_service_bytes_recursive":
            "7:0 Read 4096\n7:0 Write 8192\n7:0 Sync 0\n7:0 Async 12288\n7:0 Total 12288\n"
            "Total 12288",
        "blkio.throttle.io_serviced_recursive": "7:0 Read 1\n7:0 Write 2\nTotal 3"})
    cpuset = _write(tmp_path / "cpuset", {"cpuset.cpus": "0-1,3", "cpuset.mems": "0",
                                          "cpuset.cpu_exclusive": "0",
                                          "cpuset.sched_relax_domain_level": "-1"})
    huge = _write(tmp_path / "hugetlb", {
        "hugetlb.2MB.usage_in_bytes": "2097152", "hugetlb.2MB.max_usage_in_bytes": "4194304",
        "hugetlb.2MB.limit_in_bytes": "4194304", "hugetlb.2MB.failcnt": "1"})
    return {"cpu": cpu, "cpuacct": acct, "memory": mem, "pids": pids, "blkio": blkio,
            "cpuset": cpuset, "hugetlb": huge}


def _v2(tmp_path: Path) -> str:
    return _write(tmp_path / "v2", {
        "cgroup.procs": "11\n12",
        "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
                    "nr_periods 20\nnr_throttled 4\nthrottled_usec 80000",
        "cpu.max": "20000 100000",
        "cpuset.cpus.effective": "0-1", "cpuset.mems.effective": "0",
        "memory.current": "10485760", "memory.peak": "20971520", "memory.max": "33554432",
        "memory.high": "max",
        "memory.events": "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0",
        "memory.stat": "anon 9437184\nfile 1048576\nkernel 65536",
        "memory.swap.current": "1048576", "memory.swap.max": "max", "memory.swap.peak": "2097152",
        "memory.swap.events": "high 0\nmax 0\nfail 0",
        "pids.current": "3", "pids.max": "max", "pids.peak": "5", "pids.events": "max 2",
        "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0",
        "hugetlb.2MB.current": "0", "hugetlb.2MB.max": "max", "hugetlb.2MB.events": "max 0"})


# --- parsers ------------------------------------------------------------------------------

def test_to_int_maps_max_and_minus_one_to_unlimited() -> None:
    assert stats.to_int("max") == stats.UINT64_MAX
    assert stats.to_int("-1") == stats.UINT64_MAX
    assert stats.to_int("max", unlimited=0) == 0
    assert stats.to_int(None) == 0 and stats.to_int("") == 0 and stats.to_int("42\n") == 42


def test_parse_blkio_drops_the_total_line_and_keeps_ops() -> None:
    entries = stats.parse_blkio("8:0 Read 10\n8:16 Write 20\n8:0 123\nTotal 30")
    assert entries == [{"major": 8, "minor": 0, "op": "Read", "value": 10},
                       {"major": 8, "minor": 16, "op": "Write", "value": 20},
                       {"major": 8, "minor": 0, "op": "", "value": 123}]


def test_parse_io_stat_maps_to_runc_lists() -> None:
    out = stats.parse_io_stat("259:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n")
    assert out["ioServiceBytesRecursive"] == [
        {"major": 259, "minor": 0, "op": "Read", "value": 1},
        {"major": 259, "minor": 0, "op": "Write", "value": 2},
        {"major": 259, "minor": 0, "op": "Discard", "value": 5}]
    assert [e["op"] for e in out["ioServicedRecursive"]] == ["Read", "Write", "Discard"]


def test_parse_list_and_usage_all() -> None:
    assert stats.parse_list("0-2,5\n") == [0, 1, 2, 5]
    assert stats.parse_usage_all("cpu user system\n0 5 6\n1 7 8") == ([6, 8], [5, 7])


# --- stats -------------------------------------------------------------------------------

def test_v1_stats_read_runc_shape(tmp_path: Path) -> None:
    s = stats.v1_stats(_v1(tmp_path))
    json.dumps(s)  # JSON-able
    assert s["cpu"]["usage"] == {"total": 3_000_000_000, "percpu": [1_000_000_000, 2_000_000_000],
                                 "percpu_kernel": [100_000_000, 500_000_000],
                                 "percpu_user": [900_000_000, 1_500_000_000],
                                 "kernel": 600_000_000, "user": 2_400_000_000}
    assert s["cpu"]["throttling"] == {"periods": 50, "throttledPeriods": 7,
                                      "throttledTime": 123456789}
    m = s["memory"]
    assert m["cache"] == 1048576
    assert m["usage"] == {"limit": 67108864, "usage": 52428800, "max": 67108864, "failcnt": 0}
    assert m["swap"]["failcnt"] == 3
    assert m["kernel"]["limit"] == int(V1_HUGE)  # v1's own "no limit", as runc shows it
    assert m["raw"]["hierarchical_memory_limit"] == 67108864
    assert m["event_count"]["oom_kill"] == 2
    assert s["pids"] == {"current": 4, "limit": 10}
    # the BFQ file holds only "Total 0": the throttle files are used (runc's order)
    assert s["blkio"]["ioServiceBytesRecursive"][:2] == [
        {"major": 7, "minor": 0, "op": "Read", "value": 4096},
        {"major": 7, "minor": 0, "op": "Write", "value": 8192}]
    assert len(s["blkio"]["ioServicedRecursive"]) == 2
    assert s["cpuset"]["cpus"] == [0, 1, 3] and s["cpuset"]["sched_relax_domain_level"] == -1
    assert s["hugetlb"] == {"2MB": {"usage": 2097152, "max": 4194304, "failcnt": 1}}


def test_v1_manager_stats_delegates(tmp_path: Path) -> None:
    m = V1Manager(_v1(tmp_path), "/x")
    assert m.stats() == stats.v1_stats(m.paths) == stats.of(m)


def test_v2_stats_are_mapped_to_the_v1_meanings(tmp_path: Path) -> None:
    s = stats.v2_stats(_v2(tmp_path))
    assert s["cpu"]["usage"]["total"] == 1_500_000_000  # usec -> ns
    assert s["cpu"]["usage"]["user"] == 1_000_000_000
    assert s["cpu"]["usage"]["kernel"] == 500_000_000
    assert s["cpu"]["throttling"] == {"periods": 20, "throttledPeriods": 4,
                                      "throttledTime": 80_000_000}
    m = s["memory"]
    assert m["usage"] == {"limit": 33554432, "usage": 10485760, "max": 20971520, "failcnt": 12}
    assert m["cache"] == 1048576  # memory.stat "file"
    # swap as memory+swap (runc), no limit when either is unlimited
    assert m["swap"] == {"limit": stats.UINT64_MAX, "usage": 10485760 + 1048576,
                         "max": 20971520 + 2097152, "failcnt": 0}
    assert m["event_count"] == {"low": 0, "high": 0, "max": 12, "oom": 2, "oom_kill": 1}
    assert s["pids"] == {"current": 3, "limit": 0}  # "max" is 0, as runc
    assert s["blkio"]["ioServiceBytesRecursive"][0] == {"major": 8, "minor": 0, "op": "Read",
                                                         "value": 4096}
    assert s["cpuset"]["cpus"] == [0, 1]
    assert s["hugetlb"]["2MB"] == {"usage": 0, "max": 0, "failcnt": 0}
    assert V2Manager(str(tmp_path / "v2"), "/v2").stats() == s


def test_v2_without_pids_controller_counts_processes(tmp_path: Path) -> None:
    d = _write(tmp_path / "bare", {"cgroup.procs": "5\n6\n7", "cpu.stat": "usage_usec 1"})
    s = stats.v2_stats(d)
    assert s["pids"]["current"] == 3 and s["memory"]["usage"]["usage"] == 0


def test_stats_of_a_missing_cgroup_or_none(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        stats.v2_stats(str(tmp_path / "gone"))
    with pytest.raises(NotFound, match="does not exist"):
        stats.v1_stats({"memory": str(tmp_path / "gone")})
    with pytest.raises(Unsupported, match="without a cgroup"):
        NullCgroupManager().stats()


# --- accounting --------------------------------------------------------------------------

def test_v1_beancounters(tmp_path: Path) -> None:
    rows = {r.resource: r for r in accounting.v1_rows(_v1(tmp_path))}
    assert list(rows) == ["memory", "memsw", "numproc", "cpu", "hugetlb.2MB"]
    # memory failcnt 0 but 2 OOM kills: the kills count (Linux 6.x keeps failcnt at 0)
    assert rows["memory"] == Row("memory", 52428800, 67108864, UNLIMITED, 67108864, 2, "bytes")
    assert rows["memsw"].failcnt == 3
    assert rows["numproc"] == Row("numproc", 4, 10, 10, 10, 5, "tasks")
    assert rows["cpu"] == Row("cpu", None, None, 20000, 20000, 7, "us/100000us")
    assert rows["hugetlb.2MB"] == Row("hugetlb.2MB", 2097152, 4194304, 4194304, 4194304, 1,
                                      "bytes")


def test_v2_beancounters(tmp_path: Path) -> None:
    rows = {r.resource: r for r in accounting.v2_rows(_v2(tmp_path))}
    assert rows["memory"] == Row("memory", 10485760, 20971520, UNLIMITED, 33554432, 12, "bytes")
    assert rows["swap"] == Row("swap", 1048576, 2097152, UNLIMITED, UNLIMITED, 0, "bytes")
    assert rows["numproc"] == Row("numproc", 3, 5, UNLIMITED, UNLIMITED, 2, "tasks")
    assert rows["cpu"] == Row("cpu", None, None, 20000, 20000, 4, "us/100000us")
    assert rows["hugetlb.2MB"].maxheld is None


def test_limit_value_normalizes_every_spelling_of_no_limit() -> None:
    for text in ("max", "-1", V1_HUGE, None, ""):
        assert accounting.limit_value(text) == UNLIMITED
    assert accounting.limit_value("4096") == 4096


def test_format_reads_like_proc_user_beancounters(tmp_path: Path) -> None:
    rows = accounting.v1_rows(_v1(tmp_path))
    text = accounting.format_beancounters([("101", rows), ("a-long-group-name", rows[:1])])
    lines = text.splitlines()
    assert lines[0] == "Version: 2.5"
    assert lines[1].split() == ["uid", "resource", "held", "maxheld", "barrier", "limit",
                                "failcnt"]
    assert lines[2].split() == ["101:", "memory", "52428800", "67108864", str(UNLIMITED),
                                "67108864", "2"]
    assert lines[2].index(":") + 1 == lines[1].index("uid") + 3  # "101:" ends where "uid" does
    assert lines[5].split()[:3] == ["cpu", "-", "-"]
    assert lines[1].index("failcnt") + len("failcnt") == len(lines[2])  # right-aligned columns
    assert "a-long-group-name:" in lines  # a long name on a line of its own
    assert text.endswith("\n")


def test_oom_watch_polls_v2_memory_events(tmp_path: Path) -> None:
    d = _v2(tmp_path)
    watch = stats.OomWatch(V2Manager(d, "/v2"))
    assert watch.wait(0) == 0
    (tmp_path / "v2" / "memory.events").write_text("max 20\noom 3\noom_kill 2\n")
    assert watch.wait(0) == 1 and watch.wait(0) == 0
    for f in (tmp_path / "v2").iterdir():
        f.unlink()
    (tmp_path / "v2").rmdir()
    assert watch.wait(0) == 0 and watch.gone
    watch.close()
