"""hutch.oci.seccomp_default: the default profile, as data and as the filter it builds
(run by the ``evaluate`` fixture's BPF interpreter, never loaded)."""

from __future__ import annotations

import json

import pytest

from hutch.oci import seccomp_default as d
from hutch.oci.runtime_spec import problems
from hutch.runtime import seccomp

EPERM, ENOSYS = ("ERRNO", 1), ("ERRNO", 38)
ALLOW = ("ALLOW", 0)

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, \
    0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME = 0x10000000, 0x20000000, \
    0x40000000, 0x80
NAMESPACE_FLAGS = [CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
                   CLONE_NEWPID, CLONE_NEWNET]
# glibc's pthread_create and fork
CLONE_THREAD_FLAGS = 0x3D0F00
CLONE_FORK_FLAGS = 0x1200011
DOCKER_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

DANGEROUS = [
    "add_key", "keyctl", "request_key",
    "init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms",
    "query_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
    "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "setns",
    "bpf", "perf_event_open", "open_by_handle_at", "name_to_handle_at",
    "clock_settime", "settimeofday", "acct",
    "userfaultfd", "lookup_dcookie", "quotactl", "quotactl_fd", "vhangup", "nfsservctl",
    "syslog", "uselib", "iopl", "ioperm", "kcmp", "move_pages", "migrate_pages",
    "fanotify_init", "_sysctl", "ustat", "sysfs",
]

COMMON = [
    "read", "write", "openat", "open", "close", "mmap", "munmap", "mprotect", "brk",
    "execve", "execveat", "exit", "exit_group", "fork", "vfork", "wait4", "futex",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "fstat", "newfstatat", "statx",
    "getdents64", "lseek", "ioctl", "fcntl", "dup2", "dup3", "pipe2", "socket", "connect",
    "bind", "accept4", "sendmsg", "recvmsg", "kill", "getpid", "gettid", "set_tid_address",
    "set_robust_list", "rseq", "prlimit64", "getrandom", "clock_gettime", "nanosleep",
    "clock_nanosleep", "epoll_wait", "epoll_ctl", "poll", "select", "mkdir", "unlink",
    "rename", "chmod", "chown", "setuid", "setgid", "setgroups", "capget", "capset",
    "prctl", "arch_prctl", "seccomp", "uname", "sethostname", "memfd_create", "adjtimex",
    "ptrace", "process_vm_readv", "pidfd_open", "close_range", "openat2", "faccessat2",
    "mknod", "madvise", "sched_yield", "sched_getaffinity", "getcwd", "chdir", "umask",
]


@pytest.fixture(scope="module")
def default() -> seccomp.PreparedFilter:
    return seccomp.prepare(d.default_profile(DOCKER_CAPS, machine="x86_64"))


def known(name: str, arch: str = "SCMP_ARCH_X86_64") -> bool:
    return seccomp.binding().resolve_syscall(seccomp.ARCHITECTURES[arch], name) >= 0


# --- the data ---------------------------------------------------------------------------------

def test_shape() -> None:
    p = d.default_profile(set(), machine="x86_64")
    assert p["defaultAction"] == "SCMP_ACT_ERRNO"
    assert p["defaultErrnoRet"] == 1
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert json.loads(json.dumps(p)) == p
    assert d.default_profile(set(), machine="x86_64") == p  # deterministic


def test_valid_as_a_config() -> None:
    spec = {"linux": {"seccomp": d.default_profile(DOCKER_CAPS, machine="x86_64")}}
    assert [x for x in problems(spec, ".") if x.startswith("linux.seccomp")] == []


@pytest.mark.parametrize("machine, archs", [
    ("x86_64", ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]),
    ("aarch64", ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
    ("riscv64", ["SCMP_ARCH_RISCV64"]),
    ("vax", []),  # unknown: the native architecture only
])
def test_architectures_by_machine(machine: str, archs: list[str]) -> None:
    assert d.default_profile(set(), machine=machine)["architectures"] == archs


def test_this_machine_by_default() -> None:
    import os
    assert d.default_profile(set()) == d.default_profile(set(), machine=os.uname().machine)


