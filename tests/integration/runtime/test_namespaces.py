"""Each namespace seen from inside the container and from the host."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hutch.testing.bundle import CAPABILITIES, Bundle
from hutch.testing.host import cgroup_mounts, own_cgroup_dir

BundleFactory = Callable[..., Bundle]

WITH_SYS_ADMIN = {k: [*CAPABILITIES, "CAP_SYS_ADMIN"] for k in ("bounding", "effective",
                                                                    "permitted")}


def ns_inode(pid: int | str, ns: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{ns}")


# --- pid --------------------------------------------------------------------------------------

def test_process_is_pid_1(ctr, bundle: BundleFactory) -> None:
    assert ctr.output(bundle(["sh", "-c", "echo $$"])) == "1\n"


def test_process_sees_only_its_own_processes(ctr, bundle: BundleFactory) -> None:
    out = ctr.output(bundle(["ps", "-o", "pid,args"]))
    assert out.split("\n", 1)[1].split() == ["1", "ps", "-o", "pid,args"], out


def test_proc_inside_shows_only_the_containers_pids(ctr, bundle: BundleFactory) -> None:
    out = ctr.output(bundle(["sh", "-c", "sleep 60 & ls /proc | grep -E '^[0-9]+$'; kill $!"]))
    pids = sorted(int(p) for p in out.split())
    assert pids[0] == 1 and len(pids) in (3, 4), out  # sh, sleep, ls (and grep)


# --- uts --------------------------------------------------------------------------------------

def test_hostname_inside_is_the_configs_and_the_hosts_is_unchanged(
        ctr, bundle: BundleFactory) -> None:
    before = socket.gethostname()
    assert ctr.output(bundle(["hostname"], hostname="ctr-name")) == "ctr-name\n"
    assert socket.gethostname() == before
    assert before != "ctr-name"


def test_domainname_inside_is_the_configs(ctr, bundle: BundleFactory) -> None:
    before = Path("/proc/sys/kernel/domainname").read_text()
    out = ctr.output(bundle(["cat", "/proc/sys/kernel/domainname"], domainname="ctr.example"))
    # runc < 1.2 ignores domainname
    assert out == "ctr.example\n" or (ctr.runtime.name == "runc" and out == before), out
    assert Path("/proc/sys/kernel/domainname").read_text() == before


def test_hostname_set_inside_does_not_reach_the_host(ctr, bundle: BundleFactory) -> None:
    before = socket.gethostname()
    b = bundle(["sh", "-c", "hostname changed-inside && hostname"],
               process={"capabilities": WITH_SYS_ADMIN})
    assert ctr.output(b) == "changed-inside\n"
    assert socket.gethostname() == before


# --- mnt --------------------------------------------------------------------------------------

def _host_mount_sources() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split(" - ", 1)[1].split()[1] for line in f]


def test_mount_inside_does_not_appear_on_the_host(ctr, bundle: BundleFactory) -> None:
    tag = f"hutchleak{os.getpid()}{ctr.id.replace('-', '')}"
    b = bundle(["sh", "-c", f"mkdir -p /mnt/in && mount -t tmpfs {tag} /mnt/in && "
                            f"grep -c {tag} /proc/self/mountinfo > /tmp/ready && sleep 60"],
               process={"capabilities": WITH_SYS_ADMIN})
    ctr.run_detached(b)
    assert ctr.wait_file(b.rootfs / "tmp/ready") == "1\n"  # mounted, seen inside
    assert tag not in _host_mount_sources()                # ... and not on the host
    ctr.runtime.run("kill", ctr.id, "KILL")
    ctr.wait_stopped()
    assert tag not in _host_mount_sources()


def test_container_mounts_are_not_in_the_hosts_mount_table(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "60"])
    pid = ctr.create(b)
    with open(f"/proc/{pid}/mountinfo") as f:
        inside = [line.split()[4] for line in f]
    assert "/proc" in inside and "/dev/pts" in inside  # the container's own table
    host = Path("/proc/self/mountinfo").read_text()
    assert str(b.rootfs) not in host  # nothing of its root was mounted in the host's namespace


# --- net --------------------------------------------------------------------------------------

def test_new_network_namespace_has_only_lo(ctr, bundle: BundleFactory) -> None:
    out = ctr.output(bundle(["ip", "-o", "link", "show"]))
    names = [line.split(":")[1].strip() for line in out.splitlines()]
    assert names == ["lo"], out


# --- ipc --------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT, IPC_EXCL, IPC_RMID = 0o1000, 0o2000, 0


@pytest.fixture
def host_msg_queue() -> tuple[int, int]:
    """A System V message queue in the host's IPC namespace: (key, id); removed after."""
    key = 0x48550000 + (os.getpid() & 0xFFFF)
    qid = _libc.msgget(key, IPC_CREAT | IPC_EXCL | 0o600)
    if qid < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"msgget({key:#x}): {os.strerror(e)}")
    yield key, qid
    _libc.msgctl(qid, IPC_RMID, None)


