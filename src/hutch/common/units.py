"""Sizes as users write them: ``1048576``, ``512k``, ``10m``, ``1g`` (binary units, as runc
and Docker read them)."""

from __future__ import annotations

from hutch.errors import InvalidArgument

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, flag: str) -> int:
    """Bytes from "1048576", "512k", "10m", "1g" (a trailing "b" is allowed); "-1" is
    unlimited."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    t = t.removesuffix("b")
    unit = t[-1:] if t[-1:] in ("k", "m", "g", "t") else ""
    num = t[:len(t) - len(unit)]
    if not num.isdigit():
        raise InvalidArgument(f"{flag} {text}: expected bytes like 1048576, 512k, 10m or 1g")
    return int(num) * _SIZE_UNITS[unit]
