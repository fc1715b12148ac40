"""linux.resources on this host's real cgroups, checked from outside.

The tests use whichever manager the host gets (v1 on legacy/hybrid hosts, v2 on
unified ones), so they run unchanged in the v2 virtual machine; each reads the
effect where that version shows it. Every test works below our own cgroup under
hutch-test-<random>, and the ``lim`` fixture kills, reaps and removes all of it,
also when the test fails. Processes wait for a line on stdin before they start
their work, so they are in the cgroup (add_pid) before it begins.

On cgroup v2 a cgroup that holds processes cannot give domain controllers
(memory, io) to children (the no-internal-processes rule), and turning on a
threaded one (cpu, pids) makes it a thread root whose new children are "domain
invalid". Our own cgroup holds us, so below it nothing can be limited. In the v2
VM (HUTCH_VM_GUEST=1, a delegated service cgroup as under systemd) the
``delegated`` fixture therefore does for this module what systemd's
DelegateSubgroup= and docker's dind entrypoint do: it moves the processes of our
own cgroup into a leaf, enables the controllers, and the tests' cgroups go next
to the leaf; all of it is undone at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hutch.cgroups import detect_mode, new_manager
from hutch.cgroups.mode import find_hierarchies, read_mounts, read_own
from hutch.cgroups.path import place
from hutch.cgroups.tree import remove_dirs, wait_until
from hutch.cgroups.v2.manager import V2Manager
from hutch.errors import HutchError, InvalidArgument, Unsupported


def _host_mode() -> str:
    try:
        return detect_mode()
    except HutchError as e:
        return f"none ({e})"


MODE = _host_mode()
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups"),
    pytest.mark.skipif(MODE.startswith("none"), reason=f"no cgroups here: {MODE}"),
]

PR_SET_CHILD_SUBREAPER = 36
GO = "import sys; sys.stdin.readline()\n"  # every test process waits for "go" first


def _subreaper(on: bool) -> None:
    from hutch.linux.syscalls import prctl
    prctl(PR_SET_CHILD_SUBREAPER, int(on))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _keyed(path: str) -> dict[str, int]:
    out = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _online_cpus() -> list[int]:
    cpus: list[int] = []
    for part in _read("/sys/devices/system/cpu/online").split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def _v2_hierarchy():  # type: ignore[no-untyped-def]
    v2 = [h for h in find_hierarchies(read_mounts(), read_own()) if h.version == 2]
    return v2[0] if v2 else None


@pytest.fixture(scope="module")
def delegated() -> Iterator[str | None]:
    """The cgroup the tests' cgroups go below: None for "relative, below our own"."""
    h = _v2_hierarchy() if MODE == "unified" else None
    own_dir = h.dir_of(h.own) if h is not None else None
    if (h is None or own_dir is None or h.own == "/" or os.environ.get("HUTCH_VM_GUEST") != "1"
            or not _read(os.path.join(own_dir, "cgroup.procs"))):
        yield None
        return
    leaf = os.path.join(own_dir, f"hutch-test-supervisor-{secrets.token_hex(2)}")
    os.mkdir(leaf)
    control = os.path.join(own_dir, "cgroup.subtree_control")
    enabled: list[str] = []
    try:
        for pid in _read(os.path.join(own_dir, "cgroup.procs")).split():
            try:
                Path(leaf, "cgroup.procs").write_text(pid)
            except ProcessLookupError:
                continue
        have = set(_read(control).split())
        for c in _read(os.path.join(own_dir, "cgroup.controllers")).split():
            if c not in have:
                Path(control).write_text(f"+{c}")
                enabled.append(c)
        yield h.own
    finally:
        for c in reversed(enabled):
            Path(control).write_text(f"-{c}")
        for pid in _read(os.path.join(leaf, "cgroup.procs")).split():
            try:
                Path(own_dir, "cgroup.procs").write_text(pid)
            except ProcessLookupError:
                continue
        os.rmdir(leaf)


