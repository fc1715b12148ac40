"""The two children of ``create``: the intermediate and the container's init.

Both run in forked copies of the runtime process and never return: they end in
``os._exit`` or in the execve of the container's program. Errors go back to the
parent over the channel (see hutch.runtime.channel for the protocol).
"""

from __future__ import annotations

import os
import socket
import sys

from hutch.linux import constants as C
from hutch.linux.syscalls import prctl, setdomainname, unshare
from hutch.runtime import process as proc
from hutch.runtime.channel import Channel
from hutch.runtime.console import CONSOLE_CTTY, setup_container_console
from hutch.runtime.hooks import run_hooks
from hutch.runtime.namespaces import NamespacePlan, join_all
from hutch.runtime.rootfs import RootfsBuilder
from hutch.runtime.statedir import EXEC_FIFO


class InitContext:
    """What the children need; inherited through fork, never serialised."""

    def __init__(self, spec: dict, rootfs: str, channel: Channel, statedir_fd: int,
                 plan: NamespacePlan, join_fds: list[tuple[str, int]],
                 console: socket.socket | None, no_pivot: bool, preserve_fds: int,
                 cgroup_paths: dict[str, str]) -> None:
        self.spec = spec
        self.rootfs = rootfs
        self.channel = channel
        self.statedir_fd = statedir_fd
        self.plan = plan
        self.join_fds = join_fds
        self.console = console
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.cgroup_paths = cgroup_paths
        self.setgroups_allowed = True
        self.in_userns = plan.has("user")
        # Built in the runtime process, before any fork: in the container's user
        # namespace the binding's files may be out of reach (a venv under /root),
        # and after pivot_root nothing can be imported at all.
        self.seccomp_filter = None
        # mount index -> detached idmapped clone, made on the host side (runtime.idmapped)
        self.idmapped: dict[int, int] = {}


def run_intermediate(ctx: InitContext) -> None:
    """Enter the namespaces, then fork init inside them and report its pid."""
    ch = ctx.channel
    try:
        ch.recv("go", "the runtime")
        joins = dict(ctx.join_fds)
        others = [(k, fd) for k, fd in ctx.join_fds if k != "user"]
        if "user" in joins:
            # Joining a user namespace: it owns what we join next.
            join_all([("user", joins["user"])])
        elif "user" in ctx.plan.new:
            # A new user namespace: join the given namespaces first, while we still
            # have the privileges they ask for (as runc does); then unshare it.
            join_all(others)
            others = []
            unshare(C.CLONE_NEWUSER)
            ch.send("userns")
            ctx.setgroups_allowed = bool(ch.recv("mapped", "the runtime").get("setgroups", True))
        if ctx.in_userns:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        join_all(others)
        flags = ctx.plan.unshare_flags()
        if flags:
            unshare(flags)
        if "time" in ctx.plan.new:
            _write_time_offsets(ctx.spec)
        pid = os.fork()
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent
        ch.send_error(e)
        os._exit(1)
    if pid == 0:
        run_init(ctx)
    ch.send("pid", pid=pid)
    os._exit(0)


def _write_time_offsets(spec: dict) -> None:
    offsets = (spec.get("linux") or {}).get("timeOffsets") or {}
    lines = "".join(f"{clock} {v.get('secs', 0)} {v.get('nanosecs', 0)}\n"
                    for clock, v in offsets.items())
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(lines)


def run_init(ctx: InitContext) -> None:
    """Set the container up, report ready, wait for start, exec the user's program."""
    ch = ctx.channel
    spec = ctx.spec
    process = spec.get("process") or {}
    try:
        # Wait until the intermediate's "pid" is through: both share the channel.
        ch.recv("init", "the runtime")
        seccomp_filter = ctx.seccomp_filter  # built by the parent; loaded just before exec
        proc.set_oom_score_adj(process)
        builder = RootfsBuilder(spec, ctx.rootfs, ctx.in_userns, ctx.cgroup_paths,
                                ctx.plan.has("cgroup"), ctx.idmapped)
        builder.prepare()
        if spec.get("hostname"):
            socket.sethostname(spec["hostname"])
        if spec.get("domainname"):
            setdomainname(spec["domainname"])
        ch.send("hooks")
        state = ch.recv("resume", "the runtime")["state"]
        run_hooks(spec.get("hooks"), "createContainer", state)
        if (spec.get("hooks") or {}).get("startContainer"):
            import subprocess  # noqa: F401 - nothing can be imported after pivot_root
        builder.pivot(ctx.no_pivot)
        if ctx.console is not None:
            setup_container_console(ctx.console, process.get("consoleSize"), True,
                                    ctty=(spec.get("annotations") or {}).get(CONSOLE_CTTY)
                                    != "false")
        builder.finalize(bool((spec.get("root") or {}).get("readonly")))
        proc.set_rlimits(process)
        proc.set_no_new_privileges(process)
        if seccomp_filter is not None and not process.get("noNewPrivileges"):
            seccomp_filter.load()  # needs CAP_SYS_ADMIN without no_new_privs: before it goes
        proc.set_identity(process, ctx.setgroups_allowed)
        cwd = process.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError as e:
            raise OSError(e.errno, f"process.cwd {cwd}: {e.strerror}") from None
        env = proc.build_env(process)
        args = process["args"]
        path = proc.lookup_path(args[0], env)
        # From here on, processes exec'd into the container must not reach our
        # memory or /proc/1/exe (the runtime's interpreter on the host).
        prctl(C.PR_SET_DUMPABLE, 0)
        ch.send("ready")
        ch.close()
    except BaseException as e:  # noqa: BLE001
        ch.send_error(e)
        os._exit(1)
    try:
        fifo = os.open(EXEC_FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=ctx.statedir_fd)
        os.write(fifo, b"0")
        # The fifo stays open until the execve closes it: `start` reads to EOF,
        # so it returns (and runs poststart) only once the program runs.
        os.close(ctx.statedir_fd)
        run_hooks(spec.get("hooks"), "startContainer", state)
        proc.exec_process(path, args, env, ctx.preserve_fds, seccomp_filter)
    except BaseException as e:  # noqa: BLE001
        print(f"hutch-runtime: exec failed: {e}", file=sys.stderr)
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)
