"""``hutch volume create|ls|inspect|rm|prune``: named volumes (engine/volumes.py)."""

from __future__ import annotations

import json

from hutch.errors import HutchError, InvalidArgument


def add_parsers(sub) -> None:  # type: ignore[no-untyped-def]
    v = sub.add_parser("volume", help="named volumes: create, ls, inspect, rm, prune")
    vs = v.add_subparsers(dest="volume_verb", required=True)
    c = vs.add_parser("create", help="make a volume (a random name when none is given)")
    c.add_argument("-l", "--label", action="append", default=[])
    c.add_argument("name", nargs="?")
    ls = vs.add_parser("ls", help="list volumes")
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.add_argument("--format")
    i = vs.add_parser("inspect", help="show volumes as JSON")
    i.add_argument("names", nargs="+")
    rm = vs.add_parser("rm", help="remove volumes no container uses")
    rm.add_argument("-f", "--force", action="store_true", help="no error for a missing one")
    rm.add_argument("names", nargs="+")
    pr = vs.add_parser("prune", help="remove every volume no container uses")
    pr.add_argument("-f", "--force", action="store_true", help="(no prompt is asked anyway)")


def cmd_volume(engine, args) -> int:  # type: ignore[no-untyped-def]
    from hutch.engine.volumes import Volumes
    vols = Volumes(engine)
    verb = args.volume_verb
    if verb == "create":
        labels = {}
        for item in args.label:
            key, eq, value = item.partition("=")
            if not key:
                raise InvalidArgument(f"--label {item!r}: expected KEY[=VALUE]")
            labels[key] = value
        print(vols.create(args.name, labels)["Name"])
    elif verb == "ls":
        rows = vols.ls()
        if args.quiet:
            for r in rows:
                print(r["Name"])
        elif args.format == "json":
            print(json.dumps(rows))
        else:
            print("DRIVER    VOLUME NAME")
            for r in rows:
                print(f"{r['Driver']:<9} {r['Name']}")
    elif verb == "inspect":
        print(json.dumps([vols.inspect(n) for n in args.names], indent=2))
    elif verb == "rm":
        failed = []
        for name in args.names:
            try:
                vols.rm(name, args.force)
                print(name)
            except HutchError as e:
                failed.append(e)
        if failed:
            raise failed[0] if len(failed) == 1 else HutchError(
                "; ".join(str(e) for e in failed))
    elif verb == "prune":
        gone = vols.prune()
        if gone:
            print("Deleted Volumes:\n" + "\n".join(gone))
        print(f"Total reclaimed: {len(gone)} volume(s)")
    return 0