class Limits:
    """Managers and processes of one test; ``cleanup()`` undoes all of it."""

    def __init__(self, parent: str | None = None) -> None:
        self.parent = parent  # an absolute cgroup for the tests' cgroups, or None: our own
        self.top = f"hutch-test-{secrets.token_hex(4)}"
        self.managers: list = []
        self.procs: list[subprocess.Popen[bytes]] = []
        _subreaper(True)  # grandchildren (forks) are ours to reap, not PID 1's

    def manager(self, sub: str = "c1"):  # type: ignore[no-untyped-def]
        path = f"{self.top}/{sub}"
        m = new_manager(f"{self.parent.rstrip('/')}/{path}" if self.parent else path, sub)
        self.managers.append(m)
        m.create()
        return m

    def cgroup2_manager(self, sub: str) -> V2Manager:
        """A v2 manager on the cgroup2 hierarchy even on a hybrid host (for BPF)."""
        h = _v2_hierarchy()
        if h is None:
            pytest.skip("no cgroup2 hierarchy is mounted")
        cg = place(f"{self.top}/{sub}", self.parent or h.own)
        m = V2Manager(h.dir_of(cg), cg)  # no top: create() enables no controllers
        self.managers.append(m)
        m.create()
        return m

    def spawn(self, code: str, *args: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-c", GO + code, *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, start_new_session=True)
        self.procs.append(p)
        return p

    def start(self, m, code: str,  # type: ignore[no-untyped-def]
              *args: str) -> subprocess.Popen[bytes]:
        """Spawn, put into ``m``, then let it go."""
        p = self.spawn(code, *args)
        m.add_pid(p.pid)
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
        return p

    def top_dirs(self) -> list[str]:
        dirs = set()
        for m in self.managers:
            for d in m.paths.values():
                while d != "/" and os.path.basename(d) != self.top:
                    d = os.path.dirname(d)
                if d != "/":
                    dirs.add(d)
        return sorted(dirs)

    def cleanup(self) -> None:
        errors: list[BaseException] = []
        for m in self.managers:
            try:
                if m.exists():
                    m.kill_all(signal.SIGKILL)
            except BaseException as e:  # noqa: BLE001 - keep cleaning, report at the end
                errors.append(e)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired as e:
                errors.append(e)
        for m in self.managers:
            wait_until(lambda m=m: not m.exists() or not m.pids(), 10)  # type: ignore[misc]
        quiet = 0
        while quiet < 5:  # reap the grandchildren handed to us
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            quiet = 0 if pid else quiet + 1
            if not pid:
                time.sleep(0.02)
        _subreaper(False)
        try:
            remove_dirs(self.top_dirs(), timeout=10)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def lim(delegated: str | None) -> Iterator[Limits]:
    c = Limits(delegated)
    try:
        yield c
    finally:
        c.cleanup()
        for d in c.top_dirs():
            assert not os.path.exists(d), f"{d} left behind"


def _cpu_seconds(m) -> float:  # type: ignore[no-untyped-def]
    """CPU time used by the cgroup, from outside: v1 cpuacct.usage, v2 cpu.stat."""
    if m.version == 1:
        return int(_read(os.path.join(m.paths["cpuacct"], "cpuacct.usage"))) / 1e9
    return _keyed(os.path.join(m.directory, "cpu.stat"))["usage_usec"] / 1e6


def _controller_dir(m, controller: str) -> str:  # type: ignore[no-untyped-def]
    return str(m.paths[controller] if m.version == 1 else m.directory)


BUSY = "while True:\n    pass\n"

HOG = """
import sys
chunks = []
for _ in range(int(sys.argv[1])):
    chunks.append(b"\\x01" * (1 << 20))  # touched pages, 1 MiB at a time
print("survived", flush=True)
"""


# --- memory -------------------------------------------------------------------------------

def test_memory_hog_over_its_limit_is_oom_killed_and_one_under_survives(lim: Limits) -> None:
    limit = 48 << 20
    mem = {"memory": {"limit": limit, "swap": limit}}  # memory+swap = limit: no swap either
    hog_cg, small_cg = lim.manager("hog"), lim.manager("small")
    hog_cg.apply(mem)
    small_cg.apply(mem)

    hog = lim.start(hog_cg, HOG, "160")
    small = lim.start(small_cg, HOG, "8")
    hog_out, _ = hog.communicate(timeout=30)
    small_out, _ = small.communicate(timeout=30)

    assert hog.returncode == -signal.SIGKILL, (hog.returncode, hog_out)
    assert b"survived" not in hog_out
    assert small.returncode == 0 and b"survived" in small_out
    d = _controller_dir(hog_cg, "memory")
    if hog_cg.version == 1:
        oom = _keyed(os.path.join(d, "memory.oom_control"))
        failcnt = int(_read(os.path.join(d, "memory.failcnt")))
        peak = int(_read(os.path.join(d, "memory.max_usage_in_bytes")))
        print(f"v1 hog: oom_control {oom}, failcnt {failcnt}, peak {peak} of {limit}")
        assert oom.get("oom_kill", 0) >= 1, oom
        # (Linux 6.18 leaves memory.failcnt at 0 here; the peak shows the limit was hit.)
        assert failcnt > 0 or peak >= limit - (1 << 20)
        assert int(_read(os.path.join(d, "memory.limit_in_bytes"))) == limit
    else:
        events = _keyed(os.path.join(d, "memory.events"))
        print(f"v2 hog: memory.events {events}")
        assert events["max"] > 0 and events["oom_kill"] >= 1, events
        assert int(_read(os.path.join(d, "memory.max"))) == limit
    small_d = _controller_dir(small_cg, "memory")
    oom_file = "memory.oom_control" if small_cg.version == 1 else "memory.events"
    assert _keyed(os.path.join(small_d, oom_file)).get("oom_kill", 0) == 0


# --- cpu ----------------------------------------------------------------------------------

def _measure(managers: list, seconds: float) -> tuple[list[float], float]:  # type: ignore[type-arg]
    time.sleep(0.3)  # let the processes get going
    start = [_cpu_seconds(m) for m in managers]
    t0 = time.monotonic()
    time.sleep(seconds)
    used = [_cpu_seconds(m) - s for m, s in zip(managers, start)]
    return used, time.monotonic() - t0


def test_busy_loop_under_a_20_percent_quota_uses_20_percent(lim: Limits) -> None:
    m = lim.manager()
    m.apply({"cpu": {"quota": 20000, "period": 100000}})
    m.apply({"cpu": {"quota": 20000, "period": 100000}})  # idempotent
    lim.start(m, BUSY)
    (used,), wall = _measure([m], 3.0)
    share = used / wall
    print(f"20% quota: measured {share:.1%} of a CPU over {wall:.2f}s")
    assert 0.15 <= share <= 0.25, f"{share:.1%} of a CPU, wanted 20% +- 5"


def test_shares_1024_and_256_on_one_cpu_split_it_80_20(lim: Limits) -> None:
    cpu = str(_online_cpus()[-1])
    heavy, light = lim.manager("heavy"), lim.manager("light")
    heavy.apply({"cpu": {"shares": 1024, "cpus": cpu}})
    light.apply({"cpu": {"shares": 256, "cpus": cpu}})
    lim.start(heavy, BUSY)
    lim.start(light, BUSY)
    (h, lt), wall = _measure([heavy, light], 3.0)
    ratio = h / (h + lt)
    print(f"shares 1024:256 on cpu {cpu}: {ratio:.1%} / {1 - ratio:.1%}"
          f" ({h:.2f}s and {lt:.2f}s of CPU in {wall:.2f}s)")
    assert 0.70 <= ratio <= 0.90, f"heavy got {ratio:.1%}, wanted 80% +- 10"
    assert h + lt <= wall * 1.15, "both ran on more than one CPU"


def test_cpuset_pins_a_process_to_the_cpu_it_names(lim: Limits) -> None:
    cpu = _online_cpus()[-1]
    m = lim.manager()
    m.apply({"cpu": {"cpus": str(cpu)}})
    p = lim.start(m, "import time; time.sleep(60)")
    with open(f"/proc/{p.pid}/status") as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    assert status["Cpus_allowed_list"].strip() == str(cpu)


# --- pids ---------------------------------------------------------------------------------

FORKER = """
import json, os, sys
r, w = os.pipe()
children = []

def fork_until_refused(most):
    made = 0
    for _ in range(most):
        try:
            pid = os.fork()
        except BlockingIOError:  # EAGAIN: the pids controller said no
            break
        if pid == 0:
            os.close(w)
            os.read(r, 1)  # live until the parent closes the pipe
            os._exit(0)
        children.append(pid)
        made += 1
    return made

print(json.dumps({"forks": fork_until_refused(int(sys.argv[1]))}), flush=True)
sys.stdin.readline()  # "again": after update
print(json.dumps({"forks": fork_until_refused(int(sys.argv[1]))}), flush=True)
os.close(w)
for pid in children:
    os.waitpid(pid, 0)
"""


def _line(p: subprocess.Popen[bytes]) -> dict:  # type: ignore[type-arg]
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line, "the process died"
    out: dict = json.loads(line)
    return out


def test_pids_limit_refuses_the_fork_past_it_and_update_raises_it_live(lim: Limits) -> None:
    m = lim.manager()
    m.apply({"pids": {"limit": 4}})
    p = lim.start(m, FORKER, "10")
    assert _line(p) == {"forks": 3}  # the process itself is the 4th
    pids_dir = _controller_dir(m, "pids")
    assert _keyed(os.path.join(pids_dir, "pids.events")).get("max", 0) >= 1

    m.update({"pids": {"limit": 7}})
    assert _read(os.path.join(pids_dir, "pids.max")) == "7"
    assert p.stdin is not None
    p.stdin.write(b"again\n")
    p.stdin.flush()
    assert _line(p) == {"forks": 3}  # 4 -> 7: three more
    p.communicate(timeout=10)
    assert p.returncode == 0


# --- block I/O ----------------------------------------------------------------------------

@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    """A 16 MiB file-backed loop device, detached at the end."""
    if shutil.which("losetup") is None:
        pytest.fail("losetup not found: install util-linux")
    if not os.path.exists("/dev/loop-control") and shutil.which("modprobe"):
        subprocess.run(["modprobe", "loop"], check=False, capture_output=True)  # a fresh VM
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.write(os.urandom(1 << 20) * 16)
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False)


