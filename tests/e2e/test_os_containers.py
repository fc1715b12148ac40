"""OS containers, LXC style: a template's userland booting its own init."""

from __future__ import annotations

import os
import pty
import select
import time

import pytest

from test_engine_cli import HUTCH, Hutch, hutch  # noqa: F401 - the fixture


def _read_until(fd: int, wanted: bytes, timeout: float = 20) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while wanted not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} did not appear; got {out[-400:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def _wait_for(fn, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_boot_services_and_clean_shutdown_through_init(hutch):  # noqa: F811
    hutch("create", "-t", "busybox", "-n", "os1")
    assert "os1" in hutch("ls").stdout
    hutch("start", "-d", "os1")
    _wait_for(lambda: "httpd" in hutch("attach", "os1", "--", "ps").stdout)
    ps = hutch("attach", "os1", "--", "ps").stdout
    assert all(s in ps for s in ("syslogd", "crond", "httpd"))
    ls = hutch("ls").stdout.splitlines()
    assert ls[0].split()[:2] == ["NAME", "STATE"] and ls[1].split()[:2] == ["os1", "RUNNING"]
    info = hutch("info", "os1").stdout
    assert "RUNNING" in info and "numproc" in info
    hutch("stop", "os1")
    assert hutch("ls").stdout.splitlines()[1].split()[1] == "EXITED"
    logs = hutch("logs", "os1").stdout
    assert "booting" in logs and "shutting down" in logs
    hutch("destroy", "os1")
    assert hutch.ids() == []


def test_shutdown_actions_ran(hutch):  # noqa: F811
    hutch("create", "-t", "busybox", "-n", "os2")
    hutch("start", "-d", "os2")
    _wait_for(lambda: "syslogd" in hutch("attach", "os2", "--", "ps").stdout)
    root = [d for d in os.listdir(os.path.join(hutch.root, "containers"))][0]
    shutdown = os.path.join(hutch.root, "containers", root, "rootfs", "var/log/shutdown")
    hutch("stop", "os2")
    with open(shutdown) as f:
        assert f.read() == "clean\n"
    hutch("destroy", "os2")


def test_console_attach_and_detach(hutch):  # noqa: F811
    hutch("create", "-t", "busybox", "-n", "os3")
    hutch("start", "-d", "os3")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(HUTCH, [HUTCH, "--root", hutch.root, "console", "os3"])
    try:
        os.write(fd, b"\r")  # askfirst: "Please press Enter to activate this console"
        _read_until(fd, b"# ")
        os.write(fd, b"echo hi-$((2+3))\r")
        _read_until(fd, b"hi-5")
        os.write(fd, b"\x01q")  # Ctrl-a q
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
    assert hutch("ls").stdout.splitlines()[1].split()[1] == "RUNNING"  # still running
    hutch("freeze", "os3")
    hutch("unfreeze", "os3")
    hutch("stop", "os3")
    hutch("destroy", "os3")
