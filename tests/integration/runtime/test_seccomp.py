"""Seccomp on the real kernel.

Two parts:

- The filter alone: a forked child runs ``prepare()`` + ``load()`` and makes
  system calls (ctypes or os), reporting results through a pipe. These need
  nothing from the runtime.
- Containers: config.json's linux.seccomp through the runtime under test. They
  skip while the runtime's `features` says seccomp is not enabled (hutch-runtime
  before the filter is wired into init and exec); with HUTCH_REQUIRE_ALL=1 that
  skip is a failure. Check them against runc with HUTCH_TEST_RUNTIME=runc.

The default profile's dangerous calls are probed without ever running them:
the child first loads a "marker" filter that answers each probed call with
errno 4000 and allows everything else, then the profile under test. For calls
of the same precedence the newest filter wins, so a call the profile denies
fails with its EPERM, and one it allows reaches the marker (4000), never the
kernel: reboot, kexec_load or swapoff are safe to probe.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from hutch.linux import constants as C
from hutch.linux.syscalls import prctl
from hutch.oci.seccomp_default import default_profile
from hutch.runtime import seccomp
from hutch.testing.bundle import CAPABILITIES as BUNDLE_CAPS

MARKER = 4000
SIGSYS_EXIT = 128 + signal.SIGSYS  # 159: how `run` reports a process killed by SIGSYS

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def nr(name: str) -> int:
    number = seccomp.binding().resolve_syscall(0, name)
    assert number >= 0, f"{name}: no number on this architecture"
    return int(number)


def call(number: int, *args: int) -> int:
    """syscall(number, args...): 0 or more on success, -errno on failure."""
    ret = _libc.syscall(ctypes.c_long(number), *(ctypes.c_ulong(a & (2**64 - 1))
                                                 for a in args))
    return -ctypes.get_errno() if ret == -1 else int(ret)


@dataclass
class Outcome:
    status: int           # as os.waitpid gives it
    result: Any = None    # what the child's function returned
    error: str = ""       # or the exception it raised (repr)

    @property
    def signal(self) -> int:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else 0


def in_child(fn: Callable[[], Any], nnp: bool = True) -> Outcome:
    """Run ``fn`` in a forked child (no_new_privs set first unless ``nnp`` is False)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            if nnp:
                prctl(C.PR_SET_NO_NEW_PRIVS, 1)
            data = pickle.dumps(("ok", fn()))
        except BaseException as e:  # noqa: BLE001
            data = pickle.dumps(("error", repr(e)))
        os.write(w, data)
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return Outcome(status)
    kind, value = pickle.loads(b"".join(chunks))
    return Outcome(status, value, "") if kind == "ok" else Outcome(status, None, value)


def filtered(profile: dict[str, Any], probe: Callable[[], Any], nnp: bool = True,
             marker_for: list[str] | None = None) -> Outcome:
    """prepare ``profile`` here, then in a child: (marker filter,) load, probe()."""
    filt = seccomp.prepare(profile)
    marker = None
    if marker_for:
        marker = seccomp.prepare({"defaultAction": "SCMP_ACT_ALLOW", "flags": [], "syscalls": [
            {"names": marker_for, "action": "SCMP_ACT_ERRNO", "errnoRet": MARKER}]},
            require_execve=False)

    def child() -> Any:
        if marker is not None:
            marker.load()
        filt.load()
        return probe()
    return in_child(child, nnp)


def deny(names: list[str], action: str = "SCMP_ACT_ERRNO", **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": names, "action": action}
    rule.update(extra)
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}


def os_errno(fn: Callable[[], Any]) -> int:
    try:
        fn()
    except OSError as e:
        return e.errno or 0
    return 0


# === the filter alone ==========================================================================

def test_denied_mkdir_fails_with_eperm_and_the_rest_works(tmp_path) -> None:
    def probe() -> tuple[int, list[str]]:
        return os_errno(lambda: os.mkdir(tmp_path / "new")), sorted(os.listdir(tmp_path))
    (tmp_path / "old").write_text("x")
    out = filtered(deny(["mkdir", "mkdirat"], errnoRet=1), probe)
    assert (out.error, out.result) == ("", (errno.EPERM, ["old"]))
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL",
                                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
def test_killing_actions_end_the_process_with_sigsys(action: str) -> None:
    out = filtered(deny(["getppid"], action), lambda: os.getppid())
    assert out.signal == signal.SIGSYS, out


