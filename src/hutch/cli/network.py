"""`hutch network create|ls|inspect|rm|connect|disconnect|prune` (Docker's names)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from hutch.cli.table import print_table
from hutch.errors import HutchError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hutch network", description="container networks")
    p.add_argument("--root", default=None, help="state directory (HUTCH_ROOT)")
    sub = p.add_subparsers(dest="verb", required=True)
    c = sub.add_parser("create", help="a bridge network with its subnet, rules and resolver")
    c.add_argument("--subnet", help="an IPv4 subnet (default: a free /24 of 10.89.0.0/16)")
    c.add_argument("--gateway", help="the host's address on it (default: the first one)")
    c.add_argument("--internal", action="store_true", help="no way in or out of it")
    c.add_argument("--mtu", type=int)
    c.add_argument("-d", "--driver", default="bridge", help="bridge (the only driver)")
    c.add_argument("name")
    ls = sub.add_parser("ls", help="list networks")
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.add_argument("--format")
    i = sub.add_parser("inspect", help="a network as JSON")
    i.add_argument("names", nargs="+")
    r = sub.add_parser("rm", help="remove networks nobody uses")
    r.add_argument("names", nargs="+")
    for verb in ("connect", "disconnect"):
        v = sub.add_parser(verb, help=f"{verb} a container")
        if verb == "connect":
            v.add_argument("--ip")
        v.add_argument("network")
        v.add_argument("container")
    sub.add_parser("prune", help="remove unused networks and what a crash left behind")
    return p


def _describe(engine, net) -> dict:  # type: ignore[no-untyped-def]
    containers = {}
    for ep in net.endpoints:
        try:
            name = engine.db.find(ep.owner)["name"]
        except HutchError:
            name = ep.owner[:12]
        containers[ep.owner] = {"Name": name, "IPv4Address": f"{ep.address}/{ep.prefixlen}",
                                "MacAddress": ep.mac, "Interface": ep.ifname,
                                "Ports": [str(p) for p in ep.ports]}
    return {"Name": net.name, "Id": net.id, "Driver": "bridge", "Bridge": net.bridge,
            "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(net.created)),
            "Internal": net.internal, "MTU": net.mtu,
            "IPAM": {"Config": [{"Subnet": str(net.subnet), "Gateway": str(net.gateway)}]},
            "Containers": containers}


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from hutch.engine import Engine
    try:
        engine = Engine(args.root)
        return int(globals()["cmd_" + args.verb](engine, args) or 0)
    except HutchError as e:
        notes = getattr(e, "__notes__", [])
        print("hutch: " + "\n  ".join([str(e), *notes]), file=sys.stderr)
        return 125


def cmd_create(engine, args) -> int:  # type: ignore[no-untyped-def]
    if args.driver != "bridge":
        from hutch.errors import InvalidArgument
        raise InvalidArgument(f"--driver {args.driver}: hutch has the bridge driver only")
    net = engine.net.create_network(args.name, subnet=args.subnet, gateway=args.gateway,
                                    internal=args.internal, mtu=args.mtu)
    print(net.id)
    return 0


def cmd_ls(engine, args) -> int:  # type: ignore[no-untyped-def]
    nets = engine.net.manager.networks()
    if args.quiet:
        for n in nets:
            print(n.name)
        return 0
    rows = [{"name": n.name, "id": n.id[:12], "subnet": str(n.subnet),
             "gateway": str(n.gateway), "internal": n.internal,
             "containers": len(n.endpoints)} for n in nets]
    if args.format == "json":
        print(json.dumps(rows))
        return 0
    cols = ("id", "name", "subnet", "gateway", "internal", "containers")
    print_table([tuple(c.upper() for c in cols)] +
                [tuple(str(r[c]) for c in cols) for r in rows], sep="  ")
    return 0


def cmd_inspect(engine, args) -> int:  # type: ignore[no-untyped-def]
    print(json.dumps([_describe(engine, engine.net.manager.get(n)) for n in args.names],
                     indent=2))
    return 0


def cmd_rm(engine, args) -> int:  # type: ignore[no-untyped-def]
    rc = 0
    for name in args.names:
        try:
            engine.net.remove_network(name)
            print(name)
        except HutchError as e:
            print(f"hutch: {e}", file=sys.stderr)
            rc = 1
    return rc


def cmd_connect(engine, args) -> int:  # type: ignore[no-untyped-def]
    engine.network_connect(args.network, args.container, ip=args.ip)
    return 0


def cmd_disconnect(engine, args) -> int:  # type: ignore[no-untyped-def]
    engine.network_disconnect(args.network, args.container)
    return 0


def cmd_prune(engine, args) -> int:  # type: ignore[no-untyped-def]
    known = {row["id"] for row in engine.db.all()}
    for line in engine.net.prune(known):
        print(line)
    return 0
