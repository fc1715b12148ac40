"""hutch's Docker-style commands: run, create, start, ps, logs, stop, kill, rm, inspect, wait, exec.

Exit codes as Docker's CLI: the container's own code, 125 when hutch itself fails,
126 when the program cannot be executed, 127 when it is not found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from hutch.errors import HutchError, InvalidArgument

ENGINE_VERBS = ("run", "create", "start", "ps", "logs", "stop", "restart", "kill", "rm",
                "inspect", "wait", "exec")


def _size(text: str) -> int:
    from hutch.cli.runtime_verbs import parse_size
    return parse_size(text, "size")


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--rm", dest="remove", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("--entrypoint")
    p.add_argument("--hostname")
    p.add_argument("-v", "--volume", dest="volumes", action="append", default=[])
    p.add_argument("--tmpfs", action="append", default=[])
    p.add_argument("--read-only", action="store_true")
    p.add_argument("-m", "--memory", type=_size)
    p.add_argument("--memory-swap", type=_size)
    p.add_argument("--cpus", type=float)
    p.add_argument("--cpu-shares", type=int)
    p.add_argument("--cpuset-cpus")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--restart", default="no")
    p.add_argument("--stop-signal")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hutch")
    p.add_argument("--root", default=None, help="state directory (HUTCH_ROOT)")
    sub = p.add_subparsers(dest="verb")
    _run_flags(sub.add_parser("run", help="create and start a container"))
    _run_flags(sub.add_parser("create", help="create a container"))
    s = sub.add_parser("start", help="start created or stopped containers")
    s.add_argument("-a", "--attach", action="store_true")
    s.add_argument("containers", nargs="+")
    ps = sub.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true")
    ps.add_argument("-q", "--quiet", action="store_true")
    ps.add_argument("--format")
    lg = sub.add_parser("logs", help="show a container's output")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--tail")
    lg.add_argument("-t", "--timestamps", action="store_true")
    lg.add_argument("--since")
    lg.add_argument("container")
    for verb in ("stop", "restart"):
        st = sub.add_parser(verb, help=f"{verb} containers")
        st.add_argument("-t", "--time", type=float, default=10.0)
        st.add_argument("containers", nargs="+")
    k = sub.add_parser("kill", help="signal containers")
    k.add_argument("-s", "--signal", default="SIGKILL")
    k.add_argument("containers", nargs="+")
    rm = sub.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true")
    rm.add_argument("containers", nargs="+")
    ins = sub.add_parser("inspect", help="show containers as JSON")
    ins.add_argument("containers", nargs="+")
    w = sub.add_parser("wait", help="wait for containers to exit; print their exit codes")
    w.add_argument("containers", nargs="+")
    ex = sub.add_parser("exec", help="run a command in a running container")
    ex.add_argument("-i", "--interactive", action="store_true")
    ex.add_argument("-t", "--tty", action="store_true")
    ex.add_argument("-u", "--user")
    ex.add_argument("-e", "--env", action="append", default=[])
    ex.add_argument("-w", "--workdir")
    ex.add_argument("-d", "--detach", action="store_true")
    ex.add_argument("container")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from hutch.engine import Engine
    try:
        engine = Engine(args.root)
        return globals()["cmd_" + args.verb](engine, args)
    except HutchError as e:
        print(f"hutch: {_message(e)}", file=sys.stderr)
        text = str(e)
        if "executable file not found" in text or "no such file or directory" in text:
            return 127
        if "permission denied" in text:
            return 126
        return 125
    except OSError as e:
        print(f"hutch: {e.strerror or e}", file=sys.stderr)
        return 125


def _message(e: BaseException) -> str:
    return "\n  ".join([str(e), *getattr(e, "__notes__", [])])


def _options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from hutch.engine import RunOptions
    env = list(args.env)
    for path in args.env_file:
        try:
            with open(path) as f:
                env += [line.strip() for line in f if line.strip() and
                        not line.startswith("#")]
        except OSError as e:
            raise InvalidArgument(f"--env-file {path}: {e.strerror}") from None
    labels = dict(item.partition("=")[::2] for item in args.label)
    return RunOptions(
        image=args.image, command=args.command, name=args.name, detach=args.detach,
        remove=args.remove, interactive=args.interactive, tty=args.tty, env=env,
        workdir=args.workdir, user=args.user, entrypoint=args.entrypoint,
        hostname=args.hostname, volumes=args.volumes, tmpfs=args.tmpfs,
        read_only=args.read_only, memory=args.memory, memory_swap=args.memory_swap,
        cpus=args.cpus, cpu_shares=args.cpu_shares, cpuset_cpus=args.cpuset_cpus,
        pids_limit=args.pids_limit, cap_add=args.cap_add, cap_drop=args.cap_drop,
        restart=args.restart, stop_signal=args.stop_signal, labels=labels)


def cmd_create(engine, args) -> int:  # type: ignore[no-untyped-def]
    print(engine.create(_options(args))["id"])
    return 0


def cmd_run(engine, args) -> int:  # type: ignore[no-untyped-def]
    opts = _options(args)
    made = engine.create(opts)
    cid = made["id"]
    try:
        if opts.detach:
            engine.start(cid)
            print(cid)
            return 0
        if opts.tty:
            engine.start(cid, attach_first=True)
            code = _attach_tty(engine, cid)
        else:
            engine.start(cid)
            sock = engine.shim(cid).attach() if opts.interactive else None
            if sock is not None:
                _pump_stdin(sock)
            code = _follow(engine, cid, until_exit=True)
    except BaseException:
        if opts.remove:
            engine.rm(cid, force=True)
        raise
    if opts.remove:
        engine.rm(cid, force=True)
    return code


def _pump_stdin(sock) -> None:  # type: ignore[no-untyped-def]
    import threading

    def pump() -> None:
        try:
            while True:
                data = os.read(0, 65536)
                if not data:
                    break
                sock.sendall(data)
        except OSError:
            pass
    threading.Thread(target=pump, daemon=True).start()


def _follow(engine, ref: str, until_exit: bool, tail: int | None = None,  # type: ignore
            timestamps: bool = False) -> int:
    """Print log entries as they come, stdout to stdout and stderr to stderr."""
    cid = engine.db.find(ref)["id"]
    shown = 0
    entries = engine.logs(cid)
    if tail is not None:
        shown = max(0, len(entries) - tail)
    while True:
        alive = engine.shim(cid).alive()
        entries = engine.logs(cid)
        for e in entries[shown:]:
            out = sys.stdout if e["stream"] == "stdout" else sys.stderr
            out.write((e["time"] + " " if timestamps else "") + e["log"])
            out.flush()
        shown = len(entries)
        if not until_exit or not alive:
            break
        time.sleep(0.01)
    return engine.wait(cid) if until_exit else 0


def _attach_tty(engine, cid: str) -> int:  # type: ignore[no-untyped-def]
    import select
    import termios
    import tty
    sock = engine.shim(cid).attach()
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSANOW)
        size = os.get_terminal_size(0)
        engine.shim(cid).resize(size.lines, size.columns)
    try:
        while True:
            ready, _, _ = select.select([sock, 0], [], [], 0.5)
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    sock.sendall(data)
            if not ready and not engine.shim(cid).alive():
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        sock.close()
    return engine.wait(cid)


def cmd_start(engine, args) -> int:  # type: ignore[no-untyped-def]
    for ref in args.containers:
        engine.start(ref)
        if args.attach:
            return _follow(engine, ref, until_exit=True)
        print(ref)
    return 0


def cmd_ps(engine, args) -> int:  # type: ignore[no-untyped-def]
    rows = engine.ps(args.all)
    if args.quiet:
        for r in rows:
            print(r["id"][:12])
        return 0
    if args.format == "json":
        print(json.dumps(rows))
        return 0
    table = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for r in rows:
        status = r["status"]
        if status == "exited":
            status = f"Exited ({r['exit_code']})"
        table.append((r["id"][:12], r["image"], r["command"][:30], _ago(r["created"]),
                      status, r["name"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("   ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0


def _ago(created: float) -> str:
    s = int(time.time() - created)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} seconds ago"


def cmd_logs(engine, args) -> int:  # type: ignore[no-untyped-def]
    tail = int(args.tail) if args.tail not in (None, "all") else None
    _follow(engine, args.container, until_exit=False, tail=tail, timestamps=args.timestamps)
    if args.follow:
        return _follow_more(engine, args)
    return 0


def _follow_more(engine, args) -> int:  # type: ignore[no-untyped-def]
    cid = engine.db.find(args.container)["id"]
    shown = len(engine.logs(cid))
    while engine.shim(cid).alive():
        entries = engine.logs(cid)
        for e in entries[shown:]:
            (sys.stdout if e["stream"] == "stdout" else sys.stderr).write(e["log"])
        sys.stdout.flush()
        shown = len(entries)
        time.sleep(0.1)
    return 0


def cmd_stop(engine, args) -> int:  # type: ignore[no-untyped-def]
    for ref in args.containers:
        engine.stop(ref, args.time)
        print(ref)
    return 0


def cmd_restart(engine, args) -> int:  # type: ignore[no-untyped-def]
    for ref in args.containers:
        engine.stop(ref, args.time)
        engine.start(ref)
        print(ref)
    return 0


def cmd_kill(engine, args) -> int:  # type: ignore[no-untyped-def]
    for ref in args.containers:
        engine.kill(ref, args.signal)
        print(ref)
    return 0


def cmd_rm(engine, args) -> int:  # type: ignore[no-untyped-def]
    for ref in args.containers:
        engine.rm(ref, args.force)
        print(ref)
    return 0


def cmd_inspect(engine, args) -> int:  # type: ignore[no-untyped-def]
    print(json.dumps([engine.inspect(ref) for ref in args.containers], indent=2))
    return 0


def cmd_wait(engine, args) -> int:  # type: ignore[no-untyped-def]
    for ref in args.containers:
        print(engine.wait(ref))
    return 0


def cmd_exec(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.runtime.exec import ExecOptions, exec_process
    row = engine.db.find(args.container)
    if engine.status(row["id"]) != "running":
        raise InvalidArgument(f"container {row['name']} is not running")
    if not args.command:
        raise InvalidArgument("exec: give a command to run")
    return exec_process(engine.layout.runtime_root, row["id"], ExecOptions(
        args=args.command, tty=args.tty, env=args.env, cwd=args.workdir, user=args.user,
        detach=args.detach))
