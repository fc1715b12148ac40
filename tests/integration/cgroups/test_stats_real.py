"""Stats and beancounters on this host's real cgroups agree with what the test did.

A process in the test's cgroup holds N MiB, burns about a second of CPU, forks k
children; a pids limit refuses a fork; a memory hog is OOM-killed; a quota
throttles a busy loop. The manager is whichever the host gets (v1 here, v2 in the
VM), so the same checks run on both. Cgroups and processes come from the ``lim``
fixture of test_resources_real.py, which kills, reaps and removes everything at
the end, also when a test fails (and, in the v2 VM's delegated mode, sets up the
delegation those tests need).
"""

from __future__ import annotations

import json
import signal

import pytest
from test_resources_real import MODE, Limits, delegated, lim  # noqa: F401 (fixtures)

from hutch.cgroups import accounting, stats
from hutch.cgroups.accounting import UNLIMITED

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(MODE.startswith("none"), reason=f"no cgroups here: {MODE}"),
]

MiB = 1 << 20

HOLD = """
import sys, time
chunks = [bytearray(b"\\x01" * (1 << 20)) for _ in range(int(sys.argv[1]))]
print("ready", flush=True)
time.sleep(60)
"""

BURN = """
import time
t0 = time.process_time()
while time.process_time() - t0 < 1.0:
    pass
print("done", time.process_time() - t0, flush=True)
time.sleep(60)
"""

FORK = """
import os, sys, time
kids = []
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
print("ready", flush=True)
time.sleep(60)
"""

FORK_UNTIL_REFUSED = """
import os, time
made = 0
while made < 50:
    try:
        pid = os.fork()
    except BlockingIOError:  # EAGAIN: the pids limit refused the fork
        print("refused", made, flush=True)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    made += 1
time.sleep(60)
"""

HOG = """
import sys
chunks = []
for _ in range(int(sys.argv[1])):
    chunks.append(b"\\x01" * (1 << 20))
print("survived", flush=True)
"""


def _line(p) -> str:  # type: ignore[no-untyped-def]
    out = p.stdout.readline().decode().strip()
    assert out, f"the test process ended early (exit code {p.poll()})"
    return out


def test_memory_usage_covers_what_a_process_holds(lim: Limits) -> None:
    m = lim.manager()
    p = lim.start(m, HOLD, "40")
    assert _line(p) == "ready"
    s = m.stats()
    usage = s["memory"]["usage"]
    print(f"holding 40 MiB: usage {usage['usage'] / MiB:.1f} MiB, peak {usage['max'] / MiB:.1f}")
    assert 40 * MiB <= usage["usage"] <= 40 * MiB + 64 * MiB, usage
    if usage["max"]:  # v2 before 5.19 keeps no peak
        assert usage["max"] >= usage["usage"]
    row = next(r for r in accounting.rows(m) if r.resource == "memory")
    assert row.held is not None and row.held >= 40 * MiB
    assert row.limit == UNLIMITED and row.failcnt == 0
    json.dumps(s)


def test_cpu_usage_grows_by_the_cpu_time_burnt(lim: Limits) -> None:
    m = lim.manager()
    before = m.stats()["cpu"]["usage"]["total"]
    p = lim.start(m, BURN)
    words = _line(p).split()
    assert words[0] == "done"
    burnt = float(words[1])  # seconds of CPU, as the process itself counted them
    after = m.stats()["cpu"]["usage"]
    grown = after["total"] - before
    print(f"burnt {burnt:.3f} s of CPU; the cgroup counted {grown / 1e9:.3f} s"
          f" (user {after['user'] / 1e9:.3f}, kernel {after['kernel'] / 1e9:.3f})")
    assert 0.9e9 <= grown <= burnt * 1e9 + 0.5e9, grown
    assert after["user"] + after["kernel"] >= 0.8 * after["total"]
    if after["percpu"]:  # v1 only
        assert abs(sum(after["percpu"]) - after["total"]) <= 0.01 * after["total"] + 1e6


def test_pids_current_counts_the_forked_processes(lim: Limits) -> None:
    k = 4
    m = lim.manager()
    p = lim.start(m, FORK, str(k))
    assert _line(p) == "ready"
    assert m.stats()["pids"]["current"] == k + 1
    row = next((r for r in accounting.rows(m) if r.resource == "numproc"), None)
    if row is not None:  # no row without a pids controller (a v2 group without +pids)
        assert row.held == k + 1 and row.failcnt == 0


def test_beancounters_count_forks_the_pids_limit_refused(lim: Limits) -> None:
    m = lim.manager()
    m.apply({"pids": {"limit": 3}})
    p = lim.start(m, FORK_UNTIL_REFUSED)
    words = _line(p).split()
    assert words == ["refused", "2"], words  # the process and two children: 3
    rows = {r.resource: r for r in accounting.rows(m)}
    numproc = rows["numproc"]
    print(accounting.format_beancounters([("pids", list(rows.values()))]))
    assert numproc.held == 3 and numproc.limit == numproc.barrier == 3
    assert numproc.failcnt >= 1
    if numproc.maxheld is not None:
        assert numproc.maxheld == 3
    assert m.stats()["pids"] == {"current": 3, "limit": 3}


def test_beancounters_and_stats_show_an_oom_kill(lim: Limits) -> None:
    limit = 32 * MiB
    m = lim.manager()
    m.apply({"memory": {"limit": limit, "swap": limit}})
    p = lim.start(m, HOG, "100")
    out, _ = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL and b"survived" not in out
    row = next(r for r in accounting.rows(m) if r.resource == "memory")
    s = m.stats()["memory"]
    print(f"after the OOM kill: {row}; event_count {s['event_count']}")
    assert row.limit == limit and row.failcnt >= 1
    assert s["event_count"]["oom_kill"] >= 1
    assert s["usage"]["limit"] == limit
    if row.maxheld is not None:
        assert row.maxheld >= limit - 4 * MiB


def test_beancounters_count_throttled_cpu_periods(lim: Limits) -> None:
    m = lim.manager()
    m.apply({"cpu": {"quota": 10000, "period": 100000}})
    p = lim.start(m, BURN.replace("1.0", "0.3"))
    assert _line(p).startswith("done")  # 0.3 s of CPU at 10%: about 3 s, 30 periods
    row = next(r for r in accounting.rows(m) if r.resource == "cpu")
    print(f"cpu under a 10% quota: {row}")
    assert row.limit == 10000 and row.unit == "us/100000us"
    assert row.held is None and row.failcnt >= 5
    t = m.stats()["cpu"]["throttling"]
    assert t["throttledPeriods"] == row.failcnt or t["throttledPeriods"] >= row.failcnt
    assert t["periods"] >= t["throttledPeriods"] and t["throttledTime"] > 0


def test_stats_follow_runc_names(lim: Limits) -> None:
    m = lim.manager()
    s = stats.of(m)
    assert set(s) >= {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb"}
    assert set(s["cpu"]["throttling"]) == {"periods", "throttledPeriods", "throttledTime"}
    assert set(s["memory"]["usage"]) == {"limit", "usage", "max", "failcnt"}
    assert set(s["blkio"]) >= {"ioServiceBytesRecursive", "ioServicedRecursive"}