def _sysvipc_keys(text: str) -> list[int]:
    return [int(line.split()[0]) for line in text.splitlines()[1:] if line.strip()]


def test_host_sysv_queue_is_not_visible_inside(ctr, bundle: BundleFactory,
                                               host_msg_queue: tuple[int, int]) -> None:
    key, _ = host_msg_queue
    assert key in _sysvipc_keys(Path("/proc/sysvipc/msg").read_text())
    inside = ctr.output(bundle(["cat", "/proc/sysvipc/msg"]))
    assert _sysvipc_keys(inside) == [], inside


def test_posix_queue_made_inside_is_not_visible_on_the_host(ctr, bundle: BundleFactory) -> None:
    name = f"hutchq{os.getpid()}"
    b = bundle(["sh", "-c", f"touch /dev/mqueue/{name} && ls /dev/mqueue > /tmp/ready && "
                            "sleep 60"])
    ctr.run_detached(b)
    assert ctr.wait_file(b.rootfs / "tmp/ready") == f"{name}\n"
    mq_open = _libc.mq_open
    mq_open.restype = ctypes.c_int
    fd = mq_open(f"/{name}".encode(), os.O_RDONLY)
    err = ctypes.get_errno()
    if fd >= 0:
        _libc.mq_close(fd)
        _libc.mq_unlink(f"/{name}".encode())
    assert fd < 0 and err == errno.ENOENT, "the container's queue is in the host's IPC namespace"


# --- the namespaces seen from the host -----------------------------------------------------------

@pytest.mark.parametrize("ns", ["uts", "ipc", "net", "mnt", "pid"])
def test_created_container_has_its_own_namespace(ctr, bundle: BundleFactory, ns: str) -> None:
    pid = ctr.create(bundle(["true"]))
    assert ns_inode(pid, ns) != ns_inode("self", ns)


def test_namespaces_not_asked_for_are_the_hosts(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sleep", "60"], hostname=None)  # no hostname without a uts namespace
    b.config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}]
    b.write()
    pid = ctr.create(b)
    for ns in ("uts", "ipc", "net"):
        assert ns_inode(pid, ns) == ns_inode("self", ns), ns
    for ns in ("pid", "mnt"):
        assert ns_inode(pid, ns) != ns_inode("self", ns), ns


def test_joining_a_network_namespace_by_path(ctr, bundle: BundleFactory) -> None:
    first = ctr.create(bundle(["sleep", "60"]), ctr.id + "-a")
    b = bundle(["readlink", "/proc/self/ns/net"])
    b.config["linux"]["namespaces"] = [
        {"type": t} for t in ("pid", "ipc", "uts", "mount")] + [
        {"type": "network", "path": f"/proc/{first}/ns/net"}]
    b.write()
    assert ctr.output(b) == ns_inode(first, "net") + "\n"
    assert ns_inode(first, "net") != ns_inode("self", "net")


