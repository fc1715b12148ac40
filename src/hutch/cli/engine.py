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

from hutch.cli.table import print_table
from hutch.errors import HutchError, InvalidArgument

ENGINE_VERBS = ("run", "create", "start", "ps", "logs", "stop", "restart", "kill", "rm",
                "inspect", "wait", "exec", "stats", "port",
                # LXC style, for OS containers
                "ls", "console", "attach", "info", "destroy", "freeze", "unfreeze",
                # cli/engine_extra.py and cli/volume.py
                "copy", "snapshot", "restore", "autostart", "set", "top", "volume")
DETACH = b"\x01q"  # Ctrl-a q, as lxc-console


def _size(text: str) -> int:
    from hutch.common.units import parse_size
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
    p.add_argument("--userns", default="auto",
                   help="auto: its own user namespace (default); host: share the host's")
    p.add_argument("--network", "--net", default="bridge",
                   help="bridge (the default network), NAME[,NAME] (networks made with "
                   "`hutch network create`), none (only lo), host, or container:NAME")
    p.add_argument("--privileged", action="store_true",
                   help="every capability, no seccomp, the host's devices and user ids")
    p.add_argument("--mount", action="append", default=[],
                   help="type=bind|volume|tmpfs,source=...,target=...[,readonly]")
    for flag in ("read-bps", "write-bps", "read-iops", "write-iops"):
        p.add_argument(f"--device-{flag}", action="append", default=[],
                       help="DEVICE:RATE, a block I/O limit (bytes/s or IO/s)")
    p.add_argument("-p", "--publish", action="append", default=[],
                   help="[IP:][HOST:]CONTAINER[/tcp|udp], ranges as 8000-8010")
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish every exposed port on a free host port")
    p.add_argument("--expose", action="append", default=[], help="PORT[/PROTO] to expose")
    p.add_argument("--ip", help="the container's IPv4 address on its first network")
    p.add_argument("--network-rate", help="bandwidth limit: RATE both ways (10mbit), or "
                   "egress=RATE,ingress=RATE")
    p.add_argument("--network-alias", action="append", default=[],
                   help="another name the container answers to on its networks")
    p.add_argument("--health-cmd", help="a shell command; exit 0 means healthy")
    p.add_argument("--health-interval", help="time between checks (30s)")
    p.add_argument("--health-timeout", help="a check taking longer fails (30s)")
    p.add_argument("--health-retries", type=int, help="failures in a row to be unhealthy (3)")
    p.add_argument("--health-start-period", help="failures in this time do not count (0s)")
    p.add_argument("--no-healthcheck", action="store_true", help="no check, not even the "
                   "image's")
    p.add_argument("--pull", default="missing", choices=("missing", "always", "never"),
                   help="fetch the image from its registry: missing (when the store lacks "
                   "it and the name has a registry host), always, never")
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hutch")
    p.add_argument("--root", default=None, help="state directory (HUTCH_ROOT)")
    sub = p.add_subparsers(dest="verb")
    _run_flags(sub.add_parser("run", help="create and start a container"))
    _run_flags(sub.add_parser("create", help="create a container"))
    s = sub.add_parser("start", help="start containers (an OS container: on its console)")
    s.add_argument("-a", "--attach", action="store_true")
    s.add_argument("-d", "--daemon", action="store_true", help="OS container: do not attach")
    s.add_argument("-n", "--name", dest="name_flag")
    s.add_argument("containers", nargs="*")
    ls = sub.add_parser("ls", help="list containers, LXC style")
    ls.add_argument("--fancy", action="store_true")
    ls.add_argument("--format")
    for verb, text in (("console", "attach to an OS container's console (detach: Ctrl-a q)"),
                       ("info", "state, pid and resource use (beancounters)"),
                       ("destroy", "remove a stopped container"),
                       ("freeze", "freeze every process of a container"),
                       ("unfreeze", "thaw a frozen container")):
        v = sub.add_parser(verb, help=text)
        v.add_argument("-n", "--name", dest="name_flag")
        if verb == "destroy":
            v.add_argument("-f", "--force", action="store_true")
        if verb == "console":
            v.add_argument("-t", "--tty", type=int, default=0,
                           help="one of its ttys, 1..N (lxc-console -t); 0: its console")
        v.add_argument("container", nargs="?")
    at = sub.add_parser("attach", help="run a command in a running container (lxc-attach)")
    at.add_argument("-n", "--name", dest="name_flag")
    at.add_argument("container", nargs="?")
    at.add_argument("command", nargs=argparse.REMAINDER)
    pt = sub.add_parser("port", help="a container's published ports")
    pt.add_argument("container")
    pt.add_argument("private", nargs="?", help="PORT[/PROTO]: only this one")
    ps = sub.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true")
    ps.add_argument("-q", "--quiet", action="store_true")
    ps.add_argument("--format")
    lg = sub.add_parser("logs", help="show a container's output")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--tail")
    lg.add_argument("-t", "--timestamps", action="store_true")
    lg.add_argument("--since", help="from this time on: RFC 3339, unix seconds or a "
                    "duration back from now (10m)")
    lg.add_argument("--until", help="up to this time (same forms)")
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
    stp = sub.add_parser("stats", help="a live table of CPU %, memory, pids, block I/O")
    stp.add_argument("--no-stream", action="store_true", help="one table, then exit")
    stp.add_argument("--format", help="json: one JSON object per container and sample")
    stp.add_argument("containers", nargs="*")
    ex = sub.add_parser("exec", help="run a command in a running container")
    ex.add_argument("-i", "--interactive", action="store_true")
    ex.add_argument("-t", "--tty", action="store_true")
    ex.add_argument("-u", "--user")
    ex.add_argument("-e", "--env", action="append", default=[])
    ex.add_argument("-w", "--workdir")
    ex.add_argument("-d", "--detach", action="store_true")
    ex.add_argument("container")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    from hutch.cli import engine_extra, volume
    engine_extra.add_parsers(sub)
    volume.add_parsers(sub)
    return p


