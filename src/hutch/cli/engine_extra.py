"""More of hutch's engine commands: copy, snapshot, restore, autostart, set, top.

``cli/engine.py`` adds these parsers (``add_parsers``) and dispatches to the
``cmd_*`` functions here, with the same exit codes.
"""

from __future__ import annotations

import time

from hutch.errors import HutchError, InvalidArgument

VERBS = ("copy", "snapshot", "restore", "autostart", "set", "top")


def add_parsers(sub) -> None:  # type: ignore[no-untyped-def]
    cp = sub.add_parser("copy", help="a copy-on-write clone of a stopped container (lxc-copy)")
    cp.add_argument("-n", "--name", dest="name_flag", help="the container to copy")
    cp.add_argument("-N", "--newname", dest="new_flag", help="the copy's name")
    cp.add_argument("names", nargs="*", metavar="SRC NEW")
    sn = sub.add_parser("snapshot", help="snapshot a stopped container's file system: "
                        "snapshot NAME [SNAP], snapshot ls NAME (lxc-snapshot)")
    sn.add_argument("-n", "--name", dest="name_flag")
    sn.add_argument("-L", "--list", action="store_true")
    sn.add_argument("-r", "--restore", metavar="SNAP")
    sn.add_argument("args", nargs="*", metavar="NAME [SNAP]")
    rs = sub.add_parser("restore", help="restore a stopped container's snapshot")
    rs.add_argument("container")
    rs.add_argument("snapshot")
    au = sub.add_parser("autostart", help="start the containers marked autostart, in order")
    au.add_argument("-L", "--list", action="store_true", help="list them, start nothing")
    how = au.add_mutually_exclusive_group()
    how.add_argument("-s", "--stop", action="store_true", help="stop them cleanly instead")
    how.add_argument("-k", "--kill", action="store_true", help="kill them instead")
    au.add_argument("-t", "--timeout", type=float, default=10.0)
    st = sub.add_parser("set", help="change a container's settings: autostart=1, "
                        "autostart.order=N, autostart.delay=S")
    st.add_argument("container")
    st.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    tp = sub.add_parser("top", help="the processes of a running container")
    tp.add_argument("container")


def cmd_copy(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.engine import clone
    names = list(args.names)
    src = args.name_flag or (names.pop(0) if names else None)
    new = args.new_flag or (names.pop(0) if names else None)
    if not src or not new or names:
        raise InvalidArgument("copy: give the container and the copy's name: hutch copy SRC NEW")
    made = clone.copy(engine, src, new)
    print(f"copied {src} to {new} ({made['id'][:12]})")
    return 0


def cmd_snapshot(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.engine import clone
    rest = list(args.args)
    listing = args.list or rest[:1] == ["ls"]
    if rest[:1] == ["ls"]:
        rest.pop(0)
    ref = args.name_flag or (rest.pop(0) if rest else None)
    if not ref:
        raise InvalidArgument("snapshot: name the container (hutch snapshot NAME [SNAP])")
    if listing:
        for s in clone.snapshots(engine, ref):
            when = time.strftime("%Y:%m:%d %H:%M:%S", time.localtime(s["created"]))
            print(f"{s['name']}  {when}")
        return 0
    if args.restore:
        clone.restore(engine, ref, args.restore)
        print(f"restored {ref} to {args.restore}")
        return 0
    if len(rest) > 1:
        raise InvalidArgument(f"snapshot: unexpected {' '.join(rest[1:])}")
    print(clone.snapshot(engine, ref, rest[0] if rest else None))
    return 0


def cmd_restore(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.engine import clone
    clone.restore(engine, args.container, args.snapshot)
    print(f"restored {args.container} to {args.snapshot}")
    return 0


def cmd_autostart(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.engine import autostart
    if args.list:
        for c in autostart.marked(engine):
            print(f"{c['name']} {c['order']} {c['delay']:g}")
        return 0
    action = "stop" if args.stop else "kill" if args.kill else "start"
    failed = 0
    for name, what in autostart.run(engine, action, args.timeout):
        print(f"{name}: {what}")
        failed += what.startswith("failed")
    if failed:
        raise HutchError(f"autostart: {failed} container(s) failed")
    return 0


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"expected 1 or 0, not {value!r}")


def cmd_set(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.engine import autostart
    changes: dict = {}
    for item in args.settings:
        key, eq, value = item.partition("=")
        key = key.replace("lxc.start.", "autostart.").replace("autostart.auto", "autostart")
        try:
            if not eq:
                raise InvalidArgument("expected KEY=VALUE")
            if key == "autostart":
                changes["auto"] = _flag(value)
            elif key == "autostart.order":
                changes["order"] = int(value)
            elif key == "autostart.delay":
                changes["delay"] = float(value)
            else:
                raise InvalidArgument("known: autostart, autostart.order, autostart.delay")
        except (InvalidArgument, ValueError) as e:
            raise InvalidArgument(f"set {item}: {e}") from None
    autostart.set_marks(engine, args.container, **changes)
    return 0


def cmd_top(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.engine.procs import COLUMNS, top
    rows = top(engine, args.container)
    table = [COLUMNS] + [tuple(str(r[c]) for c in COLUMNS) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS) - 1)]
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1])
    return 0


def log_bound(text: str | None, flag: str) -> str:
    """``--since``/``--until`` as the log's RFC 3339 form ("" for none): an RFC 3339 time,
    unix seconds, or a duration back from now (10m, 1h30m), as docker logs takes them."""
    import calendar
    import re

    from hutch.engine.health import parse_duration
    from hutch.shim.logs import rfc3339
    if not text:
        return ""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return rfc3339(int(float(text) * 1e9))
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)(\.\d+)?(Z|[+-]\d\d:\d\d)?", text)
    if m:
        whole = m.group(1) + (":00" if len(m.group(1)) == 16 else "")
        seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
        if m.group(3) and m.group(3) != "Z":
            sign = 1 if m.group(3)[0] == "+" else -1
            hh, mm = m.group(3)[1:].split(":")
            seconds -= sign * (int(hh) * 3600 + int(mm) * 60)
        elif not m.group(3):
            seconds = time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))  # local time
        nanos = int((m.group(2) or ".")[1:].ljust(9, "0")[:9])
        return rfc3339(int(seconds) * 1_000_000_000 + nanos)
    try:
        back = parse_duration(text, flag)
    except InvalidArgument:
        raise InvalidArgument(f"{flag} {text!r}: expected an RFC 3339 time "
                              "(2024-05-01T10:00:00Z), unix seconds or a duration (10m)") \
            from None
    return rfc3339(time.time_ns() - int(back * 1e9))
