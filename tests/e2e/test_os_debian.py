"""The debian template: Debian's own init (sysvinit) boots, runs its rc scripts, gives a
console login, and `hutch stop` reaches it: the services' stop scripts run and the
container halts, exit code 0.

The root file system comes from the machine's cache (/var/cache/hutch/templates,
built by .ci/run's install step with `hutch template build debian`); on a machine
where it is missing, the first test builds it with debootstrap (about a minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

import pytest

from test_engine_cli import Hutch

pytestmark = pytest.mark.slow

# An LSB init script of the test's: records each start and stop in a file.
PROBE = """\
#!/bin/sh
### BEGIN INIT INFO
# Provides:          hutch-probe
# Required-Start:    $local_fs
# Required-Stop:     $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: records its start and stop (hutch's test)
### END INIT INFO
case "$1" in
  start) echo started >> /var/lib/hutch-probe ;;
  stop) echo stopped >> /var/lib/hutch-probe ;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def hutch():
    root = tempfile.mkdtemp(prefix="hutch-e2e-debian-")
    h = Hutch(root)
    yield h
    try:
        for cid in h.ids():
            h("rm", "-f", cid, check=False)
        left = h.ids()
    finally:
        mounts = [line for line in open("/proc/self/mountinfo") if root in line]
        for line in mounts:
            subprocess.run(["umount", "-l", line.split()[4]], check=False)
        subprocess.run(["rm", "-rf", root], check=False)
    assert not left, f"containers left: {left}"
    assert not mounts, f"mounts left: {mounts}"


def _wait_for(what: str, fn, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _state(hutch: Hutch, name: str) -> dict:
    return json.loads(hutch("inspect", name).stdout)[0]["State"]


def test_debian_boots_sysvinit_and_stops_through_it(hutch: Hutch) -> None:
    hutch("create", "-t", "debian", "-n", "deb", timeout=600)  # builds the cache if missing
    hutch("start", "-d", "deb")
    _wait_for("runlevel 2", lambda: hutch("attach", "deb", "--", "runlevel",
                                           check=False).stdout.split() == ["N", "2"])
    # PID 1 is Debian's sysvinit, with its rc scripts run and its getty on the console
    assert hutch("attach", "deb", "--", "readlink", "/proc/1/exe").stdout.strip() \
        in ("/sbin/init", "/usr/sbin/init")
    assert hutch("attach", "deb", "--", "ps", "-o", "args=", "-p", "1").stdout.strip() \
        == "init [2]"
    assert hutch("attach", "deb", "--", "dpkg", "-S", "/sbin/init").stdout.startswith(
        "sysvinit-core:")
    assert hutch("attach", "deb", "--", "hostname").stdout.strip() == "deb"
    assert "deb" in hutch("attach", "deb", "--", "cat", "/etc/hosts").stdout.split()
    _wait_for("the console login", lambda: "deb login: root (automatic login)"
              in hutch("logs", "deb").stdout)
    logs = hutch("logs", "deb").stdout
    assert "INIT: Entering runlevel: 2" in logs
    assert "returned failure" not in logs  # startpar: no rc script failed
    # root is logged in on the console and on tty1 and tty2 (agetty -> login -> bash);
    # the last shells may still be starting on a slow host
    def logged_in() -> bool:
        ps = hutch("attach", "deb", "--", "ps", "-e", "-o", "args=").stdout.split("\n")
        return ps.count("/bin/login -f") == 3 and ps.count("-bash") == 3
    _wait_for("three root shells", logged_in)
    assert "no job control" not in logs  # the console is the shell's controlling tty

    # a service of ours, enabled the Debian way
    hutch("attach", "deb", "--", "sh", "-c", "cat > /etc/init.d/hutch-probe && chmod 755 "
          "/etc/init.d/hutch-probe && update-rc.d hutch-probe defaults", input=PROBE)
    t0 = time.monotonic()
    hutch("stop", "-t", "30", "deb")
    stopped_in = time.monotonic() - t0
    state = _state(hutch, "deb")
    # 0: init halted (reboot(2) in its pid namespace); a SIGKILL at the timeout is 137
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert stopped_in < 10  # no shell held up sendsigs: each has its own terminal
    assert "Will now halt." in hutch("logs", "deb").stdout  # rc 0's last script

    hutch("start", "-d", "deb")  # boots again: the service starts with runlevel 2
    _wait_for("the service's start", lambda: "started" in hutch(
        "attach", "deb", "--", "cat", "/var/lib/hutch-probe", check=False).stdout)
    hutch("stop", "deb")
    assert (_state(hutch, "deb")["ExitCode"]) == 0
    cid = json.loads(hutch("inspect", "deb").stdout)[0]["Id"]
    with open(os.path.join(hutch.root, "containers", cid, "rootfs/var/lib/hutch-probe")) as f:
        assert f.read().split() == ["stopped", "started", "stopped"]
    hutch("destroy", "deb")
    assert hutch.ids() == []


def test_debian_template_options_are_checked_before_anything_is_made(hutch: Hutch) -> None:
    r = hutch("create", "-t", "debian", "-n", "bad", "--", "--suite", "no suite",
              check=False)
    assert r.returncode == 125 and "--suite 'no suite'" in r.stderr
    r = hutch("create", "-t", "debian", "-n", "bad", "--", "--colour", "blue", check=False)
    assert r.returncode == 125 and "unrecognized arguments: --colour blue" in r.stderr
    assert hutch.ids() == []