def test_allowed_and_denied_lists_do_not_overlap() -> None:
    allowed = set(d.ALLOWED)
    assert len(allowed) == len(d.ALLOWED)
    gated = {n for names in d.CAPABILITY_SYSCALLS.values() for n in names}
    assert allowed & gated == set()
    assert allowed & set(d.NEVER_ALLOWED) == set()
    assert allowed & set(d.ENOSYS_SYSCALLS) == set()
    assert allowed & {"clone", "clone3", "unshare", "personality"} == set()
    assert gated & set(d.NEVER_ALLOWED) == set()
    assert set(DANGEROUS) <= gated | set(d.NEVER_ALLOWED)


def test_capability_names_are_real() -> None:
    from hutch.linux.capabilities import CAPABILITIES
    assert set(d.CAPABILITY_SYSCALLS) <= set(CAPABILITIES)


def test_every_allowed_name_is_a_system_call_somewhere() -> None:
    # names this libseccomp lacks are newer than it; the rest must resolve on some arch
    s = seccomp.binding()
    unknown = [n for n in d.ALLOWED if s.resolve_syscall(0, n) == -1]
    newer = {"getxattrat", "listmount", "listxattrat", "lsm_get_self_attr",
             "lsm_list_modules", "lsm_set_self_attr", "mseal", "removexattrat",
             "riscv_hwprobe", "setxattrat", "statmount"}
    assert set(unknown) <= newer, set(unknown) - newer


# --- the filter -------------------------------------------------------------------------------

def test_prepares_cleanly(default: seccomp.PreparedFilter) -> None:
    assert (default.allows_execve, default.allows_execveat) == (True, True)
    assert default.default_action == "SCMP_ACT_ERRNO"


@pytest.mark.parametrize("name", DANGEROUS)
def test_dangerous_calls_fail_with_eperm(evaluate, default, name: str) -> None:
    if not known(name):
        pytest.skip(f"{name}: not a system call on x86_64 for this libseccomp")
    assert evaluate(default, name) == EPERM


@pytest.mark.parametrize("name", COMMON)
def test_common_calls_are_allowed(evaluate, default, name: str) -> None:
    assert evaluate(default, name) == ALLOW


def test_chroot_comes_with_cap_sys_chroot(evaluate, default) -> None:
    assert evaluate(default, "chroot") == ALLOW
    bare = seccomp.prepare(d.default_profile(set(), machine="x86_64"))
    assert evaluate(bare, "chroot") == EPERM


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS)
def test_clone_with_a_namespace_flag_is_denied(evaluate, default, flag: int) -> None:
    assert evaluate(default, "clone", flag | 17) == EPERM
    assert evaluate(default, "clone", flag | CLONE_FORK_FLAGS) == EPERM


def test_clone_for_threads_and_fork_is_allowed(evaluate, default) -> None:
    assert evaluate(default, "clone", CLONE_THREAD_FLAGS) == ALLOW
    assert evaluate(default, "clone", CLONE_FORK_FLAGS) == ALLOW
    assert evaluate(default, "clone", 17) == ALLOW  # SIGCHLD only


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS + [CLONE_NEWTIME])
def test_unshare_of_a_namespace_is_denied(evaluate, default, flag: int) -> None:
    assert evaluate(default, "unshare", flag) == EPERM


def test_unshare_without_namespaces_is_allowed(evaluate, default) -> None:
    for flag in (0x200, 0x400, 0x40000):  # CLONE_FS, CLONE_FILES, CLONE_SYSVSEM
        assert evaluate(default, "unshare", flag) == ALLOW


def test_clone3_and_io_uring_fail_with_enosys(evaluate, default) -> None:
    for name in ("clone3",) + d.ENOSYS_SYSCALLS:
        assert evaluate(default, name) == ENOSYS, name


@pytest.mark.parametrize("value, allowed", [
    (0x0, True), (0x8, True), (0x20000, True), (0x20008, True), (0xFFFFFFFF, True),
    (0x0040000, False),   # ADDR_NO_RANDOMIZE
    (0x0400000, False),   # READ_IMPLIES_EXEC
    (0x0000001, False),   # PER_SVR4
    (0x0000010, False),   # PER_BSD
    (0x1_0000_0000, False),
])
def test_personality(evaluate, default, value: int, allowed: bool) -> None:
    assert evaluate(default, "personality", value) == (ALLOW if allowed else EPERM)


