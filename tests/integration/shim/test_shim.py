"""The per-container shim: logs, exit status, restart policy, attach, stop."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from hutch.shim.client import ShimClient, ShimError, spawn
from hutch.shim.logs import read_entries


@pytest.fixture
def shims(container_id):
    """Start shims; at teardown stop their containers, wait for them, reap them."""
    root = tempfile.mkdtemp(prefix="hutch-shim-rt-")
    started: list[tuple[ShimClient, int]] = []

    def start(bundle, **config):
        d = tempfile.mkdtemp(prefix="hutch-shim-")
        cfg = {"id": f"{container_id}-{len(started)}", "dir": d, "runtime_root": root,
               "bundle": str(bundle.path), **config}
        info = spawn(cfg)
        client = ShimClient(d)
        started.append((client, info["shim_pid"]))
        return client, info

    yield start
    for client, shim_pid in started:
        if client.alive():
            try:
                client.request("kill", signal=9, all=True)
            except Exception:  # noqa: BLE001
                pass
        _wait_exit(shim_pid, 20)
    leftover = os.listdir(root) if os.path.isdir(root) else []
    assert not leftover, f"containers left in the runtime root: {leftover}"


def _wait_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, _ = os.waitpid(pid, os.WNOHANG)
        if got:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"shim {pid} did not exit")


def _wait_state(client: ShimClient, *states: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = client.status()
        if st.get("state") in states:
            return st
        assert time.monotonic() < deadline, f"state {st} never became {states}"
        time.sleep(0.02)


def test_logs_and_exit_code(shims, bundle):
    b = bundle(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
    client, info = shims(b)
    assert info["pid"] > 0
    st = _wait_state(client, "exited")
    assert st["exit_code"] == 3
    entries = read_entries(os.path.join(client.dir, "container.log"))
    assert [(e["stream"], e["log"]) for e in entries] == [("stdout", "to-out\n"),
                                                          ("stderr", "to-err\n")]
    assert all(e["time"].endswith("Z") for e in entries)


def test_container_outlives_the_process_that_started_it(shims, bundle):
    b = bundle(["sh", "-c", "sleep 60"])
    client, info = shims(b)
    # The shim, not us, is the container init's parent.
    with open(f"/proc/{info['pid']}/status") as f:
        ppid = int([line for line in f if line.startswith("PPid:")][0].split()[1])
    assert ppid == info["shim_pid"]
    assert client.status()["state"] == "running"


def test_restart_on_failure_counts(shims, bundle):
    b = bundle(["sh", "-c", "echo run; exit 1"])
    client, _ = shims(b, restart={"policy": "on-failure", "max_retries": 2})
    st = _wait_state(client, "exited", timeout=30)
    deadline = time.monotonic() + 30
    while client.alive() and time.monotonic() < deadline:  # the shim ends after the last try
        time.sleep(0.05)
    st = client.status()
    assert st["restart_count"] == 2 and st["exit_code"] == 1
    runs = [e for e in read_entries(os.path.join(client.dir, "container.log"))
            if e["log"] == "run\n"]
    assert len(runs) == 3  # the first run and two restarts


def test_restart_always_until_stopped(shims, bundle):
    b = bundle(["sh", "-c", "trap 'exit 0' TERM; echo up; sleep 0.2"])
    client, _ = shims(b, restart={"policy": "always"})
    deadline = time.monotonic() + 30
    while client.status().get("restart_count", 0) < 2:
        assert time.monotonic() < deadline, client.status()
        time.sleep(0.05)
    client.stop(timeout=5)
    st = _wait_state(client, "exited", timeout=20)
    count = st["restart_count"]
    time.sleep(0.5)
    assert client.status()["restart_count"] == count  # no restart after a stop


def test_stop_sends_the_stop_signal_then_kills(shims, bundle):
    b = bundle(["sh", "-c", "trap 'echo got-term; exit 0' TERM; echo ready; "
                            "while true; do sleep 0.05; done"])
    client, _ = shims(b)
    _wait_for_log(client, "ready\n")
    client.stop(timeout=10)
    st = _wait_state(client, "exited")
    assert st["exit_code"] == 0
    _wait_for_log(client, "got-term\n")
    b2 = bundle(["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.05; done"])
    client2, _ = shims(b2)
    _wait_for_log(client2, "ready\n")
    client2.stop(timeout=0.5)
    assert _wait_state(client2, "exited")["exit_code"] == 128 + 9


def _wait_for_log(client: ShimClient, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not any(e["log"] == text for e in read_entries(os.path.join(client.dir,
                                                                      "container.log"))):
        assert time.monotonic() < deadline, f"{text!r} never logged"
        time.sleep(0.02)


def test_log_rotation_bounds_the_disk_use(shims, bundle):
    b = bundle(["sh", "-c", "i=0; while [ $i -lt 3000 ]; do "
                            "echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"])
    client, _ = shims(b, log={"max_size": 20000, "max_files": 3})
    _wait_state(client, "exited")
    names = sorted(p.name for p in Path(client.dir).glob("container.log*"))
    assert names == ["container.log", "container.log.1", "container.log.2"]
    for p in Path(client.dir).glob("container.log*"):
        assert p.stat().st_size <= 20000
    entries = read_entries(os.path.join(client.dir, "container.log"))
    assert entries[-1]["log"].startswith("line-2999-")  # the newest lines are kept


def test_attach_gets_output_and_sends_input(shims, bundle):
    b = bundle(["sh", "-c", "read line; echo got-$line"])
    client, _ = shims(b, stdin=True)
    s = client.attach()
    try:
        s.sendall(b"hello\n")
        s.settimeout(10)
        data = b""
        while b"got-hello" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert b"got-hello\n" in data
    finally:
        s.close()
    assert _wait_state(client, "exited")["exit_code"] == 0


def test_a_container_that_cannot_start_is_reported(shims, bundle):
    b = bundle(["/no/such/program"])
    b.config["process"]["args"] = ["/no/such/program"]
    b.write()
    with pytest.raises(ShimError, match="no/such/program"):
        shims(b)