def test_errno_ret(tmp_path) -> None:
    out = filtered(deny(["mkdir", "mkdirat"], errnoRet=errno.ENOSPC),
                   lambda: os_errno(lambda: os.mkdir(tmp_path / "x")))
    assert out.result == errno.ENOSPC


def test_trace_without_a_tracer_is_enosys() -> None:
    out = filtered(deny(["umask"], "SCMP_ACT_TRACE"), lambda: call(nr("umask"), 0o22))
    assert out.result == -errno.ENOSYS


def test_log_lets_the_call_through() -> None:
    out = filtered({"defaultAction": "SCMP_ACT_LOG"}, lambda: os.getppid())
    assert out.result == os.getpid()


def test_default_errno_ret() -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EACCES,
               "syscalls": [{"names": ["execve", "execveat", "write", "exit_group", "exit",
                                       "close", "munmap", "mmap", "brk", "rt_sigaction",
                                       "rt_sigprocmask", "madvise"],
                             "action": "SCMP_ACT_ALLOW"}]}
    out = filtered(profile, lambda: call(nr("getppid")))
    assert out.result == -errno.EACCES


def test_argument_condition_denies_personality_unless_zero() -> None:
    profile = deny(["personality"], args=[{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}])

    def probe() -> list[int]:
        return [call(nr("personality"), v) for v in (0, 8, 0xFFFFFFFF)]
    out = filtered(profile, probe)
    assert out.result[0] >= 0 and out.result[1:] == [-errno.EPERM, -errno.EPERM], out


@pytest.mark.parametrize("op, value, value_two, results", [
    ("SCMP_CMP_NE", 5, 0, {4: True, 5: False}),
    ("SCMP_CMP_LT", 5, 0, {4: True, 5: False}),
    ("SCMP_CMP_LE", 5, 0, {5: True, 6: False}),
    ("SCMP_CMP_EQ", 5, 0, {5: True, 4: False}),
    ("SCMP_CMP_GE", 5, 0, {5: True, 4: False}),
    ("SCMP_CMP_GT", 5, 0, {6: True, 5: False}),
    ("SCMP_CMP_MASKED_EQ", 0o070, 0o020, {0o027: True, 0o022: True, 0o077: False}),
])
def test_every_operator_on_the_kernel(op: str, value: int, value_two: int,
                                      results: dict[int, bool]) -> None:
    profile = deny(["umask"], args=[{"index": 0, "value": value, "valueTwo": value_two,
                                     "op": op}])
    out = filtered(profile, lambda: {v: call(nr("umask"), v) == -errno.EPERM for v in results})
    assert out.result == results


@pytest.mark.parametrize("flags", [["SECCOMP_FILTER_FLAG_TSYNC"], ["SECCOMP_FILTER_FLAG_LOG"],
                                   ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], None, []])
def test_flags_load(flags: list[str] | None) -> None:
    profile = deny(["mkdir"])
    if flags is not None:
        profile["flags"] = flags
        if not set(flags) <= set(seccomp.supported_flags()):
            pytest.skip(f"{flags}: not supported here")

    def probe() -> dict[str, str]:
        with open("/proc/self/status", "rb") as f:
            lines = f.read().decode().splitlines()
        return dict(line.split(":\t", 1) for line in lines if line.startswith("Seccomp"))
    out = filtered(profile, probe)
    assert out.result["Seccomp"] == "2", out  # SECCOMP_MODE_FILTER
    assert out.result["Seccomp_filters"] == "1"


def test_load_makes_no_file_access_no_import_no_fork(tmp_path) -> None:
    """After prepare, load() must work where pivot_root has left us: no library,
    no module to import. A first filter kills the child on any file or process call."""
    watch = ["open", "openat", "openat2", "stat", "lstat", "newfstatat", "statx", "access",
             "faccessat", "faccessat2", "readlink", "readlinkat", "execve", "execveat",
             "clone", "clone3", "fork", "vfork", "chdir", "getcwd"]
    watchdog = seccomp.prepare({"defaultAction": "SCMP_ACT_ALLOW", "flags": [],
                                "syscalls": [{"names": watch,
                                              "action": "SCMP_ACT_KILL_PROCESS"}]},
                               require_execve=False)
    filt = seccomp.prepare(default_profile(set(BUNDLE_CAPS)))
    empty = tmp_path / "empty"
    empty.mkdir()

    def probe() -> int:
        os.chroot(empty)  # like after pivot_root: nothing of the host's is there
        import builtins

        def no_import(*a: object, **kw: object) -> object:
            raise AssertionError("import after pivot_root")
        builtins.__import__ = no_import
        watchdog.load()
        filt.load()
        return call(nr("keyctl"), 0, 0)
    out = in_child(probe)
    assert out.signal == 0, f"load() made a watched system call (killed by signal {out.signal})"
    assert (out.error, out.result) == ("", -errno.EPERM)


