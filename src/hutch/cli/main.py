"""hutch: the user's command line.

Until the engine lands it offers ``hutch version`` and ``hutch runtime ...``
(the same as ``hutch-runtime ...``).
"""

from __future__ import annotations

import sys

from hutch import OCI_VERSION, __version__

USAGE = """usage: hutch <command> [args]

commands:
  version     print the version of hutch
  runtime     the OCI runtime (same as hutch-runtime); see `hutch runtime --help`
  run, create, start, ps, logs, stop, restart, kill, rm, inspect, wait, exec
              application containers, Docker style (`hutch run busybox echo hello`);
              global --root DIR (or HUTCH_ROOT) picks the instance's state directory;
              also top, stats, port; networks, volumes, --health-cmd ... on run/create
  create -t T -n NAME, ls, console [--tty N], attach, info, freeze, unfreeze, destroy,
  copy, snapshot, restore, autostart, set
              OS containers, LXC style
  volume      named volumes: create, ls, inspect, rm, prune
  image       images: ls, inspect, rm, tag, import, export, validate, sign, verify,
              keygen, prune, pull, push (`hutch images`, `hutch rmi` as Docker's)
  template    templates: `hutch template ls`, `hutch template build NAME`
  network     bridge networks: create, ls, inspect, rm, connect, disconnect, prune
  cgroup      work with cgroups directly (tree, create, set, get, exec, classify,
              delete, load, stats); see `hutch cgroup --help`
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 1
    if args[0] in ("version", "--version", "-v"):
        print(f"hutch version {__version__}\nOCI runtime spec {OCI_VERSION}")
        return 0
    if args[0] == "runtime":
        from hutch.cli.runtime import main as runtime_main
        return runtime_main(args[1:])
    if args[0] == "cgroup":
        from hutch.cli.cgroup import main as cgroup_main
        return cgroup_main(args[1:])
    verb = args[2] if args[0] == "--root" and len(args) > 2 else args[0]
    if verb.startswith("--root="):
        verb = args[1] if len(args) > 1 else ""
    if verb == "network":  # its own flags follow; a global --root goes before them
        from hutch.cli.network import main as network_main
        at = args.index("network")
        return network_main([*args[:at], *args[at + 1:]])
    if verb in ("image", "images", "rmi", "template"):  # a global --root may come before
        from hutch.cli import image as image_cli
        at = args.index(verb)
        alias = {"images": ["ls"], "rmi": ["rm"]}.get(verb, [])
        rest = [*args[:at], *alias, *args[at + 1:]]
        return image_cli.template_main(rest) if verb == "template" else image_cli.main(rest)
    from hutch.cli.engine import ENGINE_VERBS
    if verb in ENGINE_VERBS:
        from hutch.cli.engine import main as engine_main
        return engine_main(args)
    print(f"hutch: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 1


if __name__ == "__main__":
    sys.exit(main())
