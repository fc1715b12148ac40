"""`hutch run` options: --privileged, --mount, block I/O limits (--device-*-bps/-iops)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from hutch.testing.host import cgroup_mounts, own_cgroup_dir
from test_engine_cli import hutch  # noqa: F401 - the fixture


def _inspect(hutch, name: str) -> dict:  # noqa: F811
    return json.loads(hutch("inspect", name).stdout)[0]


def test_privileged_is_an_explicit_choice_shown_by_inspect_ls_and_info(hutch):  # noqa: F811
    r = hutch("run", "--rm", "--network", "none", "busybox", "sh", "-c",
              "mount -t tmpfs t /tmp 2>/dev/null && echo MOUNTED || echo REFUSED")
    assert r.stdout.strip() == "REFUSED"
    hutch("run", "-d", "--name", "priv", "--network", "none", "--privileged", "busybox",
          "sh", "-c", "mount -t tmpfs t /tmp && touch /tmp/ok && sleep 300")
    pid = _inspect(hutch, "priv")["State"]["Pid"]
    assert hutch("exec", "priv", "sh", "-c", "ls /tmp/ok").returncode == 0
    data = _inspect(hutch, "priv")
    assert data["Privileged"] is True and data["UsernsMode"] == "host"
    # its root is the host's root: no user namespace of its own, no seccomp filter
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user")
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    assert status["Seccomp"].strip() == "0"
    assert "priv" in hutch("ls", "--fancy").stdout.splitlines()[1] and \
        hutch("ls", "--fancy").stdout.splitlines()[1].split()[-1] == "yes"
    assert "Privileged: yes (user namespace: host)" in hutch("info", "priv").stdout
    # the host's device nodes, as Docker's --privileged gives them
    host_loops = sorted(n for n in os.listdir("/dev") if n.startswith("loop"))
    inside = hutch("exec", "priv", "ls", "/dev").stdout.split()
    assert host_loops and set(host_loops) <= set(inside)
    default = hutch("run", "--rm", "--network", "none", "busybox", "ls", "/dev").stdout.split()
    assert not set(host_loops) & set(default)


def test_mount_flag_binds_readonly_and_sizes_a_tmpfs(hutch, tmp_path):  # noqa: F811
    (tmp_path / "f").write_text("data\n")
    os.chmod(tmp_path, 0o755)
    r = hutch("run", "--rm", "--network", "none",
              "--mount", f"type=bind,source={tmp_path},target=/data,readonly",
              "--mount", "type=tmpfs,target=/scratch,tmpfs-size=1m",
              "busybox", "sh", "-c", "cat /data/f; touch /data/x 2>/dev/null || echo RO; "
              "df -k /scratch | tail -1")
    lines = r.stdout.splitlines()
    assert lines[0] == "data" and lines[1] == "RO" and lines[2].split()[1] == "1024"
    assert not (tmp_path / "x").exists()
    for bad, message in (("type=foo,target=/x", "type must be bind, volume or tmpfs"),
                         ("type=bind,target=/x", "source= is missing"),
                         ("type=bind,source=rel,target=/x", "must be an absolute path"),
                         ("type=tmpfs,target=/x,colour=red", "unknown keys for tmpfs: colour")):
        r = hutch("run", "--rm", "--mount", bad, "busybox", "true", check=False)
        assert r.returncode == 125 and message in r.stderr, (bad, r.stderr)
    assert hutch.ids() == []


@pytest.fixture
def loop_device(tmp_path):
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.truncate(16 << 20)
    dev = subprocess.run(["losetup", "-f", "--show", str(backing)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


@pytest.mark.cgroup_v1
def test_block_io_limits_reach_the_containers_cgroup(hutch, loop_device):  # noqa: F811
    st = os.stat(loop_device)
    dev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    hutch("run", "-d", "--name", "io", "--network", "none",
          "--device-read-bps", f"{loop_device}:1mb", "--device-write-iops",
          f"{loop_device}:100", "busybox", "sleep", "300")
    pid = _inspect(hutch, "io")["State"]["Pid"]
    blkio = next(m for m in cgroup_mounts() if "blkio" in m.options)
    cg = own_cgroup_dir(blkio, f"/proc/{pid}/cgroup")
    assert cg is not None
    with open(os.path.join(cg, "blkio.throttle.read_bps_device")) as f:
        assert f.read().split() == [dev, str(1 << 20)]
    with open(os.path.join(cg, "blkio.throttle.write_iops_device")) as f:
        assert f.read().split() == [dev, "100"]
    for flag, value, message in (
            ("--device-read-bps", "/dev/null:1mb", "/dev/null is not a block device"),
            ("--device-read-bps", f"{loop_device}:fast", "'fast' is not a size"),
            ("--device-write-iops", "/nonexistent:10", "No such file"),
            ("--device-read-bps", "1mb", "expected DEVICE:RATE")):
        r = hutch("run", "--rm", flag, value, "busybox", "true", check=False)
        assert r.returncode == 125 and message in r.stderr, (value, r.stderr)


@pytest.mark.cgroup_v1
def test_the_shared_hutch_cgroup_goes_with_the_last_container(hutch):  # noqa: F811
    pids = next(m for m in cgroup_mounts() if "pids" in m.options)
    parent = os.path.join(own_cgroup_dir(pids) or "", "hutch")
    for name in ("one", "two"):
        hutch("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "300")
    cids = [_inspect(hutch, n)["Id"] for n in ("one", "two")]
    assert set(cids) <= set(os.listdir(parent))
    hutch("rm", "-f", "one")
    assert os.path.isdir(parent) and not os.path.exists(os.path.join(parent, cids[0]))
    hutch("rm", "-f", "two")
    assert not os.path.exists(parent)
