"""One function per hutch-runtime verb: parse what argparse gave, call the runtime, print."""

from __future__ import annotations

import json
import os
import sys

from hutch.cli.flags import Namespace
from hutch.cli.runtime import Logger, parse_signal
from hutch.common.units import parse_size
from hutch.errors import InvalidArgument


def _count(text: str) -> int:
    if not str(text).isdigit():
        raise InvalidArgument(f"--preserve-fds {text}: expected a number")
    return int(text)


def cmd_create(args: Namespace, log: Logger) -> int:
    from hutch.runtime.launcher import CreateOptions, create
    create(args.root, args.id, CreateOptions(args.bundle, args.console_socket, None,
                                             args.pid_file, args.no_pivot, _count(args.preserve_fds)))
    return 0


def cmd_run(args: Namespace, log: Logger) -> int:
    from hutch.oci.runtime_spec import load_config
    from hutch.runtime import foreground as fg
    from hutch.runtime.container import Container
    from hutch.runtime.launcher import CreateOptions, create

    terminal = bool((load_config(os.path.abspath(args.bundle)).get("process") or {})
                    .get("terminal"))
    proxy = None
    if not args.detach:
        fg.become_subreaper()
        if terminal and not args.console_socket:
            proxy = fg.TerminalProxy()
    forwarder = fg.SignalForwarder()
    if not args.detach:
        forwarder.install()
    rec = create(args.root, args.id, CreateOptions(
        args.bundle, args.console_socket, proxy.child if proxy else None, args.pid_file,
        args.no_pivot, _count(args.preserve_fds)))
    pid = rec["pid"]
    forwarder.pid = pid
    container = Container(args.root, args.id)
    try:
        if proxy:
            proxy.receive()
        container.start()
    except BaseException:
        container.delete(force=True)
        raise
    if args.detach:
        return 0
    status = proxy.run_until_exit(pid) if proxy else fg.wait_for(pid)
    forwarder.restore()
    if not args.keep:
        Container(args.root, args.id).delete(force=True)
    return status


def cmd_start(args: Namespace, log: Logger) -> int:
    from hutch.runtime.container import Container
    Container(args.root, args.id).start()
    return 0


def cmd_state(args: Namespace, log: Logger) -> int:
    from hutch.runtime.container import Container
    print(json.dumps(Container(args.root, args.id).state(), indent=2))
    return 0


def cmd_kill(args: Namespace, log: Logger) -> int:
    from hutch.runtime.container import Container
    Container(args.root, args.id).kill(parse_signal(args.signal or "SIGTERM"), args.all)
    return 0


def cmd_delete(args: Namespace, log: Logger) -> int:
    from hutch.runtime.container import Container
    from hutch.runtime.statedir import StateDir
    try:
        Container(args.root, args.id).delete(args.force)
    except Exception:
        if args.force and not StateDir(args.root, args.id).exists():
            return 0
        raise
    return 0


def cmd_pause(args: Namespace, log: Logger) -> int:
    from hutch.runtime.container import Container
    Container(args.root, args.id).pause()
    return 0


def cmd_resume(args: Namespace, log: Logger) -> int:
    from hutch.runtime.container import Container
    Container(args.root, args.id).resume()
    return 0


def cmd_list(args: Namespace, log: Logger) -> int:
    from hutch.runtime.container import list_containers
    states = []
    for c in list_containers(args.root):
        st = c.state()
        st.setdefault("owner", "root")
        if not st.get("owner"):
            st["owner"] = "root"
        states.append(st)
    if args.format not in ("table", "json"):
        raise InvalidArgument(f"--format {args.format}: use table or json")
    if args.quiet:
        for st in states:
            print(st["id"])
    elif args.format == "json":
        print(json.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s.get("pid", 0)), s["status"], s.get("bundle", ""),
                  s.get("created", ""), s.get("owner", "")) for s in states]
        _print_table(rows)
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    from hutch.cli.table import print_table
    print_table(rows)


def cmd_ps(args: Namespace, log: Logger) -> int:
    from hutch.runtime.container import Container
    pids = Container(args.root, args.id).pids()
    if args.format == "json":
        print(json.dumps(pids))
        return 0
    import subprocess
    ps_args = args.ps_args or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if out.returncode != 0:
        raise InvalidArgument(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0]
    cols = header.split()
    if "PID" not in cols:
        raise InvalidArgument("ps output has no PID column; include one in the ps options")
    index = cols.index("PID")
    print(header)
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > index and fields[index].isdigit() and int(fields[index]) in wanted:
            print(line)
    return 0


def cmd_exec(args: Namespace, log: Logger) -> int:
    from hutch.runtime.exec import ExecOptions, exec_process
    if not args.process and not args.command:
        raise InvalidArgument("exec: give a command or --process FILE")
    command = args.command
    return exec_process(args.root, args.id, ExecOptions(
        process_file=args.process, args=command, tty=args.tty, console_socket=args.console_socket,
        cwd=args.cwd, env=args.env, user=args.user, additional_gids=args.additional_gids,
        detach=args.detach, pid_file=args.pid_file, caps=args.cap, no_new_privs=args.no_new_privs,
        preserve_fds=_count(args.preserve_fds), ignore_paused=args.ignore_paused))