DD = "import os, sys; os.execvp('dd', ['dd', *sys.argv[1:]])"


def _timed_read(lim: Limits, m, dev: str, mib: int) -> float:  # type: ignore[no-untyped-def]
    args = [f"if={dev}", "of=/dev/null", "bs=64k", f"count={mib * 16}", "iflag=direct"]
    t0 = time.monotonic()
    p = lim.start(m, DD, *args) if m is not None else None
    if p is None:
        subprocess.run(["dd", *args], check=True, capture_output=True)
    else:
        p.communicate(timeout=30)
        assert p.returncode == 0
    return time.monotonic() - t0


def test_read_bps_throttle_slows_a_direct_read_to_the_limit(lim: Limits, loop_device: str) -> None:
    rdev = os.stat(loop_device).st_rdev
    rate = 2 << 20
    m = lim.manager()
    m.apply({"blockIO": {"throttleReadBpsDevice": [
        {"major": os.major(rdev), "minor": os.minor(rdev), "rate": rate}]}})
    free = _timed_read(lim, None, loop_device, 4)
    throttled = _timed_read(lim, m, loop_device, 4)
    measured = (4 << 20) / throttled
    print(f"read 4 MiB from {loop_device}: {free:.2f}s unthrottled, {throttled:.2f}s at a"
          f" {rate >> 20} MiB/s limit = {measured / (1 << 20):.2f} MiB/s")
    assert free < throttled / 2, "the device is too slow to show a throttle"
    assert 0.75 * rate <= measured <= 1.25 * rate, f"{measured:.0f} B/s, limit {rate}"


