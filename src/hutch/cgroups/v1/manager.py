"""The cgroup v1 manager: the container has one directory in every mounted hierarchy.

``paths`` maps each controller ("cpu", "memory", ..., named hierarchies as
"name=systemd") to its directory; co-mounted controllers share one. On a hybrid
host the cgroup2 hierarchy (which only tracks processes there) is joined too,
under the key "unified", as runc does.
"""

from __future__ import annotations

import os

from hutch.cgroups import files, kill
from hutch.cgroups.mode import UNIFIED, Hierarchy
from hutch.cgroups.path import place
from hutch.cgroups.tree import make_dirs, remove_dirs, undo_dirs, walk_pids
from hutch.cgroups.v1 import cpuset, freezer
from hutch.errors import NotFound, Unsupported


def _primary_key(paths: dict[str, str]) -> str:
    """The hierarchy that stands for the container: freezer (pause, status, kill)."""
    for key in ("freezer", UNIFIED):
        if key in paths:
            return key
    return next(iter(paths))


class V1Manager:
    """One cgroup, spread over the v1 hierarchies."""

    version = 1
    freeze_timeout = 10.0

    def __init__(self, paths: dict[str, str], path: str) -> None:
        if not paths:
            raise Unsupported("no cgroup v1 hierarchy is mounted where hutch can see it")
        self.paths = dict(paths)
        self.path = path

    @classmethod
    def for_hierarchies(cls, normalized: str, hierarchies: list[Hierarchy]) -> V1Manager:
        """Place ``normalized`` (see path.normalize) in each hierarchy."""
        paths: dict[str, str] = {}
        cgroup_paths: dict[str, str] = {}
        for h in hierarchies:
            if normalized.startswith("/"):
                cg = normalized if h.root == "/" else h.root.rstrip("/") + normalized
            else:
                cg = place(normalized, h.own)
            directory = h.dir_of(cg)
            for key in h.keys:
                paths[key] = directory
                cgroup_paths[key] = cg
        if not paths:
            raise Unsupported("no cgroup v1 hierarchy is mounted where hutch can see it")
        return cls(paths, cgroup_paths[_primary_key(paths)])

    def _dirs(self) -> list[str]:
        return list(dict.fromkeys(self.paths.values()))

    @property
    def _primary(self) -> str:
        return self.paths[_primary_key(self.paths)]

    def create(self) -> None:
        created: list[str] = []
        try:
            for directory in self._dirs():
                made = make_dirs(directory)
                created += made
                if directory == self.paths.get("cpuset"):
                    for d in made:
                        cpuset.inherit(d)
                    if directory not in made:
                        cpuset.inherit(directory)  # an earlier create may have stopped half-way
        except BaseException as e:
            undo_dirs(created, e)
            raise

    def add_pid(self, pid: int) -> None:
        for directory in self._dirs():
            files.write(os.path.join(directory, "cgroup.procs"), str(pid))

    def _freezer_dir(self, verb: str) -> str:
        try:
            return self.paths["freezer"]
        except KeyError:
            raise Unsupported(f"cannot {verb}: the cgroup v1 freezer controller is not"
                              " mounted on this host") from None

    def freeze(self) -> None:
        freezer.freeze(self._freezer_dir("freeze"), self.freeze_timeout)

    def thaw(self) -> None:
        freezer.thaw(self._freezer_dir("thaw"), self.freeze_timeout)

    def is_frozen(self) -> bool:
        directory = self.paths.get("freezer")
        return directory is not None and freezer.state(directory) == "FROZEN"

    def pids(self, recursive: bool = True) -> list[int]:
        return walk_pids(self._primary, recursive)

    def kill_all(self, sig: int) -> None:
        can_freeze = "freezer" in self.paths and os.path.isdir(self.paths["freezer"])
        kill.signal_all(sig, self.pids,
                        (self.is_frozen, self.freeze, self.thaw) if can_freeze else None,
                        self._primary)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs())

    def remove(self, timeout: float = 5.0) -> None:
        remove_dirs(self._dirs(), timeout)

    def apply(self, resources: dict) -> None:
        """Set ``linux.resources`` (the OCI object); what it does not name stays as it is.

        Everything is checked (input, host, current values) before the first write, and a
        write the kernel still refuses undoes the earlier ones. Idempotent.
        """
        self._set(resources, updating=False)

    def update(self, resources: dict) -> None:
        """``apply()`` on a live cgroup; also honours memory.checkBeforeUpdate."""
        self._set(resources, updating=True)

    def _set(self, resources: dict, updating: bool) -> None:
        from hutch.cgroups import convert
        from hutch.cgroups.v1 import resources as v1_resources

        res = convert.check(resources)
        if not res:
            return
        missing = [d for d in self._dirs() if not os.path.isdir(d)]
        if missing:
            raise NotFound(f"cannot {'update' if updating else 'apply'} resources: cgroup"
                           f" {' '.join(missing)} does not exist (create it first)")
        convert.run(v1_resources.plan(self.paths, res, updating))

    def stats(self) -> dict:
        """What the cgroup uses, in runc's stats shape (see stats.py)."""
        from hutch.cgroups import stats
        return stats.v1_stats(self.paths)

    def state(self) -> dict[str, object]:
        return {"version": 1, "path": self.path, "paths": dict(self.paths)}

    def __repr__(self) -> str:
        return f"V1Manager({self.path!r}, {len(self._dirs())} hierarchies)"
