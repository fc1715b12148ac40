"""hutch's default seccomp profile, as an OCI ``linux.seccomp`` object.

Its intent is that of Docker's default profile: an allow-list, everything else
fails with EPERM. It was written from the kernel's syscall tables and man
pages (what each call does and which capability the kernel itself demands),
not copied from Docker's JSON. The list is grouped by purpose below; a name
the host's libseccomp does not know is skipped when the filter is built, and a
call missing from the list fails with EPERM.

What stays denied, and why (the capability that widens it, see
``CAPABILITY_SYSCALLS``):

- kernel keyrings: ``add_key``, ``keyctl``, ``request_key``. Keys are not
  namespaced; never allowed.
- kernel code: ``init_module``, ``finit_module``, ``delete_module``
  (CAP_SYS_MODULE); ``kexec_load``, ``kexec_file_load``, never; the obsolete
  ``create_module``, ``get_kernel_syms``, ``query_module``, ``uselib``,
  ``nfsservctl``, ``_sysctl``, ``vm86``/``vm86old``, never.
- the machine: ``reboot`` (CAP_SYS_BOOT); ``swapon``, ``swapoff``
  (CAP_SYS_ADMIN); ``acct`` (CAP_SYS_PACCT); ``iopl``, ``ioperm``
  (CAP_SYS_RAWIO); ``vhangup`` (CAP_SYS_TTY_CONFIG); ``syslog`` (CAP_SYSLOG).
- mounts: ``mount``, ``umount``, ``umount2``, ``pivot_root``, ``open_tree``,
  ``move_mount``, ``fsopen``, ``fsconfig``, ``fsmount``, ``fspick``,
  ``mount_setattr`` (CAP_SYS_ADMIN). Kept simple: denied even inside a user
  namespace, where the kernel would allow some of them.
- namespaces: ``setns`` (CAP_SYS_ADMIN); ``unshare`` and ``clone`` only
  without CLONE_NEW* flags (an argument condition: ``flags & mask == 0``);
  ``clone3`` fails with ENOSYS, because its flags are in a struct seccomp
  cannot read, and ENOSYS makes glibc fall back to ``clone`` (CAP_SYS_ADMIN
  allows all three).
- kernel tracing and programs: ``bpf`` (CAP_SYS_ADMIN or CAP_BPF),
  ``perf_event_open`` (CAP_SYS_ADMIN or CAP_PERFMON), ``fanotify_init``,
  ``lookup_dcookie``, ``quotactl``, ``quotactl_fd`` (CAP_SYS_ADMIN).
- file handles: ``open_by_handle_at`` (the "shocker" escape) and
  ``name_to_handle_at`` (CAP_DAC_READ_SEARCH).
- time: ``settimeofday``, ``stime``, ``clock_settime`` (CAP_SYS_TIME).
  Reading the clock's state stays possible: ``adjtimex``, and
  ``clock_adjtime`` on CLOCK_REALTIME (an argument condition), which is what
  glibc's adjtimex and ntp_gettime call. Seccomp cannot read struct timex to
  tell a read (modes 0) from a change, but the kernel refuses any change
  without CAP_SYS_TIME in the initial user namespace. ``clock_adjtime`` on
  other clocks (PTP devices, by descriptor) needs CAP_SYS_TIME here.
- ``personality``: only PER_LINUX (0x0), PER_LINUX32 (0x8), UNAME26 (0x20000),
  UNAME26|PER_LINUX32 (0x20008) and the query 0xffffffff; not e.g.
  ADDR_NO_RANDOMIZE or READ_IMPLIES_EXEC.
- ``userfaultfd``, ``kcmp`` (CAP_SYS_PTRACE); ``move_pages``,
  ``migrate_pages`` on other processes' memory (CAP_SYS_NICE); ``chroot``
  (CAP_SYS_CHROOT, in Docker's default set).
- ``io_uring_setup``/``_enter``/``_register`` fail with ENOSYS (so programs
  fall back to plain system calls): a large attack surface, as Docker decided.

- obsolete: ``ustat``, ``sysfs``; and any call not listed, including those
  newer than the host's libseccomp (their names are skipped).

Architectures: the native one plus the 32-bit one the kernel also runs
(x86_64: X86_64 and X86, not X32; aarch64: AARCH64 and ARM): see
``ARCHITECTURES``.

``ptrace``, ``process_vm_readv`` and ``process_vm_writev`` are allowed, as
Docker allows them on kernels >= 4.8 (older ones let ptrace skip seccomp): the
kernel's own checks remain (same user, a dumpable target, Yama), and the
runtime's processes inside the container are never dumpable.

The profile must allow ``execve`` and ``execveat``: hutch-runtime loads the
filter just before it execs the container's program (through a sealed memfd,
execveat, which then calls execve). This one does.
"""

from __future__ import annotations

# errno values (Linux, every architecture hutch runs on)
EPERM = 1
ENOSYS = 38

# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
# | CLONE_NEWPID | CLONE_NEWNET. clone()'s low byte is the exit signal, so
# CLONE_NEWTIME (0x80) cannot be asked for there, only in unshare (and clone3).
CLONE_NAMESPACE_FLAGS = 0x7E020000
CLONE_NEWTIME = 0x00000080
UNSHARE_NAMESPACE_FLAGS = CLONE_NAMESPACE_FLAGS | CLONE_NEWTIME

CLOCK_REALTIME = 0

# personality(2) values a program may set: PER_LINUX, PER_LINUX32, UNAME26,
# UNAME26 | PER_LINUX32, and 0xffffffff, which only queries.
PERSONALITIES: tuple[int, ...] = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# --------------------------------------------------------------------- allowed

_FILES = (
    # open, read, write, seek, close
    "open", "openat", "openat2", "creat", "close", "close_range", "read", "write", "readv",
    "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "lseek",
    "_llseek", "sendfile", "sendfile64", "copy_file_range", "splice", "tee", "vmsplice",
    # descriptors
    "dup", "dup2", "dup3", "fcntl", "fcntl64", "ioctl", "flock", "pipe", "pipe2",
    # metadata
    "stat", "fstat", "lstat", "newfstatat", "statx", "stat64", "fstat64", "lstat64",
    "fstatat64", "oldstat", "oldfstat", "oldlstat", "statfs", "fstatfs", "statfs64",
    "fstatfs64", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
    "getdents", "getdents64", "readdir",
    # changing the tree
    "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "link", "linkat", "symlink", "symlinkat", "mknod", "mknodat", "truncate", "ftruncate",
    "truncate64", "ftruncate64", "fallocate",
    # ownership, mode, times (the kernel checks the capabilities)
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "chown32", "fchown32", "lchown32", "umask", "utime", "utimes", "futimesat", "utimensat",
    "utimensat_time64",
    # extended attributes
    "setxattr", "lsetxattr", "fsetxattr", "getxattr", "lgetxattr", "fgetxattr",
    "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    "setxattrat", "getxattrat", "listxattrat", "removexattrat",
    # where we are
    "getcwd", "chdir", "fchdir",
    # syncing and hints
    "sync", "syncfs", "fsync", "fdatasync", "sync_file_range", "sync_file_range2",
    "arm_sync_file_range", "fadvise64", "fadvise64_64", "arm_fadvise64_64", "readahead",
    "cachestat",
    # watching files (fanotify_init needs CAP_SYS_ADMIN; a mark without it is useless)
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    "fanotify_mark",
    # the mount table, read only
    "statmount", "listmount",
)

_MEMORY = (
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "msync", "mincore", "madvise",
    "process_madvise", "remap_file_pages", "mlock", "mlock2", "munlock", "mlockall",
    "munlockall", "memfd_create", "memfd_secret", "membarrier", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "mseal", "map_shadow_stack",
    # memory policy of the caller's own pages (moving other processes' pages is
    # move_pages/migrate_pages, CAP_SYS_NICE)
    "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind",
    # System V and POSIX IPC (in the IPC namespace)
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "msgget", "msgsnd", "msgrcv", "msgctl", "ipc",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
)

_PROCESSES = (
    # starting and ending (clone and clone3 are conditional, below)
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
    "waitpid",
    # identity (the kernel checks CAP_SETUID/CAP_SETGID)
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "getuid32", "geteuid32", "getgid32", "getegid32",
    "getresuid32", "getresgid32", "getgroups32", "setuid", "setgid", "setreuid",
    "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups", "setuid32",
    "setgid32", "setreuid32", "setregid32", "setresuid32", "setresgid32", "setfsuid32",
    "setfsgid32", "setgroups32", "capget", "capset",
    # sessions and groups
    "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
    # process attributes
    "prctl", "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
    "set_thread_area", "get_thread_area", "modify_ldt", "set_tls", "uname",
    "olduname", "oldolduname", "sethostname", "setdomainname", "seccomp",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
    # limits and accounting
    "getrlimit", "setrlimit", "ugetrlimit", "prlimit64", "getrusage", "times", "sysinfo",
    # scheduling (the kernel checks CAP_SYS_NICE for what needs it)
    "sched_yield", "sched_setparam", "sched_getparam", "sched_setscheduler",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_getaffinity", "sched_setattr", "sched_getattr", "getpriority", "setpriority",
    "nice", "ioprio_get", "ioprio_set", "getcpu",
    # tracing the container's own processes (see the module's docstring)
    "ptrace", "process_vm_readv", "process_vm_writev",
    # pidfds
    "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "process_mrelease",
    # ARM and RISC-V housekeeping
    "breakpoint", "cacheflush", "riscv_flush_icache", "riscv_hwprobe",
)

_SIGNALS = (
    "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    "rt_sigpending", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "sigaction", "signal",
    "sigprocmask", "sigreturn", "sigpending", "sigsuspend", "sgetmask", "ssetmask",
    "signalfd", "signalfd4", "pause", "restart_syscall",
)