def test_joining_a_pid_namespace_by_path_sees_its_processes(ctr, bundle: BundleFactory) -> None:
    first = ctr.create(bundle(["sleep", "60"]), ctr.id + "-a")
    ctr.runtime.run("start", ctr.id + "-a")
    b = bundle(["ps", "-o", "pid,args"])
    b.config["linux"]["namespaces"] = [
        {"type": t} for t in ("ipc", "uts", "mount", "network")] + [
        {"type": "pid", "path": f"/proc/{first}/ns/pid"}]
    b.write()
    rows = [line.split(None, 1) for line in ctr.output(b).splitlines()[1:]]
    assert ["1", "sleep 60"] in rows, rows
    assert any(r[1] == "ps -o pid,args" and r[0] != "1" for r in rows), rows


def test_joining_a_uts_namespace_by_path_sees_its_hostname(ctr, bundle: BundleFactory) -> None:
    first = ctr.create(bundle(["sleep", "60"], hostname="first-one"), ctr.id + "-a")
    b = bundle(["hostname"])
    b.config.pop("hostname")  # joining: the spec forbids setting it again
    b.config["linux"]["namespaces"] = [
        {"type": t} for t in ("pid", "ipc", "mount", "network")] + [
        {"type": "uts", "path": f"/proc/{first}/ns/uts"}]
    b.write()
    assert ctr.output(b) == "first-one\n"


def test_cgroup_namespace_roots_the_containers_cgroup(ctr, bundle: BundleFactory,
                                                      cgroups_path: str) -> None:
    b = bundle(["cat", "/proc/self/cgroup"], linux={"cgroupsPath": cgroups_path})
    b.config["linux"]["namespaces"].append({"type": "cgroup"})
    b.write()
    lines = ctr.output(b).splitlines()
    assert lines and all(line.endswith(":/") for line in lines), lines


