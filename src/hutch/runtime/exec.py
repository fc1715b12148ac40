"""``exec``: start one more process inside a running container.

The runtime forks a child that joins the container's namespaces (the user
namespace last where it can, see namespaces.join_user_last); that child forks
again so the new process is inside the pid namespace too, reports its pid and
exits. The parent joins the new process to the container's cgroup, lets it go,
and waits for it unless detached.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import sys

from hutch.errors import InvalidArgument, WrongState
from hutch.linux import constants as C
from hutch.linux.syscalls import prctl
from hutch.runtime import foreground as fg
from hutch.runtime import process as proc
from hutch.runtime import seccomp
from hutch.runtime.channel import Channel
from hutch.runtime.console import setup_container_console
from hutch.runtime.container import CREATED, PAUSED, RUNNING, Container
from hutch.runtime.launcher import PARENT_TIMEOUT
from hutch.runtime.namespaces import JOIN_ORDER, join_user_last, same_as_host
from hutch.linux.constants import NAMESPACES


class ExecOptions:
    def __init__(self, process_file: str | None = None, args: list[str] | None = None,
                 tty: bool = False, console_socket: str | None = None, cwd: str | None = None,
                 env: list[str] | None = None, user: str | None = None,
                 additional_gids: list[str] | None = None, detach: bool = False,
                 pid_file: str | None = None, caps: list[str] | None = None,
                 no_new_privs: bool = False, preserve_fds: int = 0,
                 ignore_paused: bool = False) -> None:
        self.process_file = process_file
        self.args = args or []
        self.tty = tty
        self.console_socket = console_socket
        self.cwd = cwd
        self.env = env or []
        self.user = user
        self.additional_gids = additional_gids or []
        self.detach = detach
        self.pid_file = pid_file
        self.caps = caps or []
        self.no_new_privs = no_new_privs
        self.preserve_fds = preserve_fds
        self.ignore_paused = ignore_paused


def build_process(container_process: dict, opts: ExecOptions) -> dict:
    """The process to run: --process FILE, or the container's process with the flags applied."""
    if opts.process_file:
        try:
            with open(opts.process_file) as f:
                process = json.load(f)
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"--process {opts.process_file}: {e}") from None
        if not isinstance(process, dict) or not process.get("args"):
            raise InvalidArgument(f"--process {opts.process_file}: args must be a non-empty list")
        return process
    process = copy.deepcopy(container_process)
    process["args"] = list(opts.args)
    process["terminal"] = opts.tty
    process.pop("consoleSize", None)
    env = {}
    for item in list(process.get("env") or []) + list(opts.env):
        key = item.split("=", 1)[0]
        env[key] = item
    process["env"] = list(env.values())
    if opts.cwd:
        process["cwd"] = opts.cwd
    if opts.user:
        uid, _, gid = opts.user.partition(":")
        try:
            process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise InvalidArgument(f"--user {opts.user}: use numeric UID[:GID]") from None
    if opts.additional_gids:
        process.setdefault("user", {})["additionalGids"] = [int(g) for g in opts.additional_gids]
    if opts.caps:
        caps = process.setdefault("capabilities", {})
        for s in ("bounding", "effective", "permitted"):
            caps[s] = sorted(set(caps.get(s) or []) | set(opts.caps))
    if opts.no_new_privs:
        process["noNewPrivileges"] = True
    return process


