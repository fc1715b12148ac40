"""hutch's Docker-style commands, driven as a user would (each test its own --root)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hutch.testing.hostnet import SimulatedHost

HUTCH = os.path.join(os.path.dirname(sys.executable), "hutch")


class Hutch:
    def __init__(self, root: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.env = env
        self.hostnet: SimulatedHost | None = None

    def __call__(self, *args: str, check: bool = True, timeout: float = 60,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([HUTCH, "--root", self.root, *args], capture_output=True,
                           text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           env=self.env)
        if check and r.returncode != 0:
            raise AssertionError(f"hutch {' '.join(args)} -> {r.returncode}\n{r.stderr}")
        return r

    def ids(self) -> list[str]:
        return self("ps", "-a", "-q").stdout.split()


@pytest.fixture
def hutch():
    """``hutch ...`` with its own --root, and its own namespace playing the host's network
    (bridges, rules and resolvers go there and go with it)."""
    root = tempfile.mkdtemp(prefix="hutch-e2e-")
    sim = SimulatedHost()
    h = Hutch(root, sim.env())
    h.hostnet = sim
    yield h
    left: list[str] = []
    try:
        for cid in h.ids():
            h("rm", "-f", cid, check=False)
        left = h.ids()
    finally:
        sim.close()
        mounts = [line for line in open("/proc/self/mountinfo") if root in line]
        for line in mounts:  # do not leave them, even when the test or hutch failed
            subprocess.run(["umount", "-l", line.split()[4]], check=False)
        subprocess.run(["rm", "-rf", root], check=False)
    assert not left, f"containers left: {left}"
    assert not mounts, f"mounts left: {mounts}"


def test_run_busybox_echo_hello_with_no_registry(hutch):
    r = hutch("run", "--rm", "busybox", "echo", "hello")
    assert r.stdout == "hello\n"
    assert hutch.ids() == []


def test_exit_codes_like_docker(hutch):
    assert hutch("run", "--rm", "busybox", "sh", "-c", "exit 7", check=False).returncode == 7
    r = hutch("run", "--rm", "busybox", "no-such-program", check=False)
    assert r.returncode == 127 and "no-such-program" in r.stderr
    r = hutch("run", "--rm", "no-such-image", check=False)
    assert r.returncode == 125 and "no such image" in r.stderr


def test_stdout_and_stderr_stay_apart(hutch):
    r = hutch("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == ("out\n", "err\n")


def test_options_reach_the_process(hutch):
    r = hutch("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1000:1000", "--hostname", "box",
              "busybox", "sh", "-c", "echo $A; pwd; id -u; hostname")
    assert r.stdout.split() == ["1", "/tmp", "1000", "box"]


def test_detached_lifecycle_ps_logs_stop_rm(hutch):
    cid = hutch("run", "-d", "--name", "web", "busybox", "sh", "-c",
                "trap 'echo bye; exit 0' TERM; echo started; "
                "while true; do sleep 0.1; done").stdout.strip()
    assert len(cid) == 64
    ps = hutch("ps").stdout
    assert "web" in ps and "Up " in ps
    deadline = time.monotonic() + 10
    while "started" not in hutch("logs", "web").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert hutch("exec", "web", "hostname").stdout.strip() == cid[:12]
    hutch("stop", "web")
    assert "web" not in hutch("ps").stdout
    assert "Exited (0)" in hutch("ps", "-a").stdout
    assert hutch("logs", "web").stdout == "started\nbye\n"
    info = json.loads(hutch("inspect", "web").stdout)[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
    hutch("rm", "web")
    assert hutch.ids() == []


def test_duplicate_name_is_refused_and_changes_nothing(hutch):
    hutch("create", "--name", "one", "busybox", "true")
    r = hutch("create", "--name", "one", "busybox", "true", check=False)
    assert r.returncode == 125 and "already in use" in r.stderr
    assert len(hutch.ids()) == 1


def test_rm_of_a_running_container_needs_force(hutch):
    hutch("run", "-d", "--name", "busy", "busybox", "sleep", "60")
    r = hutch("rm", "busy", check=False)
    assert r.returncode != 0 and "running" in r.stderr
    hutch("rm", "-f", "busy")
    assert hutch.ids() == []


def test_memory_limit_kills_the_hog(hutch):
    r = hutch("run", "--rm", "-m", "32m", "busybox", "sh", "-c",
              "x=a; while true; do x=$x$x; done", check=False, timeout=120)
    assert r.returncode == 137


def test_restart_on_failure_counts(hutch):
    hutch("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox",
          "sh", "-c", "exit 3")
    assert hutch("wait", "flaky", timeout=60).stdout.strip() == "3"
    info = json.loads(hutch("inspect", "flaky").stdout)[0]
    assert info["State"]["RestartCount"] == 2


def test_twenty_parallel_detached_runs_lose_nothing(hutch):
    names = [f"p{i}" for i in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: hutch("run", "-d", "--name", n, "busybox",
                                                "sleep", "30", check=False), names))
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results]
    listed = {line.split()[-1] for line in hutch("ps").stdout.splitlines()[1:]}
    assert listed == set(names)


def test_killed_shim_is_seen_and_cleaned(hutch):
    hutch("run", "-d", "--name", "orphan", "busybox", "sleep", "60")
    info = json.loads(hutch("inspect", "orphan").stdout)[0]
    shim_dir = os.path.dirname(info["LogPath"])
    shim_pid = None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode()
        except OSError:
            continue
        if "hutch.shim" in cmd and shim_dir in cmd:
            shim_pid = int(pid)
    assert shim_pid
    os.kill(shim_pid, signal.SIGKILL)
    # The container's init still runs without its shim: ps says so, rm -f ends it.
    assert "Up " in hutch("ps").stdout
    pid = info["State"]["Pid"]
    hutch("rm", "-f", "orphan")
    assert hutch.ids() == []
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and \
            open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the orphaned container survived rm -f"
        time.sleep(0.05)


def test_stats_reports_what_the_container_uses(hutch):
    hutch("run", "-d", "--name", "burn", "-m", "64m", "--pids-limit", "20", "busybox", "sh", "-c",
          "sleep 60 & while true; do :; done")
    rows = [json.loads(line) for line in
            hutch("stats", "--no-stream", "--format", "json", "burn").stdout.splitlines()]
    assert len(rows) == 1
    r = rows[0]
    assert r["name"] == "burn" and r["pids"] == 2
    assert r["memory_limit"] == 64 << 20 and 0 < r["memory_usage"] < 64 << 20
    assert r["cpu_percent"] > 30  # a busy loop: most of a CPU (other tests share the machine)
    table = hutch("stats", "--no-stream").stdout.splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and "burn" in table[1]