def cmd_spec(args: Namespace, log: Logger) -> int:
    from hutch.oci.defaults import default_spec
    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path):
        raise InvalidArgument(f"file {path} exists; remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(rootless=args.rootless), f, indent="\t")
        f.write("\n")
    return 0


def cmd_features(args: Namespace, log: Logger) -> int:
    from hutch.oci.features import features
    from hutch.runtime import seccomp
    # idmapped bind mounts (runtime/idmapped.py) need mount_setattr: Linux 5.12
    major, minor = (os.uname().release.split(".") + ["0"])[:2]
    kernel = (int(major), int("".join(c for c in minor if c.isdigit()) or 0))
    doc = features(seccomp_enabled=False, idmap_enabled=kernel >= (5, 12))
    doc["linux"]["seccomp"] = seccomp.features()  # type: ignore[index]
    json.dump(doc, sys.stdout, indent="    ")
    print()
    return 0



def _int_flag(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"{flag} {text}: expected an integer") from None


def update_resources(args: Namespace) -> dict:
    """linux.resources from --resources and the single-value flags (flags win)."""
    resources: dict = {}
    if args.resources:
        try:
            text = sys.stdin.read() if args.resources == "-" else open(args.resources).read()
            resources = json.loads(text)
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"--resources {args.resources}: {e}") from None
        if not isinstance(resources, dict):
            raise InvalidArgument(f"--resources {args.resources}: expected a JSON object")
    cpu = resources.setdefault("cpu", {})
    for flag, key in (("cpu_period", "period"), ("cpu_quota", "quota"), ("cpu_share", "shares"),
                      ("cpu_rt_period", "realtimePeriod"), ("cpu_rt_runtime", "realtimeRuntime")):
        value = getattr(args, flag)
        if value is not None:
            cpu[key] = _int_flag(value, "--" + flag.replace("_", "-"))
    if args.cpuset_cpus is not None:
        cpu["cpus"] = args.cpuset_cpus
    if args.cpuset_mems is not None:
        cpu["mems"] = args.cpuset_mems
    memory = resources.setdefault("memory", {})
    for flag, key in (("memory", "limit"), ("memory_reservation", "reservation"),
                      ("memory_swap", "swap")):
        value = getattr(args, flag)
        if value is not None:
            memory[key] = parse_size(value, "--" + flag.replace("_", "-"))
    if args.pids_limit is not None:
        resources["pids"] = {"limit": _int_flag(args.pids_limit, "--pids-limit")}
    if args.blkio_weight is not None:
        resources.setdefault("blockIO", {})["weight"] = _int_flag(args.blkio_weight,
                                                                  "--blkio-weight")
    return {k: v for k, v in resources.items() if v != {}}


def cmd_update(args: Namespace, log: Logger) -> int:
    from hutch.runtime.container import Container
    resources = update_resources(args)
    if not resources:
        raise InvalidArgument("update: nothing to change (give --resources or a limit flag)")
    Container(args.root, args.id).update(resources)
    return 0


_DURATION_UNITS = (("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0),
                   ("m", 60.0), ("h", 3600.0))


def parse_duration(text: str, flag: str = "--interval") -> float:
    """Seconds from a Go duration as runc takes it: "5s", "500ms", "1m30s", "1.5s"."""
    t = text.strip()
    total, i = 0.0, 0
    if not t:
        raise InvalidArgument(f"{flag} {text!r}: expected a duration like 5s or 500ms")
    while i < len(t):
        j = i
        while j < len(t) and (t[j].isdigit() or t[j] == "."):
            j += 1
        number = t[i:j]
        unit = next((u for u, _ in sorted(_DURATION_UNITS, key=lambda x: -len(x[0]))
                     if t.startswith(u, j)), None)
        if not number or number.count(".") > 1 or unit is None:
            raise InvalidArgument(f"{flag} {text!r}: expected a duration like 5s, 500ms or 1m30s")
        total += float(number) * dict(_DURATION_UNITS)[unit]
        i = j + len(unit)
    return total


def _event(kind: str, container_id: str, data: dict | None = None) -> None:
    """One JSON line as runc's encoder writes it ("data" left out when there is none)."""
    event: dict = {"type": kind, "id": container_id}
    if data is not None:
        event["data"] = data
    print(json.dumps(event, separators=(",", ":")), flush=True)


def cmd_events(args: Namespace, log: Logger) -> int:
    """runc events: --stats prints one stats event; otherwise stats every --interval and
    an "oom" event whenever the OOM killer strikes, until the container stops."""
    import time

    from hutch.cgroups.stats import OomWatch
    from hutch.errors import NotFound, Unsupported, WrongState
    from hutch.runtime.container import STOPPED, Container

    interval = parse_duration(args.interval)
    if interval <= 0:
        raise InvalidArgument(f"--interval {args.interval}: the interval must be greater than 0")
    container = Container(args.root, args.id)
    if container.status() == STOPPED:
        raise WrongState(f"container with id {args.id} is not running")
    cgroup = container.cgroup
    if cgroup is None or not cgroup.version:
        raise Unsupported(f"container {args.id} has no cgroup: there are no stats or OOM"
                          " events to show")
    if args.stats:
        _event("stats", args.id, cgroup.stats())
        return 0
    poll = min(0.25, interval)  # how often we look whether the container still runs
    with OomWatch(cgroup) as oom:
        next_stats = time.monotonic() + interval
        while True:
            wait = max(0.0, min(poll, next_stats - time.monotonic()))
            for _ in range(oom.wait(wait)):
                _event("oom", args.id)
            if container.status() == STOPPED or oom.gone:
                for _ in range(oom.wait(0)):  # an OOM kill of the init: report it, then end
                    _event("oom", args.id)
                return 0
            if time.monotonic() >= next_stats:
                try:
                    data = cgroup.stats()
                except NotFound:
                    return 0  # deleted meanwhile
                _event("stats", args.id, data)
                next_stats += interval
                if next_stats < time.monotonic():  # we were suspended: do not burst
                    next_stats = time.monotonic() + interval
