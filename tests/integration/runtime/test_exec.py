"""exec: more processes in a running container, with their own settings."""

from __future__ import annotations

import json
import os
import time

import pytest


@pytest.fixture
def running(runtime, bundle, container_id):
    b = bundle(["sleep", "60"], process={"env": ["PATH=/bin:/usr/bin", "FROM_SPEC=1"]})
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    yield container_id, b
    runtime.run("delete", "--force", container_id, check=False)


def test_exec_runs_inside_the_container_namespaces(runtime, running):
    cid, _ = running
    init = runtime.state(cid)["pid"]
    r = runtime.run("exec", cid, "sh", "-c", "hostname; ps -o pid,comm")
    lines = r.stdout.splitlines()
    assert lines[0] == "hutch-test"
    # Same pid namespace: the container's init is PID 1 next to us.
    assert any(line.split()[:2] == ["1", "sleep"] for line in lines[1:])
    for ns in ("mnt", "uts", "ipc", "pid", "net"):
        assert os.readlink(f"/proc/{init}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")


def test_exec_exit_code_and_output(runtime, running):
    cid, _ = running
    r = runtime.run("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 9", check=False)
    assert (r.returncode, r.stdout, r.stderr.strip()) == (9, "out\n", "err")


def test_exec_env_cwd_user(runtime, running):
    cid, _ = running
    r = runtime.run("exec", "--env", "EXTRA=2", "--cwd", "/tmp", "--user", "1000:1001", cid,
                    "sh", "-c", "echo $FROM_SPEC $EXTRA; pwd; id -u; id -g")
    assert r.stdout.split() == ["1", "2", "/tmp", "1000", "1001"]


def test_exec_process_file(runtime, running, tmp_path):
    cid, _ = running
    process = {"args": ["sh", "-c", "echo $ONLY; id -u"], "env": ["ONLY=yes", "PATH=/bin"],
               "cwd": "/", "user": {"uid": 7, "gid": 7}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    r = runtime.run("exec", "--process", path, cid)
    assert r.stdout.split() == ["yes", "7"]


def test_exec_detach_with_pid_file(runtime, running, tmp_path):
    cid, b = running
    pid_file = tmp_path / "exec.pid"
    runtime.run("exec", "--detach", "--pid-file", pid_file, cid, "sh", "-c",
                "echo $$ > /tmp/exec-pid; exec sleep 30")
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not (b.rootfs / "tmp" / "exec-pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    inside = int((b.rootfs / "tmp" / "exec-pid").read_text())
    assert inside != pid and inside > 1  # the host and container see different pids
    with open(f"/proc/{pid}/status") as f:
        nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
    assert int(nspid[-1]) == inside


def test_exec_into_stopped_container_is_refused(runtime, bundle, container_id):
    b = bundle(["true"])
    runtime.run("create", "--bundle", b.path, container_id)
    runtime.run("start", container_id)
    deadline = time.monotonic() + 5
    while runtime.state(container_id)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = runtime.run("exec", container_id, "true", check=False)
    assert r.returncode != 0 and "stopped" in r.stderr
    runtime.run("delete", container_id)


def test_exec_missing_program(runtime, running):
    cid, _ = running
    r = runtime.run("exec", cid, "no-such-program", check=False)
    assert r.returncode != 0
    assert "no-such-program" in r.stderr


def test_exec_joins_the_container_cgroup(runtime, bundle, container_id, cgroups_path):
    b = bundle(["sleep", "60"], linux={"cgroupsPath": cgroups_path})
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    try:
        r = runtime.run("exec", container_id, "cat", "/proc/self/cgroup")
        init = runtime.state(container_id)["pid"]
        with open(f"/proc/{init}/cgroup") as f:
            expected = f.read()
        assert sorted(r.stdout.splitlines()) == sorted(expected.splitlines())
        assert cgroups_path.split("/")[-1] in expected
    finally:
        runtime.run("delete", "--force", container_id)