# --- devices ------------------------------------------------------------------------------

PROBE = """
import errno, json, os, sys
out = {}
for path, flags in (("/dev/null", os.O_RDWR), ("/dev/zero", os.O_RDONLY)):
    try:
        os.close(os.open(path, flags))
        out[path] = "ok"
    except OSError as e:
        out[path] = errno.errorcode[e.errno]
node = sys.argv[1]
try:
    os.mknod(node, 0o600 | 0o020000, os.makedev(1, 3))
    out["mknod"] = "ok"
    os.unlink(node)
except OSError as e:
    out["mknod"] = errno.errorcode[e.errno]
print(json.dumps(out), flush=True)
"""

ONLY_NULL_RW = [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]


def _probe(lim: Limits, m, tmp_path: Path) -> dict:  # type: ignore[no-untyped-def,type-arg]
    p = lim.start(m, PROBE, str(tmp_path / f"null-{secrets.token_hex(2)}"))
    out, _ = p.communicate(timeout=20)
    result: dict = json.loads(out)
    return result


def test_the_devices_list_stops_open_and_mknod_of_a_device_not_allowed(
        lim: Limits, tmp_path: Path) -> None:
    m = lim.manager()
    m.apply({"devices": ONLY_NULL_RW})
    m.apply({"devices": ONLY_NULL_RW})  # idempotent
    assert _probe(lim, m, tmp_path) == {"/dev/null": "ok", "/dev/zero": "EPERM",
                                        "mknod": "EPERM"}
    if m.version == 1 and "devices" in m.paths:
        assert _read(os.path.join(m.paths["devices"], "devices.list")) == "c 1:3 rw"


