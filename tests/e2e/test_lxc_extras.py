"""LXC's copy, snapshot/restore and autostart, through the CLI."""

from __future__ import annotations

import json
import os
import pty
import time

from test_engine_cli import HUTCH, Hutch, hutch  # noqa: F401 - the fixture
from test_os_containers import _read_until

# Each start prints what /f holds and the owner of /d, then adds a line to /f.
STEP = "cat /f 2>/dev/null; stat -c %u:%g /d 2>/dev/null; echo x >> /f; mkdir -p /d; " \
       "chown 1000:1000 /d"


def _start(h: Hutch, name: str) -> str:
    """What one run of the container printed (start -a shows the whole log)."""
    before = h("logs", name).stdout
    h("start", "-a", name)
    after = h("logs", name).stdout
    assert after.startswith(before)
    return after[len(before):]


def _layers(h: Hutch) -> set[str]:
    return set(os.listdir(os.path.join(h.root, "storage", "overlay", "snapshots")))


def test_snapshot_restore_and_copy_on_write(hutch):  # noqa: F811
    hutch("run", "--name", "src", "--network", "none", "busybox", "sh", "-c", STEP)
    image_layers = _layers(hutch) - {_layer_of(hutch, "src")}
    assert hutch("snapshot", "src", "s1").stdout.strip() == "s1"
    assert _start(hutch, "src") == "x\n1000:1000\n"
    assert hutch("snapshot", "src").stdout.strip() == "snap0"  # lxc-snapshot's naming
    assert [line.split()[0] for line in hutch("snapshot", "ls", "src").stdout.splitlines()] \
        == ["s1", "snap0"]
    r = hutch("snapshot", "src", "s1", check=False)
    assert r.returncode == 125 and "already has a snapshot 's1'" in r.stderr
    hutch("restore", "src", "s1")  # back to one line
    assert _start(hutch, "src") == "x\n1000:1000\n"
    r = hutch("restore", "src", "nope", check=False)
    assert r.returncode == 125 and "no snapshot 'nope'" in r.stderr

    hutch("copy", "src", "dup")
    src, dup = (json.loads(hutch("inspect", n).stdout)[0] for n in ("src", "dup"))
    assert dup["Id"] != src["Id"] and dup["IdMapBase"] != src["IdMapBase"]
    assert _start(hutch, "dup") == "x\nx\n1000:1000\n"  # its own ids, the same owners
    assert _start(hutch, "src") == "x\nx\n1000:1000\n"  # the copy's writes are not seen
    r = hutch("copy", "src", "dup", check=False)
    assert r.returncode == 125 and "already in use" in r.stderr

    hutch("rm", "src")  # the copy rests on layers of src: they stay while it lives
    assert _start(hutch, "dup") == "x\nx\nx\n1000:1000\n"
    hutch("rm", "dup")
    assert _layers(hutch) == image_layers  # snapshots and shared layers went with them


def _layer_of(h: Hutch, name: str) -> str:
    """The snapshot directory of a container's own layer (its rootfs upperdir)."""
    cid = json.loads(h("inspect", name).stdout)[0]["Id"]
    rootfs = os.path.join(h.root, "containers", cid, "rootfs")
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        if fields[4] == rootfs:
            upper = next(o for o in line.split()[-1].split(",") if o.startswith("upperdir="))
            return upper.split("=", 1)[1].split("/")[-2]
    raise AssertionError(f"{rootfs} is not mounted")


def test_snapshot_copy_restore_refused_while_running(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "live", "--network", "none", "busybox", "sleep", "60")
    for args in (("snapshot", "live"), ("copy", "live", "other"), ("restore", "live", "s")):
        r = hutch(*args, check=False)
        assert r.returncode == 125 and "stop it first" in r.stderr, args
    assert hutch("snapshot", "ls", "live").stdout == ""
    assert len(hutch.ids()) == 1


def _started(h: Hutch, name: str) -> str:
    return json.loads(h("inspect", name).stdout)[0]["State"]["StartedAt"]


def test_autostart_in_order_with_delay_and_stop(hutch):  # noqa: F811
    hutch("create", "-t", "busybox", "-n", "late", "--autostart", "--autostart-order", "2")
    hutch("create", "-t", "busybox", "-n", "early", "--autostart", "--autostart-order", "1",
          "--autostart-delay", "0.5")
    hutch("create", "-t", "busybox", "-n", "manual")
    assert hutch("autostart", "--list").stdout == "early 1 0.5\nlate 2 0\n"
    ls = {line.split()[0]: line.split() for line in hutch("ls").stdout.splitlines()[1:]}
    assert (ls["early"][-1], ls["late"][-1], ls["manual"][-1]) == ("1", "1", "0")
    began = time.monotonic()
    assert hutch("autostart").stdout == "early: started\nlate: started\n"
    assert time.monotonic() - began >= 0.5
    assert _started(hutch, "early") < _started(hutch, "late")
    ls = {line.split()[0]: line.split()[1] for line in hutch("ls").stdout.splitlines()[1:]}
    assert ls == {"early": "RUNNING", "late": "RUNNING", "manual": "CREATED"}
    assert hutch("autostart").stdout == "early: already running\nlate: already running\n"
    assert hutch("autostart", "--stop").stdout == "late: stopped\nearly: stopped\n"
    ls = {line.split()[0]: line.split()[1] for line in hutch("ls").stdout.splitlines()[1:]}
    assert ls == {"early": "EXITED", "late": "EXITED", "manual": "CREATED"}
    hutch("set", "manual", "autostart=1", "autostart.order=0")
    assert hutch("autostart", "--list").stdout.splitlines()[0] == "manual 0 0"
    r = hutch("set", "manual", "colour=blue", check=False)
    assert r.returncode == 125 and "colour=blue" in r.stderr


def _console(h: Hutch, name: str, tty: int) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(HUTCH, [HUTCH, "--root", h.root, "console", name, "--tty", str(tty)])
    return pid, fd


def _detach(pid: int, fd: int) -> None:
    os.write(fd, b"\x01q")  # Ctrl-a q
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


def test_console_on_several_ttys(hutch):  # noqa: F811
    hutch("create", "-t", "busybox", "-n", "ttys")
    hutch("start", "-d", "ttys")
    pid, fd = _console(hutch, "ttys", 2)
    try:
        os.write(fd, b"\r")  # askfirst on /dev/tty2
        _read_until(fd, b"# ")
        os.write(fd, b"tty; X=kept-$((3+4))\r")
        _read_until(fd, b"/dev/tty2")
    finally:
        _detach(pid, fd)
    pid, fd = _console(hutch, "ttys", 1)
    try:
        os.write(fd, b"\r")
        _read_until(fd, b"# ")
        os.write(fd, b"tty; echo X=$X.\r")  # another shell: X is not set here
        out = _read_until(fd, b"X=.")
        assert b"/dev/tty1" in out
    finally:
        _detach(pid, fd)
    pid, fd = _console(hutch, "ttys", 2)  # the same shell as before, held by the shim
    try:
        os.write(fd, b"echo got-$X\r")
        _read_until(fd, b"got-kept-7")
    finally:
        _detach(pid, fd)
    r = hutch("console", "ttys", "--tty", "3", check=False)
    assert r.returncode == 125 and "no tty 3: the container has 2" in r.stderr
    hutch("stop", "ttys")
