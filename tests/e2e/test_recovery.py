"""A `hutch run -d` killed at any moment: ps -a tells the truth and rm -f cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from test_engine_cli import HUTCH, Hutch, hutch  # noqa: F401 - the fixture


def _processes_of(root: str, ids: list[str]) -> list[int]:
    """Shims of this instance, and processes in its containers' cgroups."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            cgroups = open(f"/proc/{pid}/cgroup").read()
            state = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z" and (root in cmdline or any(f"hutch/{cid}" in cgroups for cid in ids)):
            found.append(int(pid))
    return found


def test_killed_run_leaves_nothing_that_rm_cannot_clean(hutch):  # noqa: F811
    hutch("run", "--rm", "--network", "none", "busybox", "true")  # the image is made now
    took = []
    for _ in range(2):  # how long a whole `run -d` takes, to kill it at points along the way
        began = time.monotonic()
        hutch("run", "-d", "--name", "whole", "--network", "none", "busybox", "sleep", "60")
        took.append(time.monotonic() - began)
        hutch("rm", "-f", "whole")
    whole = min(took)
    outcomes = []
    for i, share in enumerate((0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)):
        proc = subprocess.Popen([HUTCH, "--root", hutch.root, "run", "-d", "--name", f"k{i}",
                                 "--network", "none", "busybox", "sleep", "60"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(whole * share)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcomes.append(proc.returncode)
    # ps -a lists what was recorded, with a status that the kernel confirms
    listed = {}
    for line in hutch("ps", "-a").stdout.splitlines()[1:]:
        listed[line.split()[-1]] = line
    ids = hutch.ids()
    assert len(ids) == len(listed)
    for name, line in listed.items():
        assert name.startswith("k")
        info = hutch("inspect", name).stdout
        if "Up " in line:  # running: its init is alive
            pid = int(info.split('"Pid": ')[1].split(",")[0])
            assert pid and os.path.exists(f"/proc/{pid}")
    # and rm -f cleans every one of them up: no record, mount or process is left
    full_ids = [hutch("inspect", n).stdout.split('"Id": "')[1].split('"')[0] for n in listed]
    for name in listed:
        hutch("rm", "-f", name)
    assert hutch.ids() == []
    deadline = time.monotonic() + 10
    while left := _processes_of(hutch.root, full_ids):
        assert time.monotonic() < deadline, f"processes left: {left}"
        time.sleep(0.05)
    assert not [d for d in os.listdir(os.path.join(hutch.root, "containers"))]
    # the names are free again
    hutch("run", "-d", "--name", "k0", "--network", "none", "busybox", "true")
    assert set(outcomes) <= {0, -9}
