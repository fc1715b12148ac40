"""Attacks from inside the engine's default container, as its root, against the host.

One container (``hutch run`` with the defaults: its own user namespace and id range,
Docker's default capabilities, the default seccomp profile, masked and read-only
/proc paths) runs the static probe, which tries each attack and prints how it
ended. Each test below asserts one attack failed, how (the errno), and that the
host did not change. A second container, detached, is the target of ``hutch exec``
for the attacks that need the runtime to enter a running container.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sectools import (HUTCH, Hutch, host_state, host_uid_of, open_tempdir, parse_probe,
                      tracer_of)

pytestmark = [pytest.mark.root, pytest.mark.userns, pytest.mark.overlay]

HOST_BINARIES = (os.path.realpath(sys.executable), HUTCH, "/usr/bin/busybox")
NOBODY = 65534


@dataclass
class Attack:
    """What one run of the probe found, and the host around it."""

    probe: dict[str, str]
    before: dict
    after: dict
    sleeper: subprocess.Popen
    info: dict
    marker: str
    volumes: dict[str, str] = field(default_factory=dict)  # the probe's "vol" lines
    made: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # host owners
    hostfile: dict[str, str] = field(default_factory=dict)  # each volume's hostfile after
    rootfs_file: tuple[int, int] | None = None


def _volume(kind: str) -> str:
    """A host dir owned by host root (0755) holding a host-root file, and a 0777 dir."""
    d = open_tempdir(f"hutch-vol-{kind}-")
    with open(os.path.join(d, "hostfile"), "w") as f:
        f.write("host\n")
    os.mkdir(os.path.join(d, "open"))
    os.chmod(os.path.join(d, "open"), 0o777)
    return d


def _owner(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


@pytest.fixture(scope="module")
def attack(hutch: Hutch, probe_dir: str) -> Iterator[Attack]:
    marker_dir = tempfile.mkdtemp(prefix="hutch-host-marker-")
    marker = os.path.join(marker_dir, "only-on-the-host")
    open(marker, "w").close()
    sleeper = subprocess.Popen(["sleep", "120"])
    vols = {k: _volume(k) for k in ("idmap", "raw", "ro")}
    probe = os.path.join(probe_dir, "probe")
    disk = os.stat("/").st_dev
    before: dict = {}
    try:
        before = host_state(*HOST_BINARIES, probe)
        script = (
            "echo uid $(id -u); touch /made-in-rootfs; "
            "/probe/probe vol idmap /vol_idmap; /probe/probe vol raw /vol_raw; "
            "/probe/probe vol raw_open /vol_raw/open; /probe/probe vol ro /vol_ro; "
            f"exec /probe/probe all {sleeper.pid} {marker} {os.major(disk)} {os.minor(disk)}")
        r = hutch("run", "--name", "attacks", "-v", f"{probe_dir}:/probe:ro",
                  "-v", f"{vols['idmap']}:/vol_idmap", "-v", f"{vols['raw']}:/vol_raw:noidmap",
                  "-v", f"{vols['ro']}:/vol_ro:ro", "busybox", "sh", "-c", script)
        after = host_state(*HOST_BINARIES, probe)
        info = hutch.inspect("attacks")
        lines = [x for x in r.stdout.splitlines() if not x.startswith("vol ")]
        volumes = {x.split()[1]: " ".join(x.split()[2:]) for x in r.stdout.splitlines()
                   if x.startswith("vol ")}
        made = {}
        for name, sub in (("idmap", "idmap"), ("raw", "raw"), ("raw_open", "raw/open"),
                          ("ro", "ro")):
            kind, _, rest = sub.partition("/")
            path = os.path.join(vols[kind], rest, "made-inside")
            made[name] = _owner(path) if os.path.exists(path) else None
        hostfile = {k: open(os.path.join(d, "hostfile")).read() for k, d in vols.items()}
        rootfs_file = _owner(os.path.join(hutch.root, "containers", info["Id"], "rootfs",
                                          "made-in-rootfs"))
        yield Attack(parse_probe("\n".join(lines)), before, after, sleeper, info, marker,
                     volumes, made, hostfile, rootfs_file)
    finally:
        sleeper.kill()
        sleeper.wait()
        hutch("rm", "-f", "attacks", check=False)
        if before and socket.gethostname() != before["hostname"]:  # undo a successful attack
            socket.sethostname(before["hostname"])
        if before.get("core_pattern") is not None and \
                open("/proc/sys/kernel/core_pattern").read() != before["core_pattern"]:
            with open("/proc/sys/kernel/core_pattern", "w") as f:
                f.write(before["core_pattern"])
        shutil.rmtree(marker_dir)
        for d in vols.values():
            shutil.rmtree(d)


def test_the_probe_ran_as_root_in_its_own_user_namespace(attack):
    assert attack.probe["uid"] == "0"
    assert attack.info["UsernsMode"] == "private"
    assert attack.info["IdMapBase"] >= 65536
    assert "probe-crashed" not in attack.probe, attack.probe


def test_the_host_did_not_change(attack):
    for key in ("hostname", "domainname", "core_pattern", "sysrq", "modprobe", "binaries",
                "etc"):
        assert attack.after[key] == attack.before[key], key
    assert attack.after["mounts"] == attack.before["mounts"]


def test_second_chroot_stays_in_the_container(attack):
    # CAP_SYS_CHROOT is in the default set, so both chroots work; the second one
    # still finds the container's root (pivot_root left no way up).
    assert attack.probe["chroot2"] == "chroot=ok again=ok host=ENOENT own=ok"
    assert os.path.exists(attack.marker)


@pytest.mark.parametrize("name", ["mount_tmpfs", "mount_bind_root", "umount_root",
                                  "umount_proc", "remount_proc_rw", "remount_procsys_rw",
                                  "open_tree", "fsopen", "unshare_userns", "unshare_mntns"])
def test_mount_umount_and_new_namespaces_are_refused(attack, name):
    assert attack.probe[name] == "EPERM"


@pytest.mark.parametrize("name,path", [
    ("sysrq_trigger", "/proc/sysrq-trigger"),
    ("sys_hostname", "/proc/sys/kernel/hostname"),
    ("core_pattern", "/proc/sys/kernel/core_pattern"),
    ("sys_modprobe", "/proc/sys/kernel/modprobe")])
def test_proc_writes_are_refused(attack, name, path):
    # /proc/sys and /proc/sysrq-trigger belong to the host's root, which the
    # container does not map (EACCES), and are read-only bind mounts (EROFS) besides.
    # A file the host's kernel lacks is missing inside too.
    assert attack.probe[name] == ("EACCES" if os.path.exists(path) else "ENOENT")


def test_mknod_of_the_host_disk_is_refused_and_no_block_device_is_there(attack):
    assert attack.probe["mknod_blk"] == "EPERM"  # CAP_MKNOD only counts in the host's userns
    assert attack.probe["read_hostdisk"] == "ENOENT"
    assert attack.probe["dev_block_nodes"] == "0"


@pytest.mark.parametrize("name", ["init_module", "finit_module", "delete_module", "reboot",
                                  "keyctl", "add_key", "request_key", "sethostname",
                                  "clock_settime", "open_by_handle_at", "name_to_handle_at"])
def test_privileged_system_calls_are_refused(attack, name):
    assert attack.probe[name] == "EPERM"


def test_host_processes_are_invisible_and_unharmed(attack):
    for name in ("ptrace_host", "kill_host", "pidfd_host"):
        assert attack.probe[name] == "ESRCH", name
    assert attack.probe["host_pid_visible"] == "ENOENT"
    assert attack.sleeper.poll() is None, "the host process was killed"
    assert tracer_of(attack.sleeper.pid) == 0


def test_no_namespace_visible_inside_is_the_hosts_or_can_be_joined(attack):
    own = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"}
    for kind in own | {"time"}:
        seen = [int(x) for x in attack.probe[f"ns:{kind}"].split(",") if x]
        assert len(seen) == 1, (kind, seen)  # every process inside shares the container's
        host = os.stat(f"/proc/self/ns/{kind}").st_ino
        if kind in own:
            assert seen[0] != host, f"the container sees the host's {kind} namespace"
    tried, joined, errors = (x.split("=")[1] for x in attack.probe["setns"].split())
    assert int(tried) > 0 and joined == "0" and errors == "EPERM,"


def test_binaries_cannot_be_opened_for_writing_through_proc_exe(attack):
    assert attack.probe["exe_write"] == "opened=0 errors=ETXTBSY,"


def test_only_stdio_reaches_the_container(attack):
    assert attack.probe["fds"] == "0,1,2"


# --- the user namespace's ids on the host ---------------------------------------------

def test_files_made_by_root_inside_belong_to_the_mapped_uid_on_the_host(attack):
    base = attack.info["IdMapBase"]
    assert attack.rootfs_file == (base, base)
    # a plain (noidmap) volume: the container's root writes as its host uid
    assert attack.volumes["raw_open"] == "owner=ENOENT write=ENOENT create=ok"
    assert attack.made["raw_open"] == (base, base)


def test_volumes_without_idmap_are_not_writable_by_the_containers_root(attack):
    # The host's root owns the file and the dir: unmapped inside, so nobody's.
    assert attack.volumes["raw"] == f"owner={NOBODY}:{NOBODY} write=EACCES create=EACCES"
    assert attack.hostfile["raw"] == "host\n" and attack.made["raw"] is None


def test_read_only_volumes_are_not_writable(attack):
    assert attack.volumes["ro"] == "owner=0:0 write=EROFS create=EROFS"
    assert attack.hostfile["ro"] == "host\n" and attack.made["ro"] is None


def test_idmapped_volumes_show_and_write_with_the_hosts_owners(attack):
    # The default for -v in a container with its own user namespace (as Incus's
    # shifted disks, podman's :idmap): host root's files are the container root's,
    # and what it writes there is host root's. That is a choice the user makes by
    # binding a directory in; noidmap or ro keeps the container's root out.
    assert attack.volumes["idmap"] == "owner=0:0 write=ok create=ok"
    assert attack.hostfile["idmap"] == "host\ncontainer\n"
    assert attack.made["idmap"] == (0, 0)


# --- attacks on `hutch exec`, the runtime entering a running container ----------------

@pytest.fixture(scope="module")
def target(hutch: Hutch, probe_dir: str) -> Iterator[dict]:
    """A detached container watching /proc/*/exe while `hutch exec` enters it."""
    hutch("run", "-d", "--name", "target", "-v", f"{probe_dir}:/probe:ro", "busybox",
          "/probe/probe", "exe-watch", "300")  # until /tmp/stop-watch (a slow host too)
    try:
        info = hutch.inspect("target")
        host_uid = host_uid_of(info["State"]["Pid"])
        execs = [hutch("exec", "target", "/probe/probe", "fds").stdout,
                 hutch("exec", "target", "/probe/probe", "ns").stdout]
        for _ in range(5):
            hutch("exec", "target", "true")
        # The watcher ends the container as soon as it sees the file: the pid namespace
        # may go (SIGKILL, 137) before touch itself has exited.
        stop = hutch("exec", "target", "touch", "/tmp/stop-watch", check=False)
        assert stop.returncode in (0, 137), stop.stderr
        assert hutch("wait", "target").stdout.strip() == "0"
        watch = parse_probe(hutch("logs", "target").stdout)["exe_watch"]
        yield {"info": info, "host_uid": host_uid, "fds": parse_probe(execs[0]),
               "ns": parse_probe(execs[1]),
               "watch": dict(x.split("=", 1) for x in watch.split(" ", 1))}
    finally:
        hutch("rm", "-f", "target", check=False)


def test_exec_gives_no_host_binary_to_the_container(target):
    assert target["watch"]["writable"] == "0"
    ids = set(target["watch"]["seen"].split())
    assert ids, "the watcher saw no process at all"
    for path in HOST_BINARIES:
        st = os.stat(path)
        assert f"{st.st_dev}:{st.st_ino}" not in ids, \
            f"a process in the container showed {path} (the host's) as its /proc/PID/exe"


def test_exec_passes_only_stdio_and_joins_only_the_containers_namespaces(target):
    assert target["fds"]["fds"] == "0,1,2"
    assert target["ns"]["setns"].split()[1] == "joined=0"
    for kind in ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup"):
        assert str(os.stat(f"/proc/self/ns/{kind}").st_ino) + "," != target["ns"][f"ns:{kind}"]


def test_two_containers_get_disjoint_id_ranges(attack, target):
    a, b = attack.info["IdMapBase"], target["info"]["IdMapBase"]
    assert abs(a - b) >= 65536
    assert target["info"]["State"]["Pid"] and target["host_uid"] == b


@pytest.mark.parametrize("userns", ["auto", "host"])
def test_raw_sockets_fail_once_net_raw_is_dropped(hutch, probe_dir, userns):
    def raw(*extra: str) -> str:
        return hutch("run", "--rm", "--userns", userns, *extra, "-v", f"{probe_dir}:/probe:ro",
                     "busybox", "/probe/probe", "raw").stdout

    assert raw("--cap-drop", "NET_RAW") == "raw_socket EPERM\n"
    if userns == "host":
        # the control: the same container with NET_RAW opens one (in its own netns).
        # (With its own user namespace it cannot either way: its network namespace is
        # made by the engine and belongs to the host's user namespace.)
        assert raw() == "raw_socket ok\n"
