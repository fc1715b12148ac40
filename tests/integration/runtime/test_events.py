"""`hutch-runtime events`: runc's JSON lines, a stats snapshot and an OOM event stream.

The numbers are checked against what the container did (runs one process; holds a
buffer of known size), read from runc's places in the "data" object. The
containers use the ``cgroups_path`` fixture, so their cgroups are checked gone at
teardown.
"""

from __future__ import annotations

import json
import select
import subprocess
import time

import pytest

MiB = 1 << 20


def _lines(proc: subprocess.Popen[str], count: int, timeout: float, want=None) -> list[dict]:
    """Read JSON lines from ``proc`` until ``count`` matched ``want`` (or timeout)."""
    assert proc.stdout is not None
    got: list[dict] = []
    matched = 0
    deadline = time.monotonic() + timeout
    while matched < count and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        got.append(event)
        if want is None or want(event):
            matched += 1
    return got


def test_events_stats_prints_one_runc_shaped_stats_object(runtime, bundle, container_id,
                                                          cgroups_path):
    # sh holds a 24 MiB variable (its pages touched), then waits
    script = "x=$(head -c 25165824 /dev/zero | tr '\\0' a); touch /tmp/ready; sleep 60; :"
    b = bundle(["sh", "-c", script], linux={"cgroupsPath": cgroups_path})
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    deadline = time.monotonic() + 30
    while not (b.rootfs / "tmp" / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    r = runtime.run("events", "--stats", container_id)
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    event = json.loads(lines[0])
    assert event["type"] == "stats" and event["id"] == container_id
    data = event["data"]
    # runc's names (types/events.go)
    assert set(data) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert set(data["cpu"]["usage"]) >= {"total", "percpu", "kernel", "user"}
    assert set(data["cpu"]["throttling"]) == {"periods", "throttledPeriods", "throttledTime"}
    assert set(data["memory"]["usage"]) == {"usage", "max", "failcnt", "limit"}
    assert set(data["memory"]) >= {"cache", "usage", "swap", "kernel", "raw"}
    assert isinstance(data["blkio"]["ioServiceBytesRecursive"], list)
    # what the container did: sh and sleep run; more than 24 MiB was held
    assert data["pids"]["current"] == 2, data["pids"]
    assert data["memory"]["usage"]["usage"] >= 24 * MiB, data["memory"]["usage"]
    assert data["cpu"]["usage"]["total"] > 0
    assert r.stdout.startswith('{"type":"stats","id":')  # compact, as runc's encoder


def test_events_streams_stats_until_the_container_stops(runtime, bundle, container_id,
                                                        cgroups_path):
    b = bundle(["sleep", "60"], linux={"cgroupsPath": cgroups_path})
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    proc = runtime.popen("events", "--interval", "300ms", container_id,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = _lines(proc, 2, timeout=20)
    assert [e["type"] for e in got] == ["stats", "stats"], got
    assert all(e["id"] == container_id and e["data"]["pids"]["current"] == 1 for e in got)
    runtime.run("kill", container_id, "KILL")
    assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""


def test_events_reports_an_oom_kill(runtime, bundle, container_id, cgroups_path):
    limit = 32 * MiB
    # waits for /go, then a 64 MiB dd buffer goes over the limit: the OOM killer takes dd
    script = "while [ ! -e /go ]; do sleep 0.05; done; dd if=/dev/zero of=/dev/null bs=64M" \
             " count=1; sleep 60"
    b = bundle(["sh", "-c", script], linux={
        "cgroupsPath": cgroups_path,
        "resources": {"memory": {"limit": limit, "swap": limit}}})
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    proc = runtime.popen("events", "--interval", "200ms", container_id,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = _lines(proc, 1, timeout=20)  # the first stats line: the watch is set up
    assert first and first[0]["type"] == "stats", first
    (b.rootfs / "go").touch()
    got = _lines(proc, 1, timeout=30, want=lambda e: e["type"] == "oom")
    ooms = [e for e in got if e["type"] == "oom"]
    assert ooms == [{"type": "oom", "id": container_id}], got
    assert runtime.state(container_id)["status"] == "running"  # only dd died
    r = runtime.run("events", "--stats", container_id)
    data = json.loads(r.stdout)["data"]
    assert data["memory"]["event_count"]["oom_kill"] >= 1, data["memory"]["event_count"]
    assert data["memory"]["usage"]["limit"] == limit
    runtime.run("kill", container_id, "KILL")
    assert proc.wait(timeout=20) == 0


def test_events_refuses_a_stopped_container_and_a_bad_interval(runtime, bundle, container_id,
                                                               cgroups_path):
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path})
    runtime.run("create", "--bundle", b.path, container_id)
    r = runtime.run("events", "--interval", "0s", container_id, check=False)
    assert r.returncode != 0 and "greater than 0" in r.stderr, r.stderr
    r = runtime.run("events", "--interval", "soon", container_id, check=False)
    assert r.returncode != 0 and "duration" in r.stderr, r.stderr
    runtime.run("start", container_id)
    deadline = time.monotonic() + 15
    while runtime.state(container_id)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    r = runtime.run("events", "--stats", container_id, check=False)
    assert r.returncode != 0 and "is not running" in r.stderr, r.stderr


@pytest.mark.parametrize("text,seconds", [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0),
                                          ("1.5s", 1.5), ("250us", 0.00025)])
def test_interval_is_a_go_duration(text: str, seconds: float) -> None:
    from hutch.cli.runtime_verbs import parse_duration
    assert parse_duration(text) == pytest.approx(seconds)