def test_clock_adjtime_reads_the_realtime_clock_only(evaluate, default) -> None:
    ptp_clock_of_fd_3 = (~3 << 3) | 3  # FD_TO_CLOCKID(3)
    assert evaluate(default, "clock_adjtime", 0) == ALLOW  # CLOCK_REALTIME
    assert evaluate(default, "clock_adjtime", ptp_clock_of_fd_3) == EPERM
    assert evaluate(default, "clock_adjtime", 1) == EPERM
    assert evaluate(default, "clock_adjtime64", 0, arch="SCMP_ARCH_X86") == ALLOW
    assert evaluate(default, "clock_adjtime64", 4, arch="SCMP_ARCH_X86") == EPERM


def test_32bit_x86_is_filtered_by_the_same_rules(evaluate, default) -> None:
    x86 = "SCMP_ARCH_X86"
    for name in ("read", "socketcall", "mmap2", "_llseek", "fcntl64", "stat64", "execve",
                 "setresuid32", "clock_gettime64"):
        assert evaluate(default, name, arch=x86) == ALLOW, name
    for name in ("mount", "keyctl", "reboot", "init_module", "stime", "vm86", "setns"):
        assert evaluate(default, name, arch=x86) == EPERM, name
    assert evaluate(default, "clone", CLONE_NEWUSER, arch=x86) == EPERM
    assert evaluate(default, "clone", CLONE_THREAD_FLAGS, arch=x86) == ALLOW
    assert evaluate(default, "clone3", arch=x86) == ENOSYS


def test_x32_calls_are_killed(evaluate, default) -> None:
    assert evaluate(default, "read", x32=True) == ("KILL_THREAD", 0)


# --- capabilities widen it --------------------------------------------------------------------

@pytest.mark.parametrize("cap, names", [
    ("CAP_SYS_ADMIN", ["mount", "umount2", "pivot_root", "setns", "bpf", "perf_event_open",
                       "swapon", "swapoff", "quotactl", "fsopen", "mount_setattr",
                       "name_to_handle_at"]),
    ("CAP_SYS_BOOT", ["reboot"]),
    ("CAP_SYS_MODULE", ["init_module", "finit_module", "delete_module"]),
    ("CAP_SYS_TIME", ["settimeofday", "clock_settime"]),
    ("CAP_SYS_PTRACE", ["kcmp", "userfaultfd"]),
    ("CAP_SYS_PACCT", ["acct"]),
    ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
    ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
    ("CAP_SYSLOG", ["syslog"]),
    ("CAP_SYS_NICE", ["move_pages", "migrate_pages"]),
    ("CAP_BPF", ["bpf"]),
    ("CAP_PERFMON", ["perf_event_open"]),
    ("CAP_DAC_READ_SEARCH", ["open_by_handle_at", "name_to_handle_at"]),
])
def test_a_capability_allows_its_calls(evaluate, default, cap: str, names: list[str]) -> None:
    widened = seccomp.prepare(d.default_profile(DOCKER_CAPS | {cap}, machine="x86_64"))
    for name in names:
        assert evaluate(default, name) == EPERM, name
        assert evaluate(widened, name) == ALLOW, name
    # and nothing else changes
    assert evaluate(widened, "keyctl") == EPERM


def test_cap_sys_time_allows_every_clock(evaluate) -> None:
    time_cap = seccomp.prepare(d.default_profile(DOCKER_CAPS | {"CAP_SYS_TIME"},
                                                 machine="x86_64"))
    assert evaluate(time_cap, "clock_adjtime", (~3 << 3) | 3) == ALLOW


def test_cap_sys_admin_allows_namespaces(evaluate) -> None:
    admin = seccomp.prepare(d.default_profile(DOCKER_CAPS | {"CAP_SYS_ADMIN"},
                                              machine="x86_64"))
    assert evaluate(admin, "clone", CLONE_NEWUSER | 17) == ALLOW
    assert evaluate(admin, "unshare", CLONE_NEWNS) == ALLOW
    assert evaluate(admin, "clone3") == ALLOW


def test_some_calls_are_never_allowed(evaluate) -> None:
    from hutch.linux.capabilities import CAPABILITIES
    everything = seccomp.prepare(d.default_profile(set(CAPABILITIES), machine="x86_64"))
    for name in d.NEVER_ALLOWED:
        if known(name):
            assert evaluate(everything, name) == EPERM, name
    assert evaluate(everything, "personality", 0x0040000) == EPERM