def _command(verb: str):  # type: ignore[no-untyped-def]
    if "cmd_" + verb in globals():
        return globals()["cmd_" + verb]
    from hutch.cli import engine_extra, volume
    return getattr(engine_extra, "cmd_" + verb, None) or getattr(volume, "cmd_" + verb)


def _lxc_create(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hutch create", description="create an OS container "
                                "from a template (LXC style)")
    p.add_argument("--root", default=None)
    p.add_argument("verb")
    p.add_argument("-t", "--template", required=True)
    p.add_argument("-n", "--name", required=True)
    p.add_argument("--autostart", action="store_true")
    p.add_argument("--autostart-order", type=int, default=0, help="lower starts first")
    p.add_argument("--autostart-delay", type=float, default=0.0,
                   help="seconds to wait after starting it")
    p.add_argument("template_args", nargs="*")
    extra: list[str] = []
    if "--" in argv:  # the template's options, as lxc-create: argparse would refuse them
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    args = p.parse_args(argv)
    args.template_args = [*args.template_args, *extra]
    return args


def main(argv: list[str]) -> int:
    verb_at = 2 if argv[:1] == ["--root"] else (1 if argv[0].startswith("--root=") else 0)
    if argv[verb_at] == "create" and ("-n" in argv or "--template" in argv):
        args = _lxc_create(argv)
        args.verb = "lxc_create"
    else:
        args = _parser().parse_args(argv)
    from hutch.engine import Engine
    try:
        engine = Engine(args.root)
        return _command(args.verb)(engine, args)
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
    from hutch.engine.spec import parse_mount
    volumes, tmpfs = list(args.volumes), list(args.tmpfs)
    for text in args.mount:
        kind, value = parse_mount(text)
        (tmpfs if kind == "tmpfs" else volumes).append(value)
    return RunOptions(
        image=args.image, command=args.command, name=args.name, detach=args.detach,
        remove=args.remove, interactive=args.interactive, tty=args.tty, env=env,
        workdir=args.workdir, user=args.user, entrypoint=args.entrypoint,
        hostname=args.hostname, volumes=volumes, tmpfs=tmpfs,
        read_only=args.read_only, memory=args.memory, memory_swap=args.memory_swap,
        cpus=args.cpus, cpu_shares=args.cpu_shares, cpuset_cpus=args.cpuset_cpus,
        pids_limit=args.pids_limit, cap_add=args.cap_add, cap_drop=args.cap_drop,
        restart=args.restart, stop_signal=args.stop_signal, labels=labels, userns=args.userns,
        privileged=args.privileged, device_read_bps=args.device_read_bps,
        device_write_bps=args.device_write_bps, device_read_iops=args.device_read_iops,
        device_write_iops=args.device_write_iops,
        network=args.network, publish=args.publish, publish_all=args.publish_all,
        expose=args.expose, ip=args.ip, network_rate=args.network_rate,
        network_aliases=args.network_alias, health_cmd=args.health_cmd,
        health_interval=args.health_interval,
        health_timeout=args.health_timeout, health_retries=args.health_retries,
        health_start_period=args.health_start_period, no_healthcheck=args.no_healthcheck,
        pull=args.pull)


