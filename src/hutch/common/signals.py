"""Signals as users name them: ``KILL``, ``SIGTERM``, ``9``, ``SIGRTMIN+3`` (systemd's halt)."""

from __future__ import annotations

import signal

from hutch.errors import InvalidArgument


def signal_number(sig: str | int) -> int:
    """The number of a signal given by number or name (with or without ``SIG``)."""
    if isinstance(sig, int) or str(sig).isdigit():
        return int(sig)
    name = str(sig).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    for base, sign in (("SIGRTMIN", 1), ("SIGRTMAX", -1)):
        if name.startswith(base) and name[len(base):].lstrip("+-").isdigit():
            offset = int(name[len(base):] or 0)
            number = int(getattr(signal, base)) + offset
            if sign * offset >= 0 and signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return number
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"unknown signal {sig!r}") from None