def test_load_without_privilege_says_what_to_do() -> None:
    filt = seccomp.prepare(deny(["mkdir"]))

    def probe() -> None:
        os.setresuid(65534, 65534, 65534)  # no capabilities left, no no_new_privs
        filt.load()
    out = in_child(probe, nnp=False)
    assert out.error.startswith("PermissionError(13, 'seccomp_load: "), out
    assert "process.noNewPrivileges" in out.error


def test_without_no_new_privs_root_can_load() -> None:
    out = filtered(deny(["getppid"]), lambda: call(nr("getppid")), nnp=False)
    assert out.result == -errno.EPERM


def test_prepare_and_load_of_the_default_profile_are_quick() -> None:
    t0 = time.perf_counter()
    filt = seccomp.prepare(default_profile(set(BUNDLE_CAPS)))
    prepared = time.perf_counter() - t0

    def probe() -> float:
        t = time.perf_counter()
        filt.load()
        return time.perf_counter() - t
    out = in_child(probe)
    print(f"\ndefault profile: prepare {prepared * 1e3:.1f} ms, load {out.result * 1e3:.1f} ms, "
          f"{filt.rules} rules")
    assert prepared + out.result < 0.25


# --- the default profile on the kernel ---------------------------------------------------------

CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x20000, 0x40000000
SIGCHLD = 17

# name -> arguments that fail harmlessly should a call ever get through
DENIED_PROBES: dict[str, tuple[int, ...]] = {
    "add_key": (0, 0, 0, 0, 0), "keyctl": (0, 0), "request_key": (0, 0, 0, 0),
    "init_module": (0, 0, 0), "finit_module": (-1, 0, 0), "delete_module": (0, 0),
    "kexec_load": (0, 0, 0, 0xDEAD0000), "kexec_file_load": (-1, -1, 0, 0, 0xDEAD0000),
    "reboot": (0, 0, 0, 0), "swapon": (0, 0), "swapoff": (0,),
    "mount": (0, 0, 0, 0, 0), "umount2": (0, 0), "pivot_root": (0, 0),
    "open_tree": (-1, 0, 0), "move_mount": (-1, 0, -1, 0, 0), "fsopen": (0, 0),
    "fsconfig": (-1, 0, 0, 0, 0), "fsmount": (-1, 0, 0), "fspick": (-1, 0, 0),
    "mount_setattr": (-1, 0, 0, 0, 0), "setns": (-1, 0), "bpf": (0, 0, 0),
    "perf_event_open": (0, 0, 0, 0, 0), "open_by_handle_at": (-1, 0, 0),
    "name_to_handle_at": (-1, 0, 0, 0, 0), "clock_settime": (0, 0), "settimeofday": (0, 0),
    "clock_adjtime": ((~3 << 3) | 3, 0),  # a PTP clock by descriptor (CLOCK_REALTIME reads)
    "acct": (0,), "userfaultfd": (0,), "quotactl": (0, 0, 0, 0),
    "vhangup": (), "syslog": (0, 0, 0), "uselib": (0,), "iopl": (0,), "ioperm": (0, 0, 0),
    "lookup_dcookie": (0, 0, 0), "kcmp": (0, 0, 0, 0, 0),
}
# (not read, write, mmap...: the child needs those to report)
ALLOWED_PROBES: dict[str, tuple[int, ...]] = {
    "pread64": (-1, 0, 0, 0), "pwrite64": (-1, 0, 0, 0), "openat": (-1, 0, 0),
    "mincore": (0, 0, 0),
    "execve": (0, 0, 0), "execveat": (-1, 0, 0, 0, 0), "adjtimex": (0,), "ptrace": (0, 0),
    "mkdir": (0, 0), "socket": (0, 0, 0), "setresuid": (-1, -1, -1), "capset": (0, 0),
}