def cmd_port(engine, args) -> int:  # type: ignore[no-untyped-def]
    row = engine.db.find(args.container)
    ports = engine.network_settings(row["id"])["Ports"]
    want = args.private if args.private is None or "/" in args.private else \
        f"{args.private}/tcp"
    if want is not None and want not in ports:
        raise InvalidArgument(f"no public port {want} published for {row['name']}")
    for private, bindings in sorted(ports.items()):
        for b in bindings:
            if want is None:
                print(f"{private} -> {b['HostIp']}:{b['HostPort']}")
            elif private == want:
                print(f"{b['HostIp']}:{b['HostPort']}")
    return 0


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
            _follow(engine, cid, follow=True)
            code = engine.wait(cid)
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


def _follow(engine, ref: str, follow: bool, tail: int | None = None,  # type: ignore
            timestamps: bool = False, since: str = "", until: str = "") -> None:
    """Print log entries, stdout to stdout and stderr to stderr; with ``follow``, go on
    printing new ones until the container's shim is gone."""
    from hutch.shim.logs import LogFollower, read_rotated
    path = engine.inspect(ref)["LogPath"]
    cid = engine.db.find(ref)["id"]
    follower = LogFollower(path, from_end=False)
    entries = read_rotated(path) + follower.read_new()

    if since or until:  # RFC 3339 times in one format compare as text
        entries = [e for e in entries if since <= e["time"] and (not until or e["time"] < until)]

    def show(items: list[dict]) -> None:
        for e in items:
            if until and e["time"] >= until:
                continue
            out = sys.stdout if e["stream"] == "stdout" else sys.stderr
            out.write((e["time"] + " " if timestamps else "") + e["log"])
            out.flush()

    show(entries[-tail:] if tail is not None and tail > 0 else [] if tail == 0 else entries)
    while follow:
        alive = engine.shim(cid).alive()
        show(follower.read_new())
        if not alive:
            break
        time.sleep(0.01)


def _attach_tty(engine, cid: str, detach: bool = False,  # type: ignore[no-untyped-def]
                tty_number: int = 0) -> int:
    import select
    import termios
    import tty
    sock = engine.shim(cid).attach(tty_number)
    saved = None
    pending = b""
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSANOW)
        size = os.get_terminal_size(0)
        engine.shim(cid).resize(size.lines, size.columns, tty_number)
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
                if detach and DETACH in pending + data:
                    before = (pending + data).split(DETACH, 1)[0]
                    if before:
                        sock.sendall(before)
                    return 0  # detached: the container goes on
                if detach and data.endswith(DETACH[:1]):
                    pending, data = DETACH[:1], data[:-1]
                else:
                    data, pending = pending + data, b""
                if data:
                    sock.sendall(data)
            if not ready and not engine.shim(cid).alive():
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        sock.close()
    return engine.wait(cid)


def _ref(args: argparse.Namespace) -> str:
    ref = getattr(args, "name_flag", None) or getattr(args, "container", None)
    if not ref:
        raise InvalidArgument("name the container (NAME or -n NAME)")
    return ref


