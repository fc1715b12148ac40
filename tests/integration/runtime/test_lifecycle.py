"""Every lifecycle transition of hutch-runtime, and the verbs around it (list, ps, pid files)."""

from __future__ import annotations

import json
import os
import time

import pytest


def _wait_status(runtime, cid: str, want: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = runtime.state(cid)
        if st["status"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def test_create_start_kill_delete(runtime, bundle, container_id, tmp_path):
    b = bundle(["sleep", "60"])
    pid_file = tmp_path / "pid"
    runtime.run("create", "--bundle", b.path, "--pid-file", pid_file, container_id)
    st = runtime.state(container_id)
    assert st["status"] == "created"
    assert st["id"] == container_id
    assert st["bundle"] == str(b.path)
    assert int(pid_file.read_text()) == st["pid"] > 0
    # Created: the init exists but the user's program has not been exec'd yet.
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert b"sleep" not in f.read()
    runtime.run("start", container_id)
    st = runtime.state(container_id)
    assert st["status"] == "running"
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"
    runtime.run("kill", container_id, "KILL")
    st = _wait_status(runtime, container_id, "stopped")
    assert st["status"] == "stopped"
    runtime.run("delete", container_id)
    assert container_id not in runtime.list_ids()
    r = runtime.run("state", container_id, check=False)
    assert r.returncode != 0 and container_id in r.stderr


def test_run_foreground_returns_exit_code(runtime, bundle, container_id):
    b = bundle(["sh", "-c", "echo out; echo err >&2; exit 7"])
    r = runtime.run("run", "--bundle", b.path, container_id, check=False)
    assert r.returncode == 7
    assert r.stdout == "out\n"
    assert "err" in r.stderr
    assert container_id not in runtime.list_ids()  # run deletes what it ran


def test_run_killed_by_signal_is_128_plus_n(runtime, bundle, container_id):
    # PID 1 of a pid namespace cannot be killed from inside: kill it from outside.
    b = bundle(["sh", "-c", "echo ready; exec sleep 60"])
    p = runtime.popen("run", "--bundle", b.path, container_id,
                      stdout=__import__("subprocess").PIPE)
    assert p.stdout.readline() == "ready\n"
    runtime.run("kill", container_id, "KILL")
    assert p.wait(timeout=10) == 128 + 9


def test_run_forwards_signals(runtime, bundle, container_id):
    b = bundle(["sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; "
                "while true; do sleep 0.05; done"])
    p = runtime.popen("run", "--bundle", b.path, container_id,
                      stdout=__import__("subprocess").PIPE)
    assert p.stdout.readline() == "ready\n"
    p.terminate()
    assert p.wait(timeout=10) == 42
    assert "got-term" in p.stdout.read()


def test_run_detached(runtime, bundle, container_id):
    b = bundle(["sleep", "60"])
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    assert runtime.state(container_id)["status"] == "running"
    runtime.run("delete", "--force", container_id)
    assert container_id not in runtime.list_ids()


def test_delete_force_kills_running_container(runtime, bundle, container_id):
    b = bundle(["sleep", "60"])
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    pid = runtime.state(container_id)["pid"]
    r = runtime.run("delete", container_id, check=False)
    assert r.returncode != 0
    assert runtime.state(container_id)["status"] == "running"
    runtime.run("delete", "--force", container_id)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and _proc_state(pid) != "Z":
        assert time.monotonic() < deadline, "init survived delete --force"
        time.sleep(0.02)


def test_kill_all_signals_every_process(runtime, bundle, container_id, cgroups_path):
    b = bundle(["sh", "-c", "sleep 60 & sleep 60 & wait"], linux={"cgroupsPath": cgroups_path})
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    deadline = time.monotonic() + 5
    pids = []
    while len(pids) < 3 and time.monotonic() < deadline:
        pids = json.loads(runtime.run("ps", "--format", "json", container_id).stdout)
    assert len(pids) == 3
    runtime.run("kill", "--all", container_id, "KILL")
    deadline = time.monotonic() + 5
    for pid in pids:
        while os.path.exists(f"/proc/{pid}") and _proc_state(pid) != "Z":
            assert time.monotonic() < deadline, f"pid {pid} survived kill --all"
            time.sleep(0.02)
    runtime.run("delete", container_id)


def _wait_file(path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_kill_by_signal_name_and_number(runtime, bundle, container_id):
    # PID 1 of a pid namespace only gets signals it has a handler for: trap them.
    script = "trap 'exit {code}' {sig}; touch /tmp/ready; while true; do sleep 0.05; done"
    for suffix, sig, how, code in (("a", "USR1", "SIGUSR1", 3), ("b", "TERM", "15", 4)):
        b = bundle(["sh", "-c", script.format(code=code, sig=sig)])
        cid = container_id + suffix
        runtime.run("run", "-d", "--bundle", b.path, cid)
        _wait_file(b.rootfs / "tmp" / "ready")
        runtime.run("kill", cid, how)
        assert _wait_status(runtime, cid, "stopped")["status"] == "stopped"
        runtime.run("delete", cid)


def test_pause_and_resume_stop_and_restart_progress(runtime, bundle, container_id,
                                                    cgroups_path):
    b = bundle(["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; done"],
               linux={"cgroupsPath": cgroups_path})
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    counter = b.rootfs / "tmp" / "count"

    def read() -> int:
        for _ in range(100):
            try:
                return int(counter.read_text())
            except (FileNotFoundError, ValueError):
                time.sleep(0.01)
        raise AssertionError("counter never written")

    read()
    runtime.run("pause", container_id)
    assert runtime.state(container_id)["status"] == "paused"
    frozen = counter.read_bytes()  # may be empty: frozen between truncate and write
    time.sleep(0.3)
    assert counter.read_bytes() == frozen, "a paused container made progress"
    runtime.run("resume", container_id)
    assert runtime.state(container_id)["status"] == "running"
    time.sleep(0.3)
    assert read() > int(frozen or b"0"), "a resumed container made no progress"
    runtime.run("delete", "--force", container_id)


def test_list_table_and_json(runtime, bundle, container_id):
    b = bundle(["sleep", "60"])
    runtime.run("create", "--bundle", b.path, container_id)
    table = runtime.run("list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"]
    assert any(line.split()[0] == container_id and "created" in line for line in table[1:])
    entries = json.loads(runtime.run("list", "--format", "json").stdout)
    assert [e["id"] for e in entries] == [container_id]
    assert entries[0]["status"] == "created" and entries[0]["pid"] > 0
    quiet = runtime.run("list", "-q").stdout.split()
    assert quiet == [container_id]


def test_ps_lists_container_processes(runtime, bundle, container_id, cgroups_path):
    b = bundle(["sh", "-c", "sleep 60 & wait"], linux={"cgroupsPath": cgroups_path})
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    deadline = time.monotonic() + 5
    while True:
        pids = json.loads(runtime.run("ps", "--format", "json", container_id).stdout)
        if len(pids) == 2 or time.monotonic() > deadline:
            break
    assert len(pids) == 2
    assert runtime.state(container_id)["pid"] in pids
    table = runtime.run("ps", container_id).stdout.splitlines()
    assert "PID" in table[0]
    assert any("sleep 60" in line for line in table[1:])
    runtime.run("delete", "--force", container_id)


@pytest.mark.parametrize("verb", ["start", "pause", "resume"])
def test_verbs_refuse_a_stopped_container(runtime, bundle, container_id, verb):
    b = bundle(["true"])
    runtime.run("create", "--bundle", b.path, container_id)
    runtime.run("start", container_id)
    _wait_status(runtime, container_id, "stopped")
    r = runtime.run(verb, container_id, check=False)
    assert r.returncode != 0
    assert "stopped" in r.stderr or "not running" in r.stderr or "not paused" in r.stderr
    runtime.run("delete", container_id)


def test_start_twice_is_refused(runtime, bundle, container_id):
    b = bundle(["sleep", "60"])
    runtime.run("create", "--bundle", b.path, container_id)
    runtime.run("start", container_id)
    r = runtime.run("start", container_id, check=False)
    assert r.returncode != 0
    assert runtime.state(container_id)["status"] == "running"


def test_delete_of_created_container_kills_its_init(runtime, bundle, container_id):
    b = bundle(["sleep", "60"])
    runtime.run("create", "--bundle", b.path, container_id)
    pid = runtime.state(container_id)["pid"]
    runtime.run("delete", container_id)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and _proc_state(pid) != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_status_survives_pid_reuse_check(runtime, bundle, container_id):
    """A stopped container whose pid now names another process still reads stopped."""
    b = bundle(["true"])
    runtime.run("create", "--bundle", b.path, container_id)
    state_file = os.path.join(runtime.root, container_id, "state.json")
    if not os.path.exists(state_file):
        pytest.skip("runtime keeps its state elsewhere")
    runtime.run("start", container_id)
    _wait_status(runtime, container_id, "stopped")
    record = json.loads(open(state_file).read())
    if "start_time" not in record:
        pytest.skip("not hutch's state format")
    record["pid"] = os.getpid()  # a live process, but not the container's init
    with open(state_file, "w") as f:
        json.dump(record, f)
    assert runtime.state(container_id)["status"] == "stopped"
    runtime.run("delete", container_id)