_TIME = (
    # reading clocks and sleeping; setting them is CAP_SYS_TIME's (below)
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
    "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
    "adjtimex", "alarm", "getitimer", "setitimer", "timer_create", "timer_settime",
    "timer_settime64", "timer_gettime", "timer_gettime64", "timer_getoverrun",
    "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_settime64",
    "timerfd_gettime", "timerfd_gettime64",
)

_WAITING = (
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "eventfd", "eventfd2", "futex", "futex_time64", "futex_waitv",
    "futex_wake", "futex_wait", "futex_requeue", "io_setup", "io_destroy", "io_submit",
    "io_cancel", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "getrandom",
)

_NETWORK = (
    # sockets (raw ones need CAP_NET_RAW, which the kernel checks)
    "socket", "socketpair", "socketcall", "bind", "listen", "accept", "accept4", "connect",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown", "send", "recv",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "recvmmsg_time64",
)

ALLOWED: tuple[str, ...] = tuple(sorted(set(
    _FILES + _MEMORY + _PROCESSES + _SIGNALS + _TIME + _WAITING + _NETWORK)))

# ----------------------------------------------------------- by capability

# What a granted capability adds to the allow-list, as Docker's profile does.
# Capabilities not listed add nothing.
CAPABILITY_SYSCALLS: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": (
        "bpf", "fanotify_init", "lookup_dcookie", "quotactl", "quotactl_fd", "swapon",
        "swapoff", "setns", "mount", "umount", "umount2", "pivot_root", "open_tree",
        "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
        "perf_event_open", "name_to_handle_at",
        # clone, clone3 and unshare with any flags: see default_profile
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64",
                     "clock_adjtime", "clock_adjtime64"),
    "CAP_SYS_PTRACE": ("kcmp", "userfaultfd"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYSLOG": ("syslog",),
    "CAP_SYS_NICE": ("move_pages", "migrate_pages"),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at", "name_to_handle_at"),
}

# Denied whatever the capabilities: listed so the tests can say so.
NEVER_ALLOWED: tuple[str, ...] = (
    "add_key", "keyctl", "request_key", "kexec_load", "kexec_file_load", "create_module",
    "get_kernel_syms", "query_module", "uselib", "nfsservctl", "_sysctl", "vm86", "vm86old",
    "ustat", "sysfs",
)

# Fail with ENOSYS instead of EPERM, so that programs fall back to older calls.
ENOSYS_SYSCALLS: tuple[str, ...] = ("io_uring_setup", "io_uring_enter", "io_uring_register")

# The architectures a filter covers, by `uname -m`: the native one and those
# whose programs the same kernel runs (32-bit x86 on x86_64, 32-bit ARM on
# aarch64), so that those programs are filtered by the same rules rather than
# killed as of an unexpected architecture. Not x32, unlike Docker: its
# programs are all but extinct (most kernels disable the ABI), its system
# calls are then killed, and leaving it out halves the time the kernel takes
# to load the filter (about 4 ms of each start).
ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86"),
    "i686": ("SCMP_ARCH_X86",),
    "i386": ("SCMP_ARCH_X86",),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "armv7l": ("SCMP_ARCH_ARM",),
    "armv8l": ("SCMP_ARCH_ARM",),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
    "loongarch64": ("SCMP_ARCH_LOONGARCH64",),
}


def _allow(names: list[str] | tuple[str, ...]) -> dict[str, object]:
    return {"names": sorted(set(names)), "action": "SCMP_ACT_ALLOW"}


def default_profile(capabilities: set[str] | frozenset[str] | list[str] = frozenset(),
                    machine: str | None = None) -> dict[str, object]:
    """The default ``linux.seccomp`` object for a process with ``capabilities``.

    ``capabilities``: the process's bounding set, names like "CAP_SYS_ADMIN";
    each adds what ``CAPABILITY_SYSCALLS`` lists. ``machine``: `uname -m` of
    the host (default: this one), which picks ``architectures``.
    """
    if machine is None:
        import os
        machine = os.uname().machine
    caps = set(capabilities)
    allowed = list(ALLOWED)
    for cap in sorted(caps):
        allowed += CAPABILITY_SYSCALLS.get(cap, ())
    rules: list[dict[str, object]] = [_allow(allowed)]
    if "CAP_SYS_ADMIN" in caps:
        rules.append(_allow(["clone", "clone3", "unshare"]))
    else:
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["unshare"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": UNSHARE_NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    if "CAP_SYS_TIME" not in caps:
        for name in ("clock_adjtime", "clock_adjtime64"):
            rules.append({"names": [name], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": CLOCK_REALTIME, "op": "SCMP_CMP_EQ"}]})
    # One rule per value: conditions on the same argument within one rule
    # would have to hold together.
    for value in PERSONALITIES:
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
    rules.append({"names": list(ENOSYS_SYSCALLS), "action": "SCMP_ACT_ERRNO",
                  "errnoRet": ENOSYS})
    profile: dict[str, object] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(ARCHITECTURES.get(machine, ())),
        "syscalls": rules,
    }
    return profile
