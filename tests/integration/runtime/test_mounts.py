"""config.json mounts, masked and readonly paths, the readonly root, /dev, sysctl."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hutch.testing.bundle import Bundle
from hutch.testing.cleanup import mounts_below

BundleFactory = Callable[..., Bundle]


def add_mount(b: Bundle, destination: str, type_: str, source: str,
              options: list[str] | None = None) -> None:
    m = {"destination": destination, "type": type_, "source": source}
    if options is not None:
        m["options"] = options
    b.config["mounts"].append(m)
    b.write()


def mountinfo_line(out: str, target: str) -> list[str]:
    """The fields of the mountinfo line (from a container's output) whose target is ``target``."""
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == target:
            return fields
    raise AssertionError(f"{target} is not mounted in:\n{out}")


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hostdir"
    d.mkdir()
    (d / "f").write_text("host\n")
    return d


# --- bind -------------------------------------------------------------------------------------

def test_read_only_bind_mount_refuses_writes(ctr, bundle: BundleFactory, host_dir: Path) -> None:
    b = bundle(["sh", "-c", "echo inside > /mnt/ro/f; echo rc=$?; touch /mnt/ro/new; "
                            "echo rc=$?; cat /mnt/ro/f"])
    add_mount(b, "/mnt/ro", "bind", str(host_dir), ["bind", "ro"])
    res = ctr.run(b)
    assert (res.returncode, res.stdout) == (0, "rc=1\nrc=1\nhost\n"), res
    assert "Read-only file system" in res.stderr
    assert (host_dir / "f").read_text() == "host\n"
    assert sorted(os.listdir(host_dir)) == ["f"]


def test_read_write_bind_mount_reaches_the_host(ctr, bundle: BundleFactory,
                                                host_dir: Path) -> None:
    b = bundle(["sh", "-c", "cat /mnt/rw/f && echo inside > /mnt/rw/new"])
    add_mount(b, "/mnt/rw", "bind", str(host_dir), ["rbind", "rw"])
    assert ctr.output(b) == "host\n"
    assert (host_dir / "new").read_text() == "inside\n"


def test_bind_mount_of_a_file(ctr, bundle: BundleFactory, host_dir: Path) -> None:
    b = bundle(["cat", "/etc/from-host"])
    add_mount(b, "/etc/from-host", "bind", str(host_dir / "f"), ["bind", "ro"])
    assert ctr.output(b) == "host\n"


@pytest.fixture
def tree_with_submount(tmp_path: Path) -> Iterator[Path]:
    """A host dir ``tree`` with a file, and a tmpfs mounted on ``tree/sub`` holding another."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "top").write_text("top\n")
    subprocess.run(["mount", "-t", "tmpfs", "hutch-sub", tree / "sub"], check=True)
    try:
        (tree / "sub" / "below").write_text("below\n")
        yield tree
    finally:
        subprocess.run(["umount", "--lazy", tree / "sub"], check=True)


def test_rbind_brings_the_submounts(ctr, bundle: BundleFactory, tree_with_submount: Path) -> None:
    b = bundle(["sh", "-c", "cat /mnt/tree/top /mnt/tree/sub/below"])
    add_mount(b, "/mnt/tree", "bind", str(tree_with_submount), ["rbind", "ro"])
    assert ctr.output(b) == "top\nbelow\n"


def test_bind_without_r_leaves_the_submounts_out(ctr, bundle: BundleFactory,
                                                 tree_with_submount: Path) -> None:
    b = bundle(["sh", "-c", "cat /mnt/tree/top; ls -A /mnt/tree/sub"])
    add_mount(b, "/mnt/tree", "bind", str(tree_with_submount), ["bind", "ro"])
    assert ctr.output(b) == "top\n"


def test_bind_mount_with_a_missing_source_fails(ctr, bundle: BundleFactory,
                                                tmp_path: Path) -> None:
    b = bundle(["true"])
    add_mount(b, "/mnt/x", "bind", str(tmp_path / "missing"), ["bind"])
    res = ctr.run(b)
    assert res.returncode != 0
    assert str(tmp_path / "missing") in res.stderr or "/mnt/x" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


def test_bind_mount_flags(ctr, bundle: BundleFactory, host_dir: Path) -> None:
    b = bundle(["cat", "/proc/self/mountinfo"])
    add_mount(b, "/mnt/flags", "bind", str(host_dir),
              ["rbind", "ro", "nosuid", "nodev", "noexec", "noatime"])
    flags = set(mountinfo_line(ctr.output(b), "/mnt/flags")[5].split(","))
    assert {"ro", "nosuid", "nodev", "noexec", "noatime"} <= flags, flags


@pytest.fixture
def shared_host_dir(host_dir: Path) -> Iterator[Path]:
    """``host_dir`` bind-mounted on itself and made shared; a ``sub`` directory in it."""
    (host_dir / "sub").mkdir()
    subprocess.run(["mount", "--bind", host_dir, host_dir], check=True)
    try:
        subprocess.run(["mount", "--make-shared", host_dir], check=True)
        yield host_dir
    finally:
        subprocess.run(["umount", "--lazy", "--recursive", host_dir], check=True)


@pytest.mark.parametrize("propagation,propagates", [
    ("rslave", True), ("rprivate", False), ("rshared", True)])
def test_propagation_option_of_a_bind_mount(ctr, bundle: BundleFactory, shared_host_dir: Path,
                                            propagation: str, propagates: bool) -> None:
    b = bundle(["sleep", "60"])
    add_mount(b, "/mnt/prop", "bind", str(shared_host_dir), ["rbind", propagation])
    pid = ctr.create(b)
    tag = f"hutch-bindprop-{propagation}"
    subprocess.run(["mount", "-t", "tmpfs", tag, shared_host_dir / "sub"], check=True)
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            seen = [line.split() for line in f if f" {tag} " in line]
        assert bool(seen) == propagates, seen
        if seen:
            assert seen[0][4] == "/mnt/prop/sub", seen
    finally:
        subprocess.run(["umount", shared_host_dir / "sub"], check=True)


# --- tmpfs and options ------------------------------------------------------------------------

def test_tmpfs_size_and_mode(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "stat -c %a /mnt/t; df -k /mnt/t | tail -1; "
                            "grep ' /mnt/t ' /proc/self/mountinfo"])
    add_mount(b, "/mnt/t", "tmpfs", "tmpfs", ["size=1m", "mode=1750", "nosuid", "nodev"])
    mode, df, info = ctr.output(b).splitlines()
    assert mode == "1750"
    assert df.split()[1] == "1024", df
    fields = info.split()
    assert {"nosuid", "nodev"} <= set(fields[5].split(",")), info
    assert "size=1024k" in fields[-1].split(","), info


def test_noexec_mount_refuses_exec(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "cp /bin/busybox /mnt/t/bb && /mnt/t/bb true; echo rc=$?"])
    add_mount(b, "/mnt/t", "tmpfs", "tmpfs", ["noexec"])
    assert ctr.output(b) == "rc=126\n"


def test_ro_tmpfs(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "touch /mnt/t/x; echo rc=$?"])
    add_mount(b, "/mnt/t", "tmpfs", "tmpfs", ["ro"])
    assert ctr.output(b) == "rc=1\n"


def test_default_mount_types(ctr, bundle: BundleFactory) -> None:
    out = ctr.output(bundle(["cat", "/proc/self/mountinfo"]))
    types = {}
    for line in out.splitlines():
        fields = line.split()
        types[fields[4]] = fields[fields.index("-") + 1]
    assert {k: types.get(k) for k in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                      "/sys")} == {
        "/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
        "/dev/mqueue": "mqueue", "/sys": "sysfs"}
    assert "ro" in mountinfo_line(out, "/sys")[5].split(",")


def test_the_old_root_is_detached(ctr, bundle: BundleFactory) -> None:
    b = bundle(["cat", "/proc/self/mountinfo"])
    out = ctr.output(b)
    linux = b.config["linux"]
    allowed = ({m["destination"] for m in b.config["mounts"]} | {"/"}
               | set(linux["maskedPaths"]) | set(linux["readonlyPaths"]))
    points = [line.split()[4] for line in out.splitlines()]
    assert set(points) <= allowed, sorted(set(points) - allowed)
    assert points[0] == "/"  # the first mount is the new root; nothing of the host above it


# --- masked and readonly paths ----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/proc/keys", "/proc/timer_list"])
def test_masked_proc_file_reads_empty(ctr, bundle: BundleFactory, path: str) -> None:
    assert Path(path).read_text(), f"the host's {path} should not be empty"
    assert ctr.output(bundle(["sh", "-c", f"wc -c < {path}"])) == "0\n"


def test_masked_paths_of_our_own(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "cat /secret; ls -A /secret-dir; echo end"])
    (b.rootfs / "secret").write_text("hidden\n")
    (b.rootfs / "secret-dir").mkdir()
    (b.rootfs / "secret-dir" / "inner").write_text("hidden\n")
    b.config["linux"]["maskedPaths"] += ["/secret", "/secret-dir", "/does-not-exist"]
    b.write()
    assert ctr.output(b) == "end\n"
    assert (b.rootfs / "secret").read_text() == "hidden\n"  # masked, not changed


def test_masked_directory_is_empty(ctr, bundle: BundleFactory) -> None:
    assert os.listdir("/sys/firmware"), "the host's /sys/firmware should not be empty"
    assert ctr.output(bundle(["sh", "-c", "ls -A /sys/firmware; echo end"])) == "end\n"


def test_readonly_proc_paths_refuse_writes(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "echo h > /proc/sysrq-trigger; echo rc=$?; "
                            "echo other > /proc/sys/kernel/hostname; echo rc=$?; hostname"])
    res = ctr.run(b)
    assert res.stdout == "rc=1\nrc=1\nhutch-test\n", res
    assert "Read-only file system" in res.stderr


def test_readonly_path_of_our_own(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "touch /ro-dir/x; echo rc=$?; touch /rw-dir/x; echo rc=$?"])
    (b.rootfs / "ro-dir").mkdir()
    (b.rootfs / "rw-dir").mkdir()
    b.config["linux"]["readonlyPaths"] = ["/ro-dir"]
    b.write()
    assert ctr.output(b) == "rc=1\nrc=0\n"
    assert os.listdir(b.rootfs / "ro-dir") == []


# --- readonly root ----------------------------------------------------------------------------

def test_readonly_root_refuses_writes_but_tmpfs_mounts_stay_writable(
        ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "touch /x; echo rc=$?; touch /tmp/y; echo rc=$?; "
                            "grep ' / ' /proc/self/mountinfo"],
               root={"readonly": True})
    add_mount(b, "/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev"])
    res = ctr.run(b)
    lines = res.stdout.splitlines()
    assert lines[:2] == ["rc=1", "rc=0"], res
    assert "ro" in lines[2].split()[5].split(","), lines[2]
    assert "Read-only file system" in res.stderr
    assert not (b.rootfs / "x").exists()


def test_writable_root_by_default(ctr, bundle: BundleFactory) -> None:
    b = bundle(["touch", "/x"])
    ctr.output(b)
    assert (b.rootfs / "x").exists()


# --- rootfsPropagation ------------------------------------------------------------------------
# This host's / is private, so nothing would propagate either way: the bundle is made a
# shared mount of its own first, as it is on hosts whose / is shared (systemd's default).

@pytest.fixture
def shared_bundle(bundle: BundleFactory) -> Iterator[Callable[..., Bundle]]:
    """Like ``bundle``, with the bundle directory bind-mounted on itself and made shared."""
    made: list[Path] = []

    def factory(args: list[str], **overrides: object) -> Bundle:
        b = bundle(args, **overrides)
        (b.rootfs / "mnt").mkdir(exist_ok=True)
        subprocess.run(["mount", "--bind", b.path, b.path], check=True)
        made.append(b.path)
        subprocess.run(["mount", "--make-shared", b.path], check=True)
        return b

    yield factory
    leaked = [m for m in mounts_below(made) if m not in map(str, made)]
    for path in made:
        subprocess.run(["umount", "--lazy", "--recursive", path], check=False)
    if leaked:
        pytest.fail(f"mounts leaked into the host's mount namespace: {leaked}", pytrace=False)


def _mount_sources(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split(" - ", 1)[1].split()[1] for line in f]


@pytest.mark.parametrize("propagation,propagates", [
    ("rslave", True), ("private", False), ("rprivate", False),
])
def test_rootfs_propagation_of_host_mounts(ctr, shared_bundle: Callable[..., Bundle],
                                           propagation: str, propagates: bool) -> None:
    b = shared_bundle(["sleep", "60"], linux={"rootfsPropagation": propagation})
    pid = ctr.create(b)
    tag = f"hutch-prop-{propagation}"
    subprocess.run(["mount", "-t", "tmpfs", tag, b.rootfs / "mnt"], check=True)
    try:
        assert (tag in _mount_sources(pid)) == propagates
    finally:
        subprocess.run(["umount", b.rootfs / "mnt"], check=True)


@pytest.mark.parametrize("propagation", [None, "slave", "rslave", "private", "rprivate"])
def test_mount_inside_does_not_propagate_to_a_shared_host_mount(
        ctr, shared_bundle: Callable[..., Bundle], propagation: str | None) -> None:
    tag = f"hutch-inside-{propagation}"
    b = shared_bundle(["sh", "-c", f"mount -t tmpfs {tag} /mnt && echo > /tmp/ready && "
                                   "sleep 60"],
                      process={"capabilities": {k: ["CAP_SYS_ADMIN"] for k in
                                                ("bounding", "effective", "permitted")}},
                      linux={"rootfsPropagation": propagation})
    pid = ctr.run_detached(b)
    ctr.wait_file(b.rootfs / "tmp/ready")
    assert tag in _mount_sources(pid)
    assert tag not in _mount_sources("self")


# --- destinations through symlinks ------------------------------------------------------------

@pytest.fixture
def host_tmp_name() -> Iterator[str]:
    """A unique name under the host's /tmp that must stay absent; removed if it appears."""
    name = f"hutch-escape-{uuid.uuid4().hex[:12]}"
    yield name
    path = Path("/tmp", name)
    if mounts_below([path]):
        subprocess.run(["umount", "--lazy", "--recursive", path], check=False)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


def test_mount_destination_escaping_through_a_relative_symlink(
        ctr, bundle: BundleFactory, host_tmp_name: str, cgroups_path: str) -> None:
    b = bundle(["sh", "-c", "grep -c hutch-evil /proc/self/mountinfo"],
               linux={"cgroupsPath": cgroups_path})
    (b.rootfs / "evil").symlink_to(f"../../../../../../../../tmp/{host_tmp_name}")
    add_mount(b, "/evil", "tmpfs", "hutch-evil")
    res = ctr.run(b)
    host = Path("/tmp", host_tmp_name)
    assert not host.exists(), "the runtime created a directory outside the rootfs"
    assert "hutch-evil" not in Path("/proc/self/mountinfo").read_text()
    assert ctr.runtime.list_ids() == []
    if ctr.runtime.name == "runc" and res.returncode == 0:
        # runc confines the path to the rootfs (securejoin): /tmp/<name> inside
        assert res.stdout == "1\n"
        assert (b.rootfs / "tmp" / host_tmp_name).is_dir()
        return
    assert res.returncode != 0, res
    assert "/evil" in res.stderr, res.stderr
    assert not os.listdir(ctr.runtime.root) if os.path.isdir(ctr.runtime.root) else True


def test_mount_destination_through_an_absolute_symlink_stays_in_the_rootfs(
        ctr, bundle: BundleFactory, host_tmp_name: str) -> None:
    b = bundle(["sh", "-c", "touch /abs/made-inside && "
                            f"grep -c ' /tmp/{host_tmp_name} ' /proc/self/mountinfo"])
    (b.rootfs / "abs").symlink_to(f"/tmp/{host_tmp_name}")
    add_mount(b, "/abs", "tmpfs", "hutch-abs")
    assert ctr.output(b) == "1\n"
    assert not Path("/tmp", host_tmp_name).exists()
    assert (b.rootfs / "tmp" / host_tmp_name).is_dir()


def test_mount_destination_through_an_absolute_symlink_in_the_middle(
        ctr, bundle: BundleFactory, host_tmp_name: str) -> None:
    b = bundle(["sh", "-c", f"grep -c ' /tmp/{host_tmp_name}/sub ' /proc/self/mountinfo"])
    (b.rootfs / "mid").symlink_to(f"/tmp/{host_tmp_name}")
    add_mount(b, "/mid/sub", "tmpfs", "hutch-mid")
    assert ctr.output(b) == "1\n"
    assert not Path("/tmp", host_tmp_name).exists()
    assert (b.rootfs / "tmp" / host_tmp_name / "sub").is_dir()


def test_mount_destination_with_dotdot_stays_in_the_rootfs(
        ctr, bundle: BundleFactory, host_tmp_name: str) -> None:
    b = bundle(["true"])
    add_mount(b, f"/../../../../../../tmp/{host_tmp_name}", "tmpfs", "hutch-dotdot")
    res = ctr.run(b)
    assert not Path("/tmp", host_tmp_name).exists()
    assert ctr.runtime.list_ids() == []
    if res.returncode != 0:  # refusing is right too
        assert host_tmp_name in res.stderr, res.stderr


# --- /dev -------------------------------------------------------------------------------------

DEV_NODES = {  # name: (major, minor)
    "null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
    "tty": (5, 0),
}
DEV_LINKS = {"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
             "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}


def test_default_devices(ctr, bundle: BundleFactory) -> None:
    names = " ".join(f"/dev/{n}" for n in DEV_NODES)
    b = bundle(["sh", "-c", f"stat -c '%n %F %t %T %a' {names}"])
    got = {}
    for line in ctr.output(b).splitlines():
        path, rest = line.split(" ", 1)
        kind, rest = rest.rsplit(" ", 3)[0], rest.rsplit(" ", 3)[1:]
        got[path.removeprefix("/dev/")] = (kind, int(rest[0], 16), int(rest[1], 16), rest[2])
    assert got == {n: ("character special file", *mm, "666") for n, mm in DEV_NODES.items()}


def test_default_device_links_and_dirs(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "for l in " + " ".join(DEV_LINKS) + "; do readlink /dev/$l; done;"
                            " stat -c '%n %F' /dev/shm /dev/pts /dev/pts/ptmx"])
    lines = ctr.output(b).splitlines()
    assert dict(zip(DEV_LINKS, lines)) == DEV_LINKS
    assert lines[len(DEV_LINKS):] == ["/dev/shm directory", "/dev/pts directory",
                                      "/dev/pts/ptmx character special file"]


def test_default_devices_work(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "head -c 4 /dev/zero | od -An -tx1; echo x > /dev/null; "
                            "head -c 16 /dev/urandom | wc -c; echo x > /dev/full; echo rc=$?"])
    res = ctr.run(b)
    assert res.stdout.split() == ["00", "00", "00", "00", "16", "rc=1"], res
    assert "No space left on device" in res.stderr


