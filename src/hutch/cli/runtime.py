"""hutch-runtime: the OCI runtime command line, with runc's verbs, flags and output."""

from __future__ import annotations

import json
import os
import sys
import time

from hutch import OCI_VERSION, __version__
from hutch.cli.flags import Flag, Verb, parse, usage
from hutch.common.signals import signal_number
from hutch.errors import HutchError, InvalidArgument
from hutch.runtime.statedir import default_root

PROG = "hutch-runtime"


class Logger:
    """Errors and debug lines to stderr and to --log, in --log-format (text or json)."""

    def __init__(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_on = debug

    def _write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            line = json.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f'time="{now}" level={level} msg="{msg}"'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def error(self, msg: str) -> None:
        self._write("error", msg)
        print(f"{PROG}: {msg}", file=sys.stderr)

    def debug(self, msg: str) -> None:
        if self.debug_on:
            self._write("debug", msg)
            print(f"{PROG}: debug: {msg}", file=sys.stderr)


parse_signal = signal_number  # kill's SIGNAL: a number, KILL, SIGTERM, SIGRTMIN+3


def _command_line() -> tuple[list[Flag], dict[str, Verb]]:
    create = [
        Flag("-b,--bundle", value=True, default=".", help="the bundle directory"),
        Flag("--console-socket", value=True, help="unix socket to send the pty master to"),
        Flag("--pid-file", value=True, help="write the init's pid here"),
        Flag("--no-pivot", help="chroot instead of pivot_root (less safe)"),
        Flag("--no-new-keyring", help="accepted for compatibility"),
        Flag("--preserve-fds", value=True, default="0", help="pass N more fds from 3 on"),
    ]
    verbs = [
        Verb("create", "create a container", create, ["id"]),
        Verb("run", "create and start a container", create + [
            Flag("-d,--detach", help="do not wait for the container"),
            Flag("--keep", help="do not delete the container after it exits")], ["id"]),
        Verb("start", "start a created container", [], ["id"]),
        Verb("state", "print the state of a container (JSON)", [], ["id"]),
        Verb("kill", "send a signal to the container's init, or to all its processes",
             [Flag("-a,--all", help="signal every process in the container")],
             ["id", "signal"], optional=1),
        Verb("delete", "delete a container",
             [Flag("-f,--force", help="kill it first if it runs")], ["id"]),
        Verb("pause", "freeze every process of a container", [], ["id"]),
        Verb("resume", "thaw a paused container", [], ["id"]),
        Verb("list", "list containers", [
            Flag("-f,--format", value=True, default="table", help="table or json"),
            Flag("-q,--quiet", help="print only the ids")], []),
        Verb("ps", "list the processes of a container", [
            Flag("-f,--format", value=True, default="table", help="table or json")],
             ["id"], rest="ps_args"),
        Verb("exec", "run a process in a running container", [
            Flag("-t,--tty", help="allocate a pseudo terminal"),
            Flag("--console-socket", value=True, help="unix socket for the pty master"),
            Flag("--cwd", value=True, help="working directory"),
            Flag("-e,--env", repeat=True, help="KEY=VALUE to set"),
            Flag("-u,--user", value=True, help="UID[:GID]"),
            Flag("-g,--additional-gids", repeat=True, help="more groups"),
            Flag("-p,--process", value=True, help="process.json to run"),
            Flag("-d,--detach", help="do not wait for the process"),
            Flag("--pid-file", value=True, help="write the process's pid here"),
            Flag("-c,--cap", repeat=True, help="add a capability"),
            Flag("--no-new-privs", help="set no_new_privs"),
            Flag("--preserve-fds", value=True, default="0", help="pass N more fds"),
            Flag("--apparmor", value=True, help="accepted for compatibility"),
            Flag("--process-label", value=True, help="accepted for compatibility"),
            Flag("--ignore-paused", help="exec even into a paused container"),
            Flag("--cgroup", value=True, help="accepted for compatibility")],
             ["id"], rest="command"),
        Verb("spec", "write a default config.json", [
            Flag("-b,--bundle", value=True, default=".", help="where to write it"),
            Flag("--rootless", help="for a user without privileges")], []),
        Verb("features", "print what this runtime supports (JSON)", [], []),
        Verb("update", "change the resource limits of a running container", [
            Flag("-r,--resources", value=True, help="linux.resources JSON file ('-': stdin)"),
            Flag("--blkio-weight", value=True, help="block I/O weight, 10 to 1000"),
            Flag("--cpu-period", value=True, help="CPU CFS period (microseconds)"),
            Flag("--cpu-quota", value=True, help="CPU CFS quota (microseconds, -1: none)"),
            Flag("--cpu-share", value=True, help="CPU shares (relative weight)"),
            Flag("--cpu-rt-period", value=True, help="realtime period (microseconds)"),
            Flag("--cpu-rt-runtime", value=True, help="realtime runtime (microseconds)"),
            Flag("--cpuset-cpus", value=True, help="CPUs allowed, e.g. 0-1"),
            Flag("--cpuset-mems", value=True, help="memory nodes allowed"),
            Flag("--memory", value=True, help="memory limit (bytes, or 10m, 1g...)"),
            Flag("--memory-reservation", value=True, help="memory soft limit"),
            Flag("--memory-swap", value=True, help="memory plus swap limit (-1: none)"),
            Flag("--pids-limit", value=True, help="maximum number of pids (-1: none)")],
             ["id"]),
        Verb("events", "print resource stats every interval, and OOM events, as JSON lines", [
            Flag("--interval", value=True, default="5s", help="time between stats (5s, 500ms)"),
            Flag("--stats", help="print the stats once and exit")], ["id"]),
    ]
    global_flags = [
        Flag("--root", value=True, default=default_root(),
             help="where container state is kept (root: /run/hutch-runtime; others: "
                  "$XDG_RUNTIME_DIR/hutch-runtime)"),
        Flag("--log", value=True, help="write errors and debug output to this file"),
        Flag("--log-format", value=True, default="text", help="text or json"),
        Flag("--debug", help="print debug output"),
        Flag("--systemd-cgroup", help="accepted for compatibility; cgroupfs is used"),
        Flag("--rootless", value=True, default="auto", help="accepted for compatibility"),
        Flag("--criu", value=True, help="path of the criu binary"),
        Flag("-v,--version", help="print the version"),
    ]
    return global_flags, {v.name: v for v in verbs}


def main(argv: list[str] | None = None) -> int:
    global_flags, verbs = _command_line()
    try:
        args = parse(global_flags, verbs, sys.argv[1:] if argv is None else argv)
    except InvalidArgument as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    log = Logger(args.log, args.log_format, args.debug)
    if args.version:
        print(f"{PROG} version {__version__}\nspec: {OCI_VERSION}")
        return 0
    if getattr(args, "help", False) or not args.verb:
        print(usage(PROG, global_flags, verbs, args.verb))
        return 0 if getattr(args, "help", False) else 1
    if args.log_format not in ("text", "json"):
        log.error(f"--log-format {args.log_format}: use text or json")
        return 1
    try:
        from hutch.cli import runtime_verbs
        return getattr(runtime_verbs, "cmd_" + args.verb)(args, log)
    except HutchError as e:
        log.error(_full_message(e))
        return e.exit_code
    except BrokenPipeError:
        # Whoever read our output went away (e.g. `| head`): not our error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        log.error(_full_message(e))
        return 1
    except KeyboardInterrupt:
        return 130


def _full_message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror and not isinstance(e, HutchError):
        msg = e.strerror + (f": {e.filename}" if e.filename else "")
    else:
        msg = str(e) or type(e).__name__
    for note in getattr(e, "__notes__", []):
        msg += f"\n  {note}"
    return msg


if __name__ == "__main__":
    sys.exit(main())
