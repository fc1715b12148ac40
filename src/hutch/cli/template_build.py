"""``hutch template build NAME [-- OPTIONS]``: make a template's image now.

An OS container's template image is made the first time a container needs it
(``hutch create -t debian``); building it ahead (CI's install step, a machine
being set up) moves the wait there: the debian template's debootstrap fills the
machine's cache (/var/cache/hutch/templates) and the image goes into the
instance's store. ``-- --help`` lists the template's options.
"""

from __future__ import annotations

import sys

from hutch.errors import HutchError

USAGE = "usage: hutch [--root DIR] template build NAME [-- OPTIONS]   (-- --help: its options)"


def main(root: str | None, rest: list[str]) -> int:
    """``rest``: the words after ``template`` (``build NAME [-- OPTIONS]``)."""
    words = rest[1:]
    options: list[str] = []
    if "--" in words:
        at = words.index("--")
        words, options = words[:at], words[at + 1:]
    if len(words) != 1 or words[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 1
    name = words[0]
    from hutch.engine import templates
    try:
        if options in (["--help"], ["-h"]):
            print(templates.option_parser(name).format_help(), end="")
            return 0
        from hutch.engine import Engine
        engine = Engine(root)
        try:
            t = templates.get(name)
            image = templates.image_for(t, templates.parse_options(name, options),
                                        engine.images)
        finally:
            engine.close()
    except HutchError as e:
        print(f"hutch: {e}", file=sys.stderr)
        return 125
    print(image)
    return 0
