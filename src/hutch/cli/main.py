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
    print(f"hutch: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 1


if __name__ == "__main__":
    sys.exit(main())