@pytest.mark.cgroup_v1
def test_joins_an_existing_cgroup_whose_cpuset_is_empty(ctr, bundle: BundleFactory,
                                                        cgroups_path: str) -> None:
    """A new v1 cpuset cgroup has no cpus or mems, and a task cannot join it (ENOSPC):
    the runtime fills them from the parent, as runc does, for a cgroup it finds too."""
    cpuset = next(m for m in cgroup_mounts() if m.version == 1 and "cpuset" in m.options)
    base = own_cgroup_dir(cpuset)
    assert base is not None
    leaf = Path(base, cgroups_path)
    leaf.mkdir(parents=True)
    assert (leaf / "cpuset.cpus").read_text().strip() == ""
    b = bundle(["cat", "/proc/self/cgroup"], linux={"cgroupsPath": cgroups_path})
    try:
        res = ctr.run(b, timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError("run hung when the container could not join its cgroup") from None
    assert res.returncode == 0, res
    assert any(line.endswith(":cpuset:/" + cgroups_path) or
               (":cpuset" in line and line.endswith("/" + cgroups_path))
               for line in res.stdout.splitlines()), res.stdout


# --- user -------------------------------------------------------------------------------------

HOST_ID = 100000
USERNS = {
    "uidMappings": [{"containerID": 0, "hostID": HOST_ID, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": HOST_ID, "size": 65536}],
}


def userns_bundle(open_bundle: BundleFactory, args: list[str]) -> Bundle:
    b = open_bundle(args, linux=USERNS)
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.write()
    subprocess.run(["chown", "-R", "-h", f"{HOST_ID}:{HOST_ID}", b.rootfs], check=True)
    return b


@pytest.mark.userns
def test_user_namespace_root_inside(ctr, open_bundle: BundleFactory) -> None:
    b = userns_bundle(open_bundle, ["sh", "-c", "id -u; id -g; cat /proc/self/uid_map "
                                           "/proc/self/gid_map"])
    lines = [line.split() for line in ctr.output(b).splitlines()]
    assert lines == [["0"], ["0"], ["0", str(HOST_ID), "65536"], ["0", str(HOST_ID), "65536"]]


@pytest.mark.userns
def test_user_namespace_root_is_unprivileged_on_the_host(ctr, open_bundle: BundleFactory) -> None:
    b = userns_bundle(open_bundle, ["sh", "-c", "touch /made-inside && mkdir /dir-inside && "
                                           "echo > /tmp/ready && sleep 60"])
    pid = ctr.run_detached(b)
    ctr.wait_file(b.rootfs / "tmp/ready")
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines())
    assert status["Uid"].split() == [str(HOST_ID)] * 4
    assert status["Gid"].split() == [str(HOST_ID)] * 4
    assert ns_inode(pid, "user") != ns_inode("self", "user")
    for made in ("made-inside", "dir-inside"):
        st = os.stat(b.rootfs / made)
        assert (st.st_uid, st.st_gid) == (HOST_ID, HOST_ID), made


@pytest.mark.userns
def test_user_namespace_root_cannot_write_host_root_files(ctr, open_bundle: BundleFactory) -> None:
    b = userns_bundle(open_bundle, ["sh", "-c", "echo x >> /etc/hostowned; echo rc=$?"])
    host_file = b.rootfs / "etc/hostowned"
    host_file.write_text("host\n")
    os.chown(host_file, 0, 0)
    os.chmod(host_file, 0o644)
    out = ctr.output(b)
    assert "rc=1" in out, out
    assert host_file.read_text() == "host\n"


@pytest.mark.userns
def test_user_namespace_devices_work(ctr, open_bundle: BundleFactory) -> None:
    b = userns_bundle(open_bundle, ["sh", "-c", "echo x > /dev/null && head -c 3 /dev/zero | "
                                                "wc -c && stat -c '%t %T' /dev/null"])
    assert ctr.output(b) == "3\n1 3\n"


@pytest.mark.userns
def test_user_namespace_without_a_network_namespace(ctr, open_bundle: BundleFactory) -> None:
    b = userns_bundle(open_bundle, ["sh", "-c", "id -u; ls /sys/class/net | grep -c lo; "
                                                "touch /sys/x; echo rc=$?"])
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "network"]
    b.write()
    if ctr.runtime.name == "runc":  # runc 1.1 cannot mount sysfs there and does not fall back
        res = ctr.run(b)
        assert res.returncode != 0 and "sysfs" in res.stderr, res
        return
    # hutch shows the host's /sys read-only instead, as runc does for rootless containers
    assert ctr.output(b) == "0\n1\nrc=1\n"


# --- time -------------------------------------------------------------------------------------

OFFSET = 10 * 365 * 86400  # ten years


def test_time_namespace_offsets(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "cat /proc/self/timens_offsets; cat /proc/uptime"])
    b.config["linux"]["namespaces"].append({"type": "time"})
    b.config["linux"]["timeOffsets"] = {"monotonic": {"secs": OFFSET, "nanosecs": 0},
                                        "boottime": {"secs": OFFSET, "nanosecs": 0}}
    b.write()
    if "time" not in ctr.features()["linux"]["namespaces"]:  # runc 1.1 has no time namespace
        res = ctr.run(b)
        assert res.returncode != 0 and "time" in res.stderr, res
        assert ctr.runtime.list_ids() == []
        return
    out = ctr.output(b).splitlines()
    offsets = {line.split()[0]: line.split()[1:] for line in out[:2]}
    assert offsets == {"monotonic": [str(OFFSET), "0"], "boottime": [str(OFFSET), "0"]}
    inside = float(out[2].split()[0])
    host = float(Path("/proc/uptime").read_text().split()[0])
    assert abs(inside - host - OFFSET) < 5, (inside, host)