def cmd_lxc_create(engine, args) -> int:  # type: ignore[no-untyped-def]
    made = engine.create_os(args.template, args.name, args.autostart, args.autostart_order,
                            args.autostart_delay, template_args=args.template_args)
    print(f"created {args.name} ({made['id'][:12]}) from template {args.template}")
    return 0


def _is_os(engine, ref: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(json.loads(engine.db.find(ref)["config"]).get("template"))


def cmd_start(engine, args) -> int:  # type: ignore[no-untyped-def]
    refs = list(args.containers) + ([args.name_flag] if args.name_flag else [])
    if not refs:
        raise InvalidArgument("start: name the container")
    for ref in refs:
        if _is_os(engine, ref) and not args.daemon:
            cid = engine.db.find(ref)["id"]
            engine.start(cid, attach_first=True)
            return _attach_tty(engine, cid, detach=True)
        engine.start(ref)
        if args.attach:
            _follow(engine, ref, follow=True)
            return engine.wait(ref)
        print(ref)
    return 0


def cmd_console(engine, args) -> int:  # type: ignore[no-untyped-def]
    row = engine.db.find(_ref(args))
    cid = row["id"]
    if engine.status(cid) != "running":
        raise InvalidArgument(f"container {_ref(args)} is not running")
    count = int(json.loads(row["config"]).get("ttys") or 0)
    if args.tty and not 1 <= args.tty <= count:
        raise InvalidArgument(f"--tty {args.tty}: no tty {args.tty}: the container has {count}"
                              + (f" (1..{count})" if count else ""))
    where = f"tty{args.tty}" if args.tty else "the console"
    print(f"Connected to {where}; Ctrl-a q to detach", file=sys.stderr)
    return _attach_tty(engine, cid, detach=True, tty_number=args.tty)


def cmd_attach(engine, args) -> int:  # type: ignore[no-untyped-def]
    args.container = _ref(args)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    ns = argparse.Namespace(container=args.container, command=command or ["/bin/sh"],
                            tty=os.isatty(0), env=[], workdir=None, user=None, detach=False)
    return cmd_exec(engine, ns)


def cmd_ls(engine, args) -> int:  # type: ignore[no-untyped-def]
    rows = []
    for c in engine.ps(all_containers=True):
        config = json.loads(engine.db.find(c["id"])["config"])
        rows.append({"name": c["name"], "state": c["status"].upper(),
                     "ipv4": (engine.network_settings(c["id"])["IPAddress"] or "-")
                     if c["status"] in ("running", "restarting") else "-",
                     "pid": c["pid"] or "-", "autostart": int(bool(config.get("autostart"))),
                     "template": config.get("template") or "-",
                     "privileged": "yes" if config.get("privileged") else "no"})
    if args.format == "json":
        print(json.dumps(rows))
        return 0
    cols = ("name", "state", "ipv4", "pid", "autostart") + (("template", "privileged")
                                                            if args.fancy else ())
    print_table([tuple(c.upper() for c in cols)] +
                [tuple(str(r[c]) for c in cols) for r in rows], sep="  ")
    return 0


def cmd_info(engine, args) -> int:  # type: ignore[no-untyped-def]
    data = engine.info(_ref(args))
    st = data["State"]
    print(f"Name:       {data['Name']}\nState:      {st['Status'].upper()}\n"
          f"PID:        {st['Pid'] or '-'}\n"
          f"IP:         {data['NetworkSettings']['IPAddress'] or '-'}\n"
          f"Image:      {data['Image']}\n"
          f"Privileged: {'yes' if data['Privileged'] else 'no'} (user namespace: "
          f"{data['UsernsMode']})")
    if data["Resources"]:
        from hutch.cgroups import accounting
        print("Resources:")
        print(accounting.format_beancounters(
            [(data["Name"], [accounting.Row(**r) for r in data["Resources"]])]))
    return 0


def cmd_destroy(engine, args) -> int:  # type: ignore[no-untyped-def]
    engine.rm(_ref(args), force=args.force)
    print(f"destroyed {_ref(args)}")
    return 0


def cmd_freeze(engine, args) -> int:  # type: ignore[no-untyped-def]
    engine.freeze(_ref(args))
    return 0


def cmd_unfreeze(engine, args) -> int:  # type: ignore[no-untyped-def]
    engine.freeze(_ref(args), thaw=True)
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
        status = _status_text(r)
        table.append((r["id"][:12], r["image"], r["command"][:30], _ago(r["created"]),
                      status, r["name"]))
    print_table(table)
    return 0


def _status_text(row: dict) -> str:
    """Docker's STATUS column: "Up 3 seconds (healthy)", "Exited (0)", "Created"."""
    status = row["status"]
    if status == "exited":
        return f"Exited ({row['exit_code']})"
    if status == "running":
        text = "Up " + _duration(time.time() - _epoch(row.get("started_at")))
        return text + (f" ({row['health']})" if row.get("health") else "")
    return status.capitalize()


def _epoch(rfc3339: str | None) -> float:
    import calendar
    if not rfc3339:
        return time.time()
    whole, _, frac = rfc3339.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def _duration(s: float) -> str:
    s = max(0, int(s))
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} seconds"


