"""`hutch cgroup`: the raw cgroup model as a command line (library: cgroups/tool.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from hutch.errors import HutchError, InvalidArgument

DESCRIPTION = """\
Work with cgroups directly, the way the kernel shows them: hierarchies of groups,
each process in one group of every hierarchy, limits in the groups' files.
The verbs follow libcgroup (cgcreate, cgset, cgget, cgexec, cgclassify, cgdelete,
cgconfigparser) and systemd-cgls/cgtop for `tree`.

Groups are named CONTROLLERS:PATH, e.g. -g cpu,memory:demo/a ('*' for every
hierarchy). PATH is relative to the cgroup hutch itself runs in, in each
hierarchy: '/' is our own cgroup (not the root of the hierarchy), so groups are
made, changed and deleted only below it, and only processes already in that
subtree are moved. `tree` reads anything.

cgroup v1 rules, checked and explained: a controller is attached to at most one
hierarchy; a task is in exactly one group of each hierarchy; children inherit
their parent's limits and membership. On a cgroup v2 host (one hierarchy,
controllers given to children through cgroup.subtree_control) the tool says what
replaces a v1-only notion.
"""

EPILOG = """\
examples:
  hutch cgroup create -g cpu,memory,pids:demo/a
  hutch cgroup set -r memory.limit_in_bytes=64M -r pids.max=20 -g memory,pids:demo/a
  hutch cgroup get -r memory.limit_in_bytes -g memory:demo/a/b
  hutch cgroup exec -g cpu,memory:demo/a -- sleep 60
  hutch cgroup classify -g cpu:demo/b 1234
  hutch cgroup tree demo
  hutch cgroup stats demo/a
  hutch cgroup load cgconfig.conf
  hutch cgroup delete -r -g cpu,memory,pids:demo
"""


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. cpu.shares=512")
    return key.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hutch cgroup", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB")

    def group_flag(sp: argparse.ArgumentParser, required: bool = True) -> None:
        sp.add_argument("-g", dest="groups", action="append", default=[], required=required,
                        metavar="CONTROLLERS:PATH",
                        help="a group: controllers (or '*') and a path below our own cgroup;"
                             " repeatable")

    sp = sub.add_parser("tree", help="the hierarchies with their groups, processes and use",
                        description="Every hierarchy from PATH down (default: our own cgroup):"
                                    " each group with its processes and what it uses.")
    sp.add_argument("path", nargs="?", default="", help="a group below our own cgroup")
    sp.add_argument("-c", "--controllers", default="",
                    help="only the hierarchies of these controllers, e.g. cpu,memory")
    sp.add_argument("--procs", type=int, default=6,
                    help="processes shown per group (-1: all; default 6)")

    sp = sub.add_parser("create", help="make groups (cgcreate)")
    group_flag(sp)

    sp = sub.add_parser("set", help="write cgroup files (cgset)")
    sp.add_argument("-r", dest="pairs", action="append", type=_pair, required=True,
                    metavar="KEY=VALUE", help="file and value, e.g. cpu.shares=512; repeatable")
    group_flag(sp, required=False)
    sp.add_argument("path", nargs="?", help="the group (instead of -g; every hierarchy)")

    sp = sub.add_parser("get", help="read cgroup files (cgget)")
    sp.add_argument("-r", dest="keys", action="append", default=[], metavar="KEY",
                    help="a file, e.g. memory.limit_in_bytes; repeatable (none: all files of"
                         " the named controllers)")
    group_flag(sp, required=False)
    sp.add_argument("path", nargs="?", help="the group (instead of -g; every hierarchy)")

    sp = sub.add_parser("exec", help="run a command in groups (cgexec)")
    group_flag(sp)
    sp.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")

    sp = sub.add_parser("classify", help="move processes into groups (cgclassify)")
    group_flag(sp)
    sp.add_argument("pids", nargs="+", type=int, metavar="PID")

    sp = sub.add_parser("delete", help="remove groups; their processes go to the parent"
                                       " (cgdelete)")
    group_flag(sp)
    sp.add_argument("-r", "--recursive", action="store_true", help="also the groups below")

    sp = sub.add_parser("load", help="build the groups of a libcgroup cgconfig.conf")
    sp.add_argument("file", help="the cgconfig.conf ('-': stdin)")
    sp.add_argument("--check", action="store_true", help="check and show the plan; make nothing")

    sp = sub.add_parser("stats", help="what a group uses and its limits, as beancounters")
    sp.add_argument("path", nargs="?", default="", help="a group below our own cgroup")
    sp.add_argument("--json", action="store_true",
                    help="runc's stats JSON (as `hutch-runtime events --stats`)")
    return p


def _targets(host, args):  # type: ignore[no-untyped-def]
    from hutch.cgroups import tool
    if args.groups:
        if getattr(args, "path", None):
            raise InvalidArgument("give the group with -g or as PATH, not both")
        return tool.targets(host, args.groups)
    if getattr(args, "path", None) is None:
        raise InvalidArgument("name a group with -g CONTROLLERS:PATH or PATH")
    return tool.targets(host, [f"*:{args.path}"])


def run(args: argparse.Namespace) -> int:
    from hutch.cgroups import tool

    host = tool.Host.current()
    out: list[str] = []
    if args.verb == "tree":
        only = [c for c in args.controllers.split(",") if c] or None
        sys.stdout.write(tool.tree(host, args.path, only, args.procs))
        return 0
    if args.verb == "create":
        out = tool.create(host, tool.targets(host, args.groups))
    elif args.verb == "set":
        out = tool.set_values(host, _targets(host, args), args.pairs)
    elif args.verb == "get":
        tgts = _targets(host, args)
        if not args.keys and not args.groups:
            raise InvalidArgument("get PATH needs -r KEY; to list every file, name the"
                                  " controllers with -g CONTROLLERS:PATH")
        out = tool.get_values(host, tgts, args.keys)
    elif args.verb == "classify":
        out = tool.classify(host, tool.targets(host, args.groups), args.pids)
    elif args.verb == "delete":
        out = tool.delete(host, tool.targets(host, args.groups), args.recursive)
    elif args.verb == "load":
        if args.file == "-":
            text, name = sys.stdin.read(), "<stdin>"
        else:
            try:
                with open(args.file) as f:
                    text = f.read()
            except OSError as e:
                raise InvalidArgument(f"cannot read {args.file}: {e.strerror}") from None
            name = args.file
        out = tool.load(host, text, name, check_only=args.check)
    elif args.verb == "stats":
        from hutch.cgroups import accounting, stats
        manager = tool.manager_for(host, args.path)
        if args.json:
            print(json.dumps(stats.of(manager), indent=2))
            return 0
        out = [accounting.format_beancounters([(tool.show(tool.check_rel(args.path)),
                                                accounting.rows(manager))]).rstrip("\n")]
    elif args.verb == "exec":
        command = list(args.command)
        if command and command[0] == "--":
            command = command[1:]
        if not command:
            raise InvalidArgument("exec: give the command after the groups: -g ... -- CMD")
        for line in tool.join_for_exec(host, tool.targets(host, args.groups)):
            print(f"hutch cgroup: {line}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execvp(command[0], command)
        except OSError as e:
            print(f"hutch cgroup: exec {command[0]}: {e.strerror}", file=sys.stderr)
            return 127
    for line in out:
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.verb:
        parser.print_help()
        return 1
    try:
        return run(args)
    except HutchError as e:
        msg = str(e)
        for note in getattr(e, "__notes__", []):
            msg += f"\n  {note}"
        print(f"hutch cgroup {args.verb}: {msg}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        print(f"hutch cgroup {args.verb}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
