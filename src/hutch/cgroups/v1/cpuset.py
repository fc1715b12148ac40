"""The v1 cpuset controller.

A new v1 cpuset cgroup starts with empty cpuset.cpus and cpuset.mems, and the
kernel refuses to move a task into it (ENOSPC) until both are set. So every level
we create copies them from its parent, as runc does. ``plan()`` sets them from
linux.resources.cpu.cpus/mems.
"""

from __future__ import annotations

import os

from hutch.cgroups import files


def _file(directory: str, name: str) -> str:
    """cpuset.<name>, or plain <name> on a hierarchy mounted with noprefix."""
    prefixed = os.path.join(directory, f"cpuset.{name}")
    if os.path.exists(prefixed):
        return prefixed
    return os.path.join(directory, name)


def inherit(directory: str) -> None:
    """Copy cpus and mems from the parent where they are still empty.

    An empty parent (a level someone else made, or one left half-done) is
    filled first from its own parent, up to the first level that has values.
    """
    parent = os.path.dirname(directory)
    for name in ("cpus", "mems"):
        mine = _file(directory, name)
        if files.read(mine).strip():
            continue
        theirs = _file(parent, name)
        value = files.read(theirs).strip() if os.path.exists(theirs) else ""
        if not value and os.path.exists(theirs) and parent != directory:
            inherit(parent)
            value = files.read(theirs).strip()
        if value:  # else even the top is empty; joining will fail with ENOSPC
            files.write(mine, value)


HOST_FILES = {"cpus": "/sys/devices/system/cpu/online", "mems": "/sys/devices/system/node/online"}
_WHAT = {"cpus": "cpu", "mems": "memory node"}


def host_set(key: str) -> tuple[str, frozenset[int]]:
    """The host's online cpus or memory nodes (no node file: one node, 0)."""
    from hutch.cgroups.convert import parse_list

    text = files.read_optional(HOST_FILES[key])
    text = (text or "0").strip()
    return text, parse_list(text, HOST_FILES[key])


def check_available(key: str, value: tuple[str, frozenset[int]], parent_file: str,
                    parent: str) -> None:
    """Refuse cpus/mems the host lacks, or that the parent cgroup does not offer."""
    from hutch.cgroups.convert import check_subset, parse_list

    where = f"linux.resources.cpu.{key}"
    text, wanted = value
    host_text, host = host_set(key)
    check_subset(wanted, text, host, host_text, where, _WHAT[key], "this host")
    p_text = (files.read_optional(parent_file) or "").strip()
    if p_text:
        check_subset(wanted, text, parse_list(p_text, parent_file), p_text, where, _WHAT[key],
                     f"the parent cgroup {parent}")


def plan(directory: str, cpu: dict) -> list:
    """cpus and mems: checked against the host and the parent's effective set first."""
    from hutch.cgroups.convert import Write, format_list  # not at import: the runtime starts here

    steps: list = []
    parent = os.path.dirname(directory)
    for key in ("cpus", "mems"):
        if key not in cpu:
            continue
        effective = os.path.join(parent, f"cpuset.effective_{key}")
        if not os.path.exists(effective):
            effective = _file(parent, key)
        check_available(key, cpu[key], effective, parent)
        path = _file(directory, key)
        steps.append(Write(path, format_list(cpu[key][1]), files.read_optional(path)))
    return steps