def test_a_bpf_device_program_on_cgroup2_filters_and_is_replaced(
        lim: Limits, tmp_path: Path) -> None:
    """The v2 path (BPF_PROG_TYPE_CGROUP_DEVICE); on a hybrid host through its cgroup2 mount."""
    from hutch.linux import bpf
    m = lim.cgroup2_manager("bpf")
    m.apply({"devices": ONLY_NULL_RW})
    assert _probe(lim, m, tmp_path) == {"/dev/null": "ok", "/dev/zero": "EPERM",
                                        "mknod": "EPERM"}
    m.update({"devices": [{"allow": True, "access": "rwm"},
                          {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]})
    assert _probe(lim, m, tmp_path) == {"/dev/null": "EPERM", "/dev/zero": "ok", "mknod": "ok"}
    fd = os.open(m.directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ids, _ = bpf.query_device_programs(fd)
    finally:
        os.close(fd)
    assert len(ids) == 1, f"programs attached: {ids}"


# --- bad input ----------------------------------------------------------------------------

def test_bad_input_changes_nothing(lim: Limits) -> None:
    first = _online_cpus()[0]
    m = lim.manager()
    m.apply({"pids": {"limit": 7}, "cpu": {"cpus": str(first)}})
    pids_file = os.path.join(_controller_dir(m, "pids"), "pids.max")
    cpus_file = os.path.join(_controller_dir(m, "cpuset"), "cpuset.cpus")
    before = (_read(pids_file), _read(cpus_file))

    with pytest.raises(InvalidArgument, match=r"cpu\.cpus: '99' names cpu 99, which this host"):
        m.apply({"pids": {"limit": 50}, "cpu": {"cpus": "99"}})
    with pytest.raises(InvalidArgument, match=r"memory\.limit: must be an integer"):
        m.update({"pids": {"limit": 50}, "memory": {"limit": "1g"}})
    with pytest.raises(InvalidArgument, match="unknown field 'shars'"):
        m.update({"pids": {"limit": 50}, "cpu": {"shars": 10}})
    host_lacks = ({"unified": {"pids.max": "50"}} if m.version == 1  # v1 has no unified keys
                  else {"network": {"classID": 0x100001}})  # v2 has no net_cls
    with pytest.raises(Unsupported):
        m.apply({"pids": {"limit": 50}, **host_lacks})
    assert (_read(pids_file), _read(cpus_file)) == before == ("7", str(first))


@pytest.mark.cgroup_v1
def test_v1_refuses_unified_keys_and_swap_without_accounting(lim: Limits) -> None:
    m = lim.manager()
    with pytest.raises(Unsupported, match="unified: raw cgroup v2 keys"):
        m.apply({"unified": {"memory.high": "100M"}})
    mem = m.paths["memory"]
    if not os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
        with pytest.raises(Unsupported, match="no swap accounting"):
            m.apply({"memory": {"limit": 1 << 30, "swap": 2 << 30}})
    else:  # lowering and raising both pass the kernel's limit <= memsw order
        m.apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}})
        m.apply({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
        m.apply({"memory": {"limit": 256 << 20, "swap": 512 << 20}})
        m.apply({"memory": {"limit": -1}})
        assert int(_read(os.path.join(mem, "memory.memsw.limit_in_bytes"))) > 1 << 60


@pytest.mark.cgroup_v2
def test_v2_writes_converted_values_and_unified_keys(lim: Limits) -> None:
    m = lim.manager()
    m.apply({"cpu": {"shares": 1024, "quota": 50000, "period": 100000},
             "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20},
             "unified": {"memory.high": str(48 << 20)}})
    d = m.directory
    assert _read(f"{d}/cpu.weight") == "39"
    assert _read(f"{d}/cpu.max") == "50000 100000"
    assert _read(f"{d}/memory.max") == str(64 << 20)
    assert _read(f"{d}/memory.low") == str(16 << 20)
    assert _read(f"{d}/memory.high") == str(48 << 20)
    if os.path.exists(f"{d}/memory.swap.max"):
        assert _read(f"{d}/memory.swap.max") == str(32 << 20)
    with pytest.raises(Unsupported, match="no realtime"):
        m.apply({"cpu": {"realtimeRuntime": 1000}})
    with pytest.raises(Unsupported, match="net_cls"):
        m.apply({"network": {"classID": 1}})
    assert not os.path.exists(f"{d}/devices.list")  # devices are a BPF program on v2
