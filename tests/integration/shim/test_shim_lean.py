"""The shim's switch to its lean image once the container runs (shim/supervisor.py).

Seen from outside: the same pid (still the container's parent) runs
``hutch.shim.supervisor`` without the runtime's modules mapped (libseccomp), holds
no fd a child could inherit, and goes on serving: logs, control requests, attached
clients, ttys, stop with its kill, exit status, cleanup and the restart policy.
"""

from __future__ import annotations

import os
import time

from test_shim import _wait_for_log, _wait_state, shims  # noqa: F401 - the fixture

from hutch.shim.client import ShimClient
from hutch.shim.logs import read_entries
from hutch.shim.supervisor import LEAN_AFTER

O_CLOEXEC = 0o2000000  # as /proc/PID/fdinfo shows the flags (octal)
SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def _wait_lean(pid: int, timeout: float = LEAN_AFTER + 10) -> None:
    deadline = time.monotonic() + timeout
    while "hutch.shim.supervisor" not in _cmdline(pid):
        assert time.monotonic() < deadline, f"shim {pid} still runs {_cmdline(pid)!r}"
        time.sleep(0.05)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int([line for line in f if line.startswith("PPid:")][0].split()[1])


def _recv_until(sock, needle: bytes, timeout: float = 10) -> bytes:  # noqa: ANN001
    sock.settimeout(timeout)
    data = b""
    while needle not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before {needle!r}; got {data!r}"
        data += chunk
    return data


def _ticks(client: ShimClient) -> int:
    return sum(e["log"].startswith("tick") for e in read_entries(
        os.path.join(client.dir, "container.log")))


def test_an_idle_shim_turns_lean_and_goes_on_serving(shims, bundle):  # noqa: F811
    b = bundle(["sh", "-c", "trap '' TERM; while true; do echo tick; sleep 0.1; done"],
               linux={"seccomp": SECCOMP})
    client, info = shims(b, ttys=1)
    shim_pid = info["shim_pid"]
    with open(f"/proc/{shim_pid}/maps") as f:
        maps = f.read()
    if "hutch.shim.supervisor" not in _cmdline(shim_pid):  # (a slow machine: lean already)
        assert "libseccomp" in maps  # the image that made the container
    _wait_lean(shim_pid)
    with open(f"/proc/{shim_pid}/maps") as f:
        maps = f.read()
    assert "libseccomp" not in maps and "_ctypes" not in maps
    assert _ppid(info["pid"]) == shim_pid  # the same process: still the init's parent
    status = client.status()
    assert status["state"] == "running" and status["pid"] == info["pid"]
    # Nothing it holds (control socket, pipes, ptys, log) leaks into what it starts.
    for fd in os.listdir(f"/proc/{shim_pid}/fd"):
        if int(fd) > 2:
            with open(f"/proc/{shim_pid}/fdinfo/{fd}") as f:
                flags = int([x for x in f if x.startswith("flags:")][0].split()[1], 8)
            assert flags & O_CLOEXEC, f"fd {fd} ({os.readlink(f'/proc/{shim_pid}/fd/{fd}')})"
    before = _ticks(client)
    deadline = time.monotonic() + 10
    while _ticks(client) <= before:  # the output is still logged
        assert time.monotonic() < deadline, "no output logged after the switch"
        time.sleep(0.05)
    tty = client.attach(tty=1)  # a tty the shim opened before the switch
    try:
        tty.sendall(b"echoed-by-the-pty\n")
        _recv_until(tty, b"echoed-by-the-pty")
    finally:
        tty.close()
    client.stop(timeout=0.3)  # SIGTERM is ignored: the kill after the timeout ends it
    st = _wait_state(client, "exited")
    assert st["exit_code"] == 128 + 9 and st["pid"] == 0
    # the fixture checks that the runtime's state was deleted (by the full image again)


def test_an_attached_client_and_stdin_survive_the_switch(shims, bundle):  # noqa: F811
    b = bundle(["sh", "-c", "read a; echo got-$a; read b; echo got-$b"])
    client, info = shims(b, stdin=True)
    s = client.attach()
    try:
        s.sendall(b"one\n")
        _recv_until(s, b"got-one\n")
        _wait_lean(info["shim_pid"])
        s.sendall(b"two\n")
        _recv_until(s, b"got-two\n")
    finally:
        s.close()
    assert _wait_state(client, "exited")["exit_code"] == 0


def test_a_console_resized_after_the_switch(shims, bundle):  # noqa: F811
    b = bundle(["sh"], process={"terminal": True})
    client, info = shims(b, terminal=True, stdin=True)
    s = client.attach()
    try:
        _wait_lean(info["shim_pid"])
        client.resize(33, 77)
        s.sendall(b"stty size; exit 5\n")
        _recv_until(s, b"33 77")
    finally:
        s.close()
    assert _wait_state(client, "exited")["exit_code"] == 5


def test_the_restart_policy_applies_to_a_container_that_ended_lean(shims, bundle):  # noqa: F811
    b = bundle(["sh", "-c", f"echo run; sleep {LEAN_AFTER + 1.2}; exit 1"])
    client, info = shims(b, restart={"policy": "on-failure", "max_retries": 1})
    _wait_lean(info["shim_pid"])
    deadline = time.monotonic() + 30
    while client.alive():  # the shim ends after the last try
        assert time.monotonic() < deadline, client.status()
        time.sleep(0.05)
    st = client.status()
    assert st["state"] == "exited" and st["exit_code"] == 1 and st["restart_count"] == 1
    _wait_for_log(client, "run\n")
    runs = [e for e in read_entries(os.path.join(client.dir, "container.log"))
            if e["log"] == "run\n"]
    assert len(runs) == 2