def exec_process(root: str, container_id: str, opts: ExecOptions) -> int:
    container = Container(root, container_id)
    status = container.status()
    if status == PAUSED and not opts.ignore_paused:
        raise WrongState(f"cannot exec in paused container {container_id}; resume it first")
    if status not in (CREATED, RUNNING, PAUSED):
        raise WrongState(f"cannot exec in a {status} container: {container_id}")
    process = build_process(container.spec.get("process") or {}, opts)
    seccomp_filter = seccomp.for_spec(container.spec)  # the container's, as runc applies it
    if process.get("terminal") and opts.detach and not opts.console_socket:
        raise InvalidArgument("cannot allocate a terminal for a detached exec without "
                              "--console-socket")
    pid = container.pid
    kinds = [ns["type"] for ns in (container.spec.get("linux") or {}).get("namespaces") or []]
    fds: list[tuple[str, int]] = []
    for kind in JOIN_ORDER:
        if kind in kinds and not same_as_host(pid, kind):
            fds.append((kind, os.open(f"/proc/{pid}/ns/{NAMESPACES[kind][1]}",
                                      os.O_RDONLY | os.O_CLOEXEC)))
    setgroups_allowed = _setgroups_allowed(pid)
    console = None
    proxy = None
    if process.get("terminal"):
        if opts.console_socket:
            from hutch.runtime.console import connect
            console = connect(opts.console_socket)
        else:
            proxy = fg.TerminalProxy()
            console = proxy.child
    if not opts.detach:
        fg.become_subreaper()
    parent, child = Channel.pair()
    parent.set_timeout(PARENT_TIMEOUT)
    forwarder = fg.SignalForwarder()
    if not opts.detach:
        forwarder.install()
    first = os.fork()
    if first == 0:
        parent.close()
        _exec_intermediate(child, fds, process, console, setgroups_allowed, opts.preserve_fds,
                           seccomp_filter)
    child.close()
    for _, fd in fds:
        os.close(fd)
    new_pid = 0
    try:
        new_pid = parent.recv("pid", "the exec process")["pid"]
        os.waitpid(first, 0)
        cg = container.cgroup
        if cg is not None:
            cg.add_pid(new_pid)
        parent.send("go")
        parent.recv("ready", "the exec process")
    except BaseException:
        if new_pid:
            try:
                os.kill(new_pid, 9)
            except ProcessLookupError:
                pass
        raise
    finally:
        parent.close()
        if console is not None and proxy is None:
            console.close()
    forwarder.pid = new_pid
    if opts.pid_file:
        from hutch.runtime.launcher import write_pid_file
        write_pid_file(opts.pid_file, new_pid)
    if opts.detach:
        return 0
    if proxy is not None:
        proxy.receive()
        status_code = proxy.run_until_exit(new_pid)
    else:
        status_code = fg.wait_for(new_pid)
    forwarder.restore()
    return status_code


def _setgroups_allowed(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/setgroups") as f:
            return f.read().strip() != "deny"
    except OSError:
        return True


def _exec_intermediate(ch: Channel, fds: list[tuple[str, int]], process: dict,
                       console: socket.socket | None, setgroups_allowed: bool,
                       preserve_fds: int, seccomp_filter: seccomp.PreparedFilter | None) -> None:
    try:
        # Non-dumpable before the fork: the child is visible inside the container
        # and must never expose its memory or /proc/PID/exe, not even briefly.
        prctl(C.PR_SET_DUMPABLE, 0)
        join_user_last(fds)
        pid = os.fork()
    except BaseException as e:  # noqa: BLE001
        ch.send_error(e)
        os._exit(1)
    if pid:
        ch.send("pid", pid=pid)
        os._exit(0)
    try:
        ch.recv("go", "the runtime")
        if console is not None:
            setup_container_console(console, process.get("consoleSize"), False)
        proc.set_rlimits(process)
        proc.set_no_new_privileges(process)
        if seccomp_filter is not None and not process.get("noNewPrivileges"):
            seccomp_filter.load()
        proc.set_identity(process, setgroups_allowed)
        cwd = process.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError as e:
            raise OSError(e.errno, f"cwd {cwd}: {e.strerror}") from None
        env = proc.build_env(process)
        path = proc.lookup_path(process["args"][0], env)
        ch.send("ready")
        ch.close()
    except BaseException as e:  # noqa: BLE001
        ch.send_error(e)
        os._exit(1)
    try:
        proc.exec_process(path, process["args"], env, preserve_fds, seccomp_filter)
    except BaseException as e:  # noqa: BLE001
        print(f"hutch-runtime: exec failed: {e}", file=sys.stderr)
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)