def test_linux_devices_are_created_with_their_modes(ctr, bundle: BundleFactory) -> None:
    b = bundle(["stat", "-c", "%n %F %t %T %a %u %g", "/dev/fuse", "/dev/hutch-fifo"])
    b.config["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640,
         "uid": 0, "gid": 5},
        {"path": "/dev/hutch-fifo", "type": "p", "fileMode": 0o600, "uid": 0, "gid": 0},
    ]
    b.write()
    lines = ctr.output(b).splitlines()
    assert lines == ["/dev/fuse character special file a e5 640 0 5",
                     "/dev/hutch-fifo fifo 0 0 600 0 0"]


def test_a_device_in_a_subdirectory(ctr, bundle: BundleFactory) -> None:
    b = bundle(["stat", "-c", "%F %t %T", "/dev/net/tun"])
    b.config["linux"]["devices"] = [{"path": "/dev/net/tun", "type": "c", "major": 10,
                                     "minor": 200, "fileMode": 0o666}]
    b.write()
    assert ctr.output(b) == "character special file a c8\n"


# --- sysctl -----------------------------------------------------------------------------------

def test_sysctl_in_the_containers_network_namespace(ctr, bundle: BundleFactory) -> None:
    host_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    b = bundle(["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax"],
               linux={"sysctl": {"net.ipv4.ip_forward": "1", "kernel.msgmax": "4321"}})
    assert ctr.output(b) == "1\n4321\n"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_before
    assert Path("/proc/sys/kernel/msgmax").read_text() != "4321\n"


def test_sysctl_of_a_namespace_the_container_does_not_own_is_refused(
        ctr, bundle: BundleFactory) -> None:
    before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    b = bundle(["true"], linux={"sysctl": {"net.ipv4.ip_forward": "1"}})
    b.config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    b.write()
    res = ctr.run(b)
    assert res.returncode != 0
    assert "net.ipv4.ip_forward" in res.stderr, res.stderr
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == before
    assert ctr.runtime.list_ids() == []
