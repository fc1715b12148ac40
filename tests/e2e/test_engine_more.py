"""top, restart, logs --since/--until through the CLI."""

from __future__ import annotations

import json
import os
import time

from test_engine_cli import Hutch, hutch  # noqa: F401 - the fixture


def _state(h: Hutch, name: str) -> dict:
    return json.loads(h("inspect", name).stdout)[0]["State"]


def test_top_lists_the_containers_processes(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "tp", "--network", "none", "busybox", "sh", "-c",
          "sleep 60 & sleep 61 & wait")
    base = json.loads(hutch("inspect", "tp").stdout)[0]["IdMapBase"]
    deadline = time.monotonic() + 10
    while "sleep 61" not in (out := hutch("top", "tp").stdout):
        assert time.monotonic() < deadline, out
        time.sleep(0.05)
    lines = out.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "STIME", "TIME", "CMD"]
    rows = {line.split(None, 5)[5]: line.split() for line in lines[1:]}
    assert set(rows) == {"sh -c sleep 60 & sleep 61 & wait", "sleep 60", "sleep 61"}
    init = rows["sh -c sleep 60 & sleep 61 & wait"]
    assert init[1] == str(_state(hutch, "tp")["Pid"])  # host pids
    assert rows["sleep 60"][2] == init[1]  # its parent
    assert {r[0] for r in rows.values()} == {str(base)}  # the container's root, on the host
    assert all(os.path.exists(f"/proc/{r[1]}") for r in rows.values())
    hutch("kill", "tp")
    hutch("wait", "tp")
    r = hutch("top", "tp", check=False)
    assert r.returncode == 125 and "not running" in r.stderr


def test_restart_gives_a_new_process_and_keeps_the_container(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "rs", "--network", "none", "busybox", "sh", "-c",
          "echo start; trap 'exit 0' TERM; while :; do sleep 0.1; done")
    first = _state(hutch, "rs")
    cid = json.loads(hutch("inspect", "rs").stdout)[0]["Id"]
    assert hutch("restart", "rs").stdout == "rs\n"
    second = _state(hutch, "rs")
    assert second["Status"] == "running" and second["Pid"] != first["Pid"]
    assert second["StartedAt"] > first["StartedAt"]
    assert not os.path.exists(f"/proc/{first['Pid']}") or \
        open(f"/proc/{first['Pid']}/stat").read().split()[2] == "Z"
    assert json.loads(hutch("inspect", "rs").stdout)[0]["Id"] == cid
    deadline = time.monotonic() + 10
    while hutch("logs", "rs").stdout != "start\nstart\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    hutch("stop", "rs")
    hutch("restart", "rs")  # an exited container: restart starts it
    assert _state(hutch, "rs")["Status"] == "running"
    # a process that ignores the stop signal: killed after -t seconds
    hutch("run", "-d", "--name", "stubborn", "--network", "none", "busybox", "sh", "-c",
          "trap '' TERM; while :; do sleep 0.1; done")
    began = time.monotonic()
    hutch("restart", "-t", "1", "stubborn")
    assert 1 <= time.monotonic() - began < 8
    assert _state(hutch, "stubborn")["Status"] == "running"


def test_logs_since_and_until(hutch):  # noqa: F811
    hutch("run", "--name", "lg", "--network", "none", "busybox", "sh", "-c",
          "echo early; sleep 0.3; echo late")
    stamped = hutch("logs", "-t", "lg").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["early", "late"]
    late_at = stamped[1].split(" ", 1)[0]
    assert hutch("logs", "--since", late_at, "lg").stdout == "late\n"
    assert hutch("logs", "--until", late_at, "lg").stdout == "early\n"
    assert hutch("logs", "--since", "10m", "lg").stdout == "early\nlate\n"
    assert hutch("logs", "--until", "10m", "lg").stdout == ""
    assert hutch("logs", "--since", str(int(time.time()) + 60), "lg").stdout == ""
    r = hutch("logs", "--since", "yesterday", "lg", check=False)
    assert r.returncode == 125 and "--since 'yesterday'" in r.stderr
