"""A small command-line parser for hutch-runtime, in runc's style.

argparse costs about ten milliseconds to import and build on every call, which
is a third of what a whole container start should take; this parser knows just
what runc's command line needs: global flags before the verb, per-verb flags
(``-x V``, ``--xx V``, ``--xx=V``, repeatable ones), positional arguments, and
verbs whose trailing arguments are passed through untouched (exec, ps).
"""

from __future__ import annotations

from hutch.errors import InvalidArgument


class Flag:
    __slots__ = ("names", "dest", "value", "repeat", "default", "help")

    def __init__(self, names: str, dest: str = "", value: bool = False, repeat: bool = False,
                 default: object = None, help: str = "") -> None:
        self.names = names.split(",")
        self.dest = dest or self.names[-1].lstrip("-").replace("-", "_")
        self.value = value or repeat
        self.repeat = repeat
        self.default = [] if repeat else (default if value else bool(default))
        self.help = help


class Verb:
    """One command: its flags, its positional names, and whether the rest passes through."""

    def __init__(self, name: str, help: str, flags: list[Flag], positional: list[str],
                 rest: str | None = None, optional: int = 0) -> None:
        self.name = name
        self.help = help
        self.flags = flags
        self.positional = positional
        self.rest = rest  # dest for trailing arguments, kept verbatim
        self.optional = optional  # how many trailing positionals may be left out


class Namespace:
    """Parsed arguments: attributes, like argparse's."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def _defaults(flags: list[Flag]) -> dict[str, object]:
    return {f.dest: (list(f.default) if f.repeat else f.default) for f in flags}


def _take_flag(flags: list[Flag], args: list[str], i: int, out: dict[str, object],
               where: str) -> int:
    """Consume the flag at args[i] (and its value); returns the next index."""
    arg = args[i]
    name, eq, inline = arg.partition("=")
    for f in flags:
        if name in f.names:
            if not f.value:
                if eq:
                    out[f.dest] = inline.lower() not in ("false", "0", "")
                else:
                    out[f.dest] = True
                return i + 1
            if eq:
                value = inline
            elif i + 1 < len(args):
                value = args[i + 1]
                i += 1
            else:
                raise InvalidArgument(f"{where}: flag {name} needs a value")
            if f.repeat:
                out[f.dest].append(value)  # type: ignore[union-attr]
            else:
                out[f.dest] = value
            return i + 1
    raise InvalidArgument(f"{where}: unknown flag {name} (see --help)")


def parse(global_flags: list[Flag], verbs: dict[str, Verb], argv: list[str]) -> Namespace:
    out = _defaults(global_flags)
    out["verb"] = None
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        if argv[i] in ("-h", "--help"):
            out["help"] = True
            i += 1
            continue
        i = _take_flag(global_flags, argv, i, out, "hutch-runtime")
    if i == len(argv):
        return Namespace(**out)
    name = argv[i]
    verb = verbs.get(name)
    if verb is None:
        raise InvalidArgument(f"unknown command {name!r} (see --help)")
    out["verb"] = name
    out.update(_defaults(verb.flags))
    positional: list[str] = []
    i += 1
    while i < len(argv):
        arg = argv[i]
        if verb.rest and len(positional) == len(verb.positional):
            rest = argv[i:]
            out[verb.rest] = rest[1:] if rest and rest[0] == "--" else rest
            break
        if arg == "--":
            remaining = argv[i + 1:]
            room = max(len(verb.positional) - len(positional), 0)
            positional.extend(remaining[:room])
            if verb.rest:
                out[verb.rest] = remaining[room:]
            else:
                positional.extend(remaining[room:])
            break
        if arg in ("-h", "--help"):
            out["help"] = True
            i += 1
        elif arg.startswith("-") and arg != "-":
            i = _take_flag(verb.flags, argv, i, out, name)
        else:
            positional.append(arg)
            i += 1
    if verb.rest:
        out.setdefault(verb.rest, [])
    if not out.get("help"):
        need = len(verb.positional) - verb.optional
        if len(positional) < need:
            missing = verb.positional[len(positional)]
            raise InvalidArgument(f"{name}: missing argument: {missing}")
        if len(positional) > len(verb.positional):
            raise InvalidArgument(f"{name}: unexpected argument {positional[len(verb.positional)]!r}")
    for dest, value in zip(verb.positional, positional):
        out[dest] = value
    for dest in verb.positional[len(positional):]:
        out.setdefault(dest, None)
    return Namespace(**out)


def usage(prog: str, global_flags: list[Flag], verbs: dict[str, Verb], verb: str | None) -> str:
    if verb and verb in verbs:
        v = verbs[verb]
        pos = " ".join(f"<{p}>" for p in v.positional) + (f" [{v.rest}...]" if v.rest else "")
        lines = [f"usage: {prog} {v.name} [flags] {pos}", "", v.help, ""]
        lines += [f"  {', '.join(f.names):28} {f.help}" for f in v.flags]
        return "\n".join(lines)
    lines = [f"usage: {prog} [global flags] <command> [flags] <args>", "", "commands:"]
    lines += [f"  {v.name:10} {v.help}" for v in verbs.values()]
    lines += ["", "global flags:"]
    lines += [f"  {', '.join(f.names):28} {f.help}" for f in global_flags]
    return "\n".join(lines)
