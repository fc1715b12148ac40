"""User namespace id maps, written by the parent for its child."""

from __future__ import annotations

import os

from hutch.errors import InvalidArgument, SystemFailure


def _map_text(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def _needs_helper(mappings: list[dict], own_id: int) -> bool:
    """An unprivileged writer may map only its own id, once, with size 1."""
    if os.geteuid() == 0:
        return False
    return not (len(mappings) == 1 and mappings[0]["hostID"] == own_id
                and mappings[0]["size"] == 1)


def write_id_maps(pid: int, uid_mappings: list[dict], gid_mappings: list[dict]) -> bool:
    """Write the maps of ``pid``. Returns whether setgroups stays allowed inside."""
    setgroups_allowed = True
    if _needs_helper(gid_mappings, os.getegid()):
        _run_helper("newgidmap", pid, gid_mappings)
    else:
        if os.geteuid() != 0:
            # The kernel requires "deny" before an unprivileged gid_map write.
            _write(f"/proc/{pid}/setgroups", "deny")
            setgroups_allowed = False
        _write(f"/proc/{pid}/gid_map", _map_text(gid_mappings))
    if _needs_helper(uid_mappings, os.geteuid()):
        _run_helper("newuidmap", pid, uid_mappings)
    else:
        _write(f"/proc/{pid}/uid_map", _map_text(uid_mappings))
    return setgroups_allowed


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise SystemFailure(e.errno or 0, f"write {text.strip()!r} to {path}: {e.strerror}; "
                            "check the mappings against /etc/subuid and /etc/subgid") from None


def _run_helper(name: str, pid: int, mappings: list[dict]) -> None:
    import shutil
    import subprocess

    tool = shutil.which(name)
    if tool is None:
        raise InvalidArgument(f"mapping more than your own id needs {name} "
                              "(Debian package uidmap)")
    argv = [tool, str(pid)]
    for m in mappings:
        argv += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemFailure(0, f"{name} {' '.join(argv[1:])}: {r.stderr.strip()}")
