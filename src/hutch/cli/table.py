"""Columns for the terminal, as docker and lxc print them."""

from __future__ import annotations

from collections.abc import Sequence


def print_table(rows: Sequence[Sequence[str]], sep: str = "   ") -> None:
    """``rows[0]`` is the header; each column as wide as its widest cell."""
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(sep.join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
