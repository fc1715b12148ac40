"""hutch-runtime: the OCI runtime command line, with runc's verbs, flags and output."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from hutch import OCI_VERSION, __version__
from hutch.errors import HutchError, InvalidArgument

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


def parse_signal(text: str) -> int:
    t = text.upper()
    if t.isdigit():
        return int(t)
    if not t.startswith("SIG"):
        t = "SIG" + t
    if t.startswith("SIGRTMIN+") or t.startswith("SIGRTMAX-"):
        base = signal.SIGRTMIN if t.startswith("SIGRTMIN") else signal.SIGRTMAX
        off = int(t[9:])
        return int(base) + off if base == signal.SIGRTMIN else int(base) - off
    try:
        return int(signal.Signals[t])
    except KeyError:
        raise InvalidArgument(f"unknown signal {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Run OCI containers (runc compatible).")
    p.add_argument("--root", default=os.environ.get("HUTCH_RUNTIME_ROOT", "/run/hutch-runtime"),
                   help="where container state is kept")
    p.add_argument("--log", default=None, help="write errors and debug output to this file")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true",
                   help="accepted for compatibility; cgroupfs is used")
    p.add_argument("--rootless", default="auto")
    p.add_argument("--criu", default=None, help=argparse.SUPPRESS)
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help)

    def create_flags(c: argparse.ArgumentParser) -> None:
        c.add_argument("-b", "--bundle", default=".")
        c.add_argument("--console-socket")
        c.add_argument("--pid-file")
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("--no-new-keyring", action="store_true")
        c.add_argument("--preserve-fds", type=int, default=0)
        c.add_argument("id")

    create_flags(cmd("create", "create a container"))
    r = cmd("run", "create and start a container")
    create_flags(r)
    r.add_argument("-d", "--detach", action="store_true")
    r.add_argument("--keep", action="store_true", help="do not delete the container after exit")
    for verb, text in (("start", "start a created container"), ("pause", "freeze a container"),
                       ("resume", "thaw a paused container"),
                       ("state", "print the state of a container")):
        cmd(verb, text).add_argument("id")
    k = cmd("kill", "send a signal to a container's init (or all its processes)")
    k.add_argument("-a", "--all", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = cmd("delete", "delete a container")
    d.add_argument("-f", "--force", action="store_true")
    d.add_argument("id")
    ls = cmd("list", "list containers")
    ls.add_argument("-f", "--format", default="table", choices=["table", "json"])
    ls.add_argument("-q", "--quiet", action="store_true")
    ps = cmd("ps", "list the processes of a container")
    ps.add_argument("-f", "--format", default="table", choices=["table", "json"])
    ps.add_argument("id")
    ps.add_argument("ps_args", nargs=argparse.REMAINDER)
    e = cmd("exec", "run a process in a running container")
    e.add_argument("-t", "--tty", action="store_true")
    e.add_argument("--console-socket")
    e.add_argument("--cwd")
    e.add_argument("-e", "--env", action="append", default=[])
    e.add_argument("-u", "--user")
    e.add_argument("-g", "--additional-gids", action="append", default=[])
    e.add_argument("-p", "--process")
    e.add_argument("-d", "--detach", action="store_true")
    e.add_argument("--pid-file")
    e.add_argument("-c", "--cap", action="append", default=[])
    e.add_argument("--no-new-privs", action="store_true")
    e.add_argument("--preserve-fds", type=int, default=0)
    e.add_argument("--apparmor")
    e.add_argument("--process-label")
    e.add_argument("--ignore-paused", action="store_true")
    e.add_argument("--cgroup")
    e.add_argument("id")
    e.add_argument("command", nargs=argparse.REMAINDER)
    sp = cmd("spec", "write a default config.json")
    sp.add_argument("-b", "--bundle", default=".")
    sp.add_argument("--rootless", action="store_true")
    cmd("features", "print the features this runtime supports (JSON)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log = Logger(args.log, args.log_format, args.debug)
    if args.version:
        print(f"{PROG} version {__version__}\nspec: {OCI_VERSION}")
        return 0
    if not args.verb:
        _parser().print_help()
        return 1
    try:
        from hutch.cli import runtime_verbs
        return getattr(runtime_verbs, "cmd_" + args.verb)(args, log)
    except HutchError as e:
        log.error(_full_message(e))
        return e.exit_code
    except OSError as e:
        log.error(_full_message(e))
        return 1
    except KeyboardInterrupt:
        return 130


def _full_message(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    for note in getattr(e, "__notes__", []):
        msg += f"\n  {note}"
    return msg


if __name__ == "__main__":
    sys.exit(main())