def _ago(created: float) -> str:
    s = int(time.time() - created)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} seconds ago"


def cmd_logs(engine, args) -> int:  # type: ignore[no-untyped-def]
    tail = int(args.tail) if args.tail not in (None, "all") else None
    from hutch.cli.engine_extra import log_bound
    _follow(engine, args.container, follow=args.follow, tail=tail, timestamps=args.timestamps,
            since=log_bound(args.since, "--since"), until=log_bound(args.until, "--until"))
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


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}"


def _blkio(sample: dict) -> tuple[int, int]:
    read = write = 0
    for entry in sample.get("blkio", {}).get("ioServiceBytesRecursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value", 0))
        elif op == "write":
            write += int(entry.get("value", 0))
    return read, write


def stats_rows(engine, refs: list[str], interval: float = 0.5) -> list[dict]:  # type: ignore
    """Two samples ``interval`` apart: CPU % is the usage between them over wall time."""
    first = {}
    for ref in refs:
        first[ref] = (time.monotonic(), engine.stats(ref))
    time.sleep(interval)
    rows = []
    for ref in refs:
        t0, a = first[ref]
        b = engine.stats(ref)
        dt = time.monotonic() - t0
        cpu = (b["cpu"]["usage"]["total"] - a["cpu"]["usage"]["total"]) / 1e9 / dt * 100
        mem = b["memory"]["usage"]
        limit = mem["limit"] if mem["limit"] < (1 << 62) else 0
        read, write = _blkio(b)
        rows.append({"id": b["id"], "name": b["name"], "cpu_percent": round(cpu, 2),
                     "memory_usage": mem["usage"], "memory_limit": limit,
                     "pids": b["pids"]["current"], "block_read": read, "block_write": write,
                     "net_rx": b["network"]["rx_bytes"], "net_tx": b["network"]["tx_bytes"]})
    return rows


def cmd_stats(engine, args) -> int:  # type: ignore[no-untyped-def]
    while True:
        refs = args.containers or [r["id"] for r in engine.ps()]
        rows = stats_rows(engine, refs) if refs else []
        if args.format == "json":
            for r in rows:
                print(json.dumps(r))
        else:
            if not args.no_stream:
                print("\x1b[2J\x1b[H", end="")
            table = [("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS",
                      "BLOCK I/O", "NET I/O")]
            for r in rows:
                limit = r["memory_limit"]
                table.append((r["id"][:12], r["name"], f"{r['cpu_percent']:.2f}%",
                              f"{_human(r['memory_usage'])} / "
                              f"{_human(limit) if limit else 'unlimited'}",
                              f"{100 * r['memory_usage'] / limit:.2f}%" if limit else "-",
                              str(r["pids"]),
                              f"{_human(r['block_read'])} / {_human(r['block_write'])}",
                              f"{_human(r['net_rx'])} / {_human(r['net_tx'])}"))
            print_table(table)
        sys.stdout.flush()
        if args.no_stream:
            return 0