def test_default_profile_denies_the_dangerous_calls() -> None:
    names = list(DENIED_PROBES) + list(ALLOWED_PROBES) + ["clone", "unshare", "clone3",
                                                         "personality"]

    def probe() -> dict[str, int]:
        got = {name: call(nr(name), *args)
               for name, args in (DENIED_PROBES | ALLOWED_PROBES).items()}
        got["clone(CLONE_NEWUSER)"] = call(nr("clone"), CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
        got["clone(CLONE_NEWNET)"] = call(nr("clone"), CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0)
        got["clone(SIGCHLD)"] = call(nr("clone"), SIGCHLD, 0, 0, 0, 0)
        got["unshare(CLONE_NEWUSER)"] = call(nr("unshare"), CLONE_NEWUSER)
        got["unshare(CLONE_NEWNS)"] = call(nr("unshare"), CLONE_NEWNS)
        got["unshare(CLONE_FILES)"] = call(nr("unshare"), 0x400)
        got["clone3"] = call(nr("clone3"), 0, 0)
        got["personality(ADDR_NO_RANDOMIZE)"] = call(nr("personality"), 0x0040000)
        got["personality(PER_LINUX32)"] = call(nr("personality"), 0x8)
        return got
    out = filtered(default_profile(set(BUNDLE_CAPS)), probe, marker_for=names)
    assert out.error == "", out
    got = out.result
    for name in DENIED_PROBES:
        assert got[name] == -errno.EPERM, (name, got[name])
    for name in ALLOWED_PROBES:
        assert got[name] == -MARKER, (name, got[name])
    assert got["clone(CLONE_NEWUSER)"] == got["clone(CLONE_NEWNET)"] == -errno.EPERM
    assert got["clone(SIGCHLD)"] == -MARKER
    assert got["unshare(CLONE_NEWUSER)"] == got["unshare(CLONE_NEWNS)"] == -errno.EPERM
    assert got["unshare(CLONE_FILES)"] == -MARKER
    assert got["clone3"] == -errno.ENOSYS
    assert got["personality(ADDR_NO_RANDOMIZE)"] == -errno.EPERM
    assert got["personality(PER_LINUX32)"] == -MARKER


def test_ordinary_work_under_the_default_profile(tmp_path) -> None:
    def probe() -> dict[str, Any]:
        done: dict[str, Any] = {}
        t = threading.Thread(target=lambda: done.update(thread=True))  # clone3 -> clone
        t.start()
        t.join()
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        done["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        (tmp_path / "f").write_text("hello")
        done["file"] = (tmp_path / "f").read_text()
        r, w = os.pipe()
        os.write(w, b"x")
        done["pipe"] = os.read(r, 1)
        return done
    out = filtered(default_profile(set(BUNDLE_CAPS)), probe)
    assert out.result == {"thread": True, "fork": 3, "file": "hello", "pipe": b"x"}, out


def test_the_trampoline_exec_works_under_the_default_profile() -> None:
    from hutch.runtime import process as proc
    filt = seccomp.prepare(default_profile(set(BUNDLE_CAPS)))

    def probe() -> None:
        filt.load()
        proc.exec_process("/bin/sh", ["sh", "-c", "exit 7"], [], 0)
    out = in_child(probe)
    assert os.waitstatus_to_exitcode(out.status) == 7, out


# === containers ================================================================================

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture
def sctr(ctr):
    """``ctr``, once the runtime applies linux.seccomp (see the module's docstring)."""
    section = ctr.features().get("linux", {}).get("seccomp") or {}
    if not section.get("enabled"):
        pytest.skip(f"{ctr.runtime.name} does not apply linux.seccomp yet "
                    f"(features: linux.seccomp.enabled is not true)")
    return ctr


def with_seccomp(bundle, args: list[str], profile: dict[str, Any], **overrides: Any):
    b = bundle(args, **overrides)
    b.config["linux"]["seccomp"] = profile
    b.write()
    return b


def script(*commands: str) -> list[str]:
    """sh -c running each command and printing "<command> rc=<status> <output, one line>"."""
    body = "; ".join(f'out=$({c} 2>&1); rc=$?; echo "{c} rc=$rc" $out' for c in commands)
    return ["sh", "-c", body + "; echo end"]


def results(stdout: str) -> dict[str, tuple[int, str]]:
    """What ``script`` printed: command -> (status, output)."""
    lines = stdout.splitlines()
    assert lines and lines[-1] == "end", stdout
    got = {}
    for line in lines[:-1]:
        command, rest = line.split(" rc=", 1)
        rc, _, text = rest.partition(" ")
        got[command] = (int(rc), text)
    return got


def test_features_report_seccomp(sctr) -> None:
    section = sctr.features()["linux"]["seccomp"]
    assert {"SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_KILL_PROCESS"} <= set(
        section["actions"])
    assert set(section["operators"]) == set(seccomp.OPERATORS)
    if os.uname().machine == "x86_64":
        assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"} <= set(section["archs"])
    if sctr.runtime.name == "runc" and "knownFlags" not in section:
        return  # runc 1.1 knows no flags
    assert set(section["supportedFlags"]) <= set(section["knownFlags"])
    assert "SECCOMP_FILTER_FLAG_LOG" in section["supportedFlags"]


def test_container_denied_mkdir_fails_while_ls_works(sctr, bundle) -> None:
    b = with_seccomp(bundle, ["sh", "-c", 'ls / >/dev/null && echo ls-ok; mkdir /newdir; '
                                          'echo "mkdir=$?"; cat /proc/self/status'],
                     deny(["mkdir", "mkdirat"], errnoRet=1))
    res = sctr.run(b)
    assert res.returncode == 0, res
    assert res.stdout.startswith("ls-ok\nmkdir=1\n"), res.stdout
    assert "Operation not permitted" in res.stderr, res.stderr
    assert "\nSeccomp:\t2\n" in res.stdout
    assert not (b.rootfs / "newdir").exists()


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"])
def test_container_killed_by_sigsys(sctr, bundle, action: str) -> None:
    b = with_seccomp(bundle, ["mkdir", "/x"], deny(["mkdir", "mkdirat"], action))
    res = sctr.run(b)
    assert res.returncode == SIGSYS_EXIT, res


def test_container_argument_condition(sctr, bundle) -> None:
    profile = deny(["personality"], args=[{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}])
    b = with_seccomp(bundle, script("linux64 true", "linux32 true"), profile)
    got = results(sctr.output(b))
    assert got["linux64 true"] == (0, ""), got
    assert got["linux32 true"][0] != 0 and "not permitted" in got["linux32 true"][1], got


def test_container_allow_by_default_with_a_deny_list(sctr, bundle) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chmod", "fchmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO",
         "errnoRet": 1},
        {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    b = with_seccomp(bundle, script("chmod 600 /etc/passwd", "hostname other",
                                    "cat /etc/passwd >/dev/null", "touch /tmp/f"), profile)
    got = results(sctr.output(b))
    assert got["chmod 600 /etc/passwd"][0] != 0, got
    assert "not permitted" in got["chmod 600 /etc/passwd"][1], got
    assert got["hostname other"][0] != 0 and "Permission denied" in got["hostname other"][1]
    assert got["cat /etc/passwd >/dev/null"] == got["touch /tmp/f"] == (0, ""), got


def test_container_default_errno_ret(sctr, bundle) -> None:
    profile = default_profile(set(BUNDLE_CAPS))
    profile["defaultErrnoRet"] = 13
    rules = profile["syscalls"]
    rules[0]["names"] = [n for n in rules[0]["names"] if n not in ("mkdir", "mkdirat")]
    b = with_seccomp(bundle, script("mkdir /x", "ls /"), profile)
    got = results(sctr.output(b))
    assert got["mkdir /x"][0] != 0 and "Permission denied" in got["mkdir /x"][1], got
    assert got["ls /"][0] == 0, got


# The default profile in a container whose process has the capabilities the kernel
# would want for each call: only seccomp stands in the way. Each is harmless should
# it get through (the container has its own mount and pid namespaces; the module
# and swap files do not exist).
EXTRA_CAPS = ["CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_MODULE", "CAP_SYSLOG"]
DENIED_COMMANDS = ["unshare -U true", "unshare -m true", "nsenter -t 1 -u true", "dmesg",
                   "rmmod no_such_module", "swapoff /no-swap", "mount -t tmpfs none /tmp",
                   "umount /proc", "reboot -f"]
ALLOWED_COMMANDS = ["ls /", "cat /etc/passwd", "adjtimex", "linux32 true", "chroot / true"]


def eperm(message: str) -> bool:
    """Whether a busybox tool said EPERM (mount words it its own way)."""
    return "Operation not permitted" in message or "permission denied (are you root?)" in message


def test_container_default_profile(sctr, bundle) -> None:
    caps = sorted(set(BUNDLE_CAPS) | set(EXTRA_CAPS))
    b = with_seccomp(bundle, script(*ALLOWED_COMMANDS, *DENIED_COMMANDS),
                     default_profile(set(BUNDLE_CAPS)),
                     process={"capabilities": {k: caps for k in ("bounding", "effective",
                                                                 "permitted")}})
    assert {"type": "pid"} in b.config["linux"]["namespaces"]  # reboot stays inside
    got = results(sctr.output(b))
    for command in ALLOWED_COMMANDS:
        assert got[command][0] == 0, (command, got[command])
    for command in DENIED_COMMANDS:
        assert got[command][0] != 0, (command, got[command])
        assert eperm(got[command][1]), (command, got[command])


def test_container_without_seccomp_the_same_commands_pass(sctr, bundle) -> None:
    """The control for the test above: with the capabilities and no filter, the kernel
    lets these through (or fails them for another reason than EPERM)."""
    caps = sorted(set(BUNDLE_CAPS) | set(EXTRA_CAPS))
    commands = [c for c in DENIED_COMMANDS if c != "reboot -f"]
    b = bundle(script(*commands), process={"capabilities": {
        k: caps for k in ("bounding", "effective", "permitted")}})
    got = results(sctr.output(b))
    for command in commands:
        assert not eperm(got[command][1]), (command, got[command])


def test_container_without_no_new_privileges_as_a_user(sctr, bundle) -> None:
    """Without no_new_privs the filter must be loaded before the capabilities go."""
    b = with_seccomp(bundle, script("mkdir /tmp/x", "id -u"), deny(["mkdir", "mkdirat"]),
                     process={"noNewPrivileges": False, "user": {"uid": 1000, "gid": 1000}})
    got = results(sctr.output(b))
    assert "Operation not permitted" in got["mkdir /tmp/x"][1], got
    assert got["id -u"] == (0, "1000")


def test_container_exec_gets_the_profile(sctr, bundle) -> None:
    b = with_seccomp(bundle, ["sleep", "60"], deny(["mkdir", "mkdirat"]))
    sctr.run_detached(b)
    res = sctr.runtime.run("exec", sctr.id, *script("mkdir /x", "ls /"))
    got = results(res.stdout)
    assert "Operation not permitted" in got["mkdir /x"][1], got
    assert got["ls /"][0] == 0, got


def test_container_execveat_denied_still_starts(sctr, bundle) -> None:
    b = with_seccomp(bundle, ["echo", "started"], deny(["execveat"], "SCMP_ACT_KILL_PROCESS"))
    assert sctr.output(b) == "started\n"


def test_container_with_flags(sctr, bundle) -> None:
    # runc 1.1 knows no flags and lists none
    flags = sctr.features()["linux"]["seccomp"].get("supportedFlags") or []
    profile = deny(["mkdir", "mkdirat"])
    profile["flags"] = flags
    b = with_seccomp(bundle, script("mkdir /x"), profile)
    assert "not permitted" in results(sctr.output(b))["mkdir /x"][1]


def test_container_32bit_architecture_listed(sctr, bundle) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("x86_64 only")
    profile = deny(["mkdir", "mkdirat"])
    profile["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    b = with_seccomp(bundle, script("mkdir /x"), profile)
    assert "not permitted" in results(sctr.output(b))["mkdir /x"][1]


def test_container_profile_denying_execve_does_not_start(sctr, bundle, cgroups_path) -> None:
    b = with_seccomp(bundle, ["true"], deny(["execve"]), linux={"cgroupsPath": cgroups_path})
    res = sctr.run(b)
    assert res.returncode != 0, res
    if sctr.runtime.name != "runc":
        assert "linux.seccomp: the profile denies execve" in res.stderr, res.stderr
    assert sctr.runtime.list_ids() == []


def test_container_notify_is_refused(sctr, bundle, cgroups_path) -> None:
    b = with_seccomp(bundle, ["true"], deny(["mkdir"], "SCMP_ACT_NOTIFY"),
                     linux={"cgroupsPath": cgroups_path})
    res = sctr.run(b)
    assert res.returncode != 0, res
    if sctr.runtime.name != "runc":
        assert "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported" in \
            res.stderr, res.stderr
    assert sctr.runtime.list_ids() == []


def test_container_unknown_names_are_skipped(sctr, bundle) -> None:
    b = with_seccomp(bundle, script("mkdir /x"), deny(["no_such_call", "mkdir", "mkdirat"]))
    assert "not permitted" in results(sctr.output(b))["mkdir /x"][1]
