"""The cgroup v2 manager: one directory in the unified hierarchy.

Controllers reach a cgroup only when every ancestor lists them in
cgroup.subtree_control, so ``create()`` enables the available ones from the
caller's cgroup (or the root, for absolute paths) down to the container's
parent. The kernel refuses domain controllers in a non-root cgroup that holds
processes (the no-internal-processes rule), and in threaded subtrees; those are
skipped, so the container simply gets fewer controllers.
"""

from __future__ import annotations

import errno
import os

from hutch.cgroups import files, kill
from hutch.cgroups.kill import SIGKILL
from hutch.cgroups.mode import UNIFIED, Hierarchy
from hutch.cgroups.path import place
from hutch.cgroups.tree import make_dirs, remove_dirs, undo_dirs, walk_pids
from hutch.cgroups.v2 import freezer
from hutch.errors import NotFound, SystemFailure, Unsupported


class V2Manager:
    """One cgroup in the unified hierarchy."""

    version = 2
    freeze_timeout = 10.0

    def __init__(self, directory: str, path: str, top: str | None = None) -> None:
        self.directory = directory
        self.path = path
        # Where create() starts enabling controllers; None: nowhere (a reloaded manager).
        self._top = top
        self.paths = {UNIFIED: directory}

    @classmethod
    def for_hierarchy(cls, normalized: str, h: Hierarchy) -> V2Manager:
        """Place ``normalized`` (see path.normalize) in the unified hierarchy ``h``."""
        if normalized.startswith("/"):
            cg = normalized if h.root == "/" else h.root.rstrip("/") + normalized
            top = h.dir_of(h.root)
        else:
            cg = place(normalized, h.own)
            top = h.dir_of(h.own)
        return cls(h.dir_of(cg), cg, top)

    def create(self) -> None:
        created = make_dirs(self.directory)
        try:
            if self._top is not None:
                for level in self._levels():
                    enable_controllers(level)
            kind = files.read_optional(os.path.join(self.directory, "cgroup.type"))
            if kind == "domain invalid":
                raise Unsupported(f"cgroup {self.directory} is 'domain invalid': it lies in a"
                                  " threaded subtree; choose a cgroupsPath outside it")
        except BaseException as e:
            undo_dirs(created, e)
            raise

    def _levels(self) -> list[str]:
        """The top directory and every directory between it and ours (ours excluded)."""
        assert self._top is not None
        top = self._top.rstrip("/")
        if not self.directory.startswith(top + "/"):
            return []
        parts = self.directory[len(top) + 1:].split("/")
        return [top] + [f"{top}/{'/'.join(parts[:i])}" for i in range(1, len(parts))]

    def add_pid(self, pid: int) -> None:
        files.write(os.path.join(self.directory, "cgroup.procs"), str(pid))

    def freeze(self) -> None:
        freezer.freeze(self.directory, self.freeze_timeout)

    def thaw(self) -> None:
        freezer.thaw(self.directory, self.freeze_timeout)

    def is_frozen(self) -> bool:
        return freezer.is_frozen(self.directory)

    def pids(self, recursive: bool = True) -> list[int]:
        return walk_pids(self.directory, recursive)

    def kill_all(self, sig: int) -> None:
        if sig == SIGKILL and os.path.exists(os.path.join(self.directory, "cgroup.kill")):
            try:
                # Linux 5.14+: kills the whole subtree at once; forks cannot escape it.
                files.write(os.path.join(self.directory, "cgroup.kill"), "1")
                return
            except SystemFailure as e:
                if e.errno != errno.EOPNOTSUPP:  # threaded cgroups cannot be killed this way
                    raise
        can_freeze = os.path.exists(os.path.join(self.directory, "cgroup.freeze"))
        kill.signal_all(sig, self.pids,
                        (self.is_frozen, self.freeze, self.thaw) if can_freeze else None,
                        self.directory)

    def exists(self) -> bool:
        return os.path.isdir(self.directory)

    def remove(self, timeout: float = 5.0) -> None:
        remove_dirs([self.directory], timeout)

    def apply(self, resources: dict) -> None:
        """Set ``linux.resources`` (the OCI object); what it does not name stays as it is.

        Everything is checked (input, controllers, current values) before the first
        write, and a write the kernel still refuses undoes the earlier ones. Device
        rules become a BPF program that replaces the previous one. Idempotent.
        """
        self._set(resources, updating=False)

    def update(self, resources: dict) -> None:
        """``apply()`` on a live cgroup; also honours memory.checkBeforeUpdate."""
        self._set(resources, updating=True)

    def _set(self, resources: dict, updating: bool) -> None:
        from hutch.cgroups import convert
        from hutch.cgroups.v2 import resources as v2_resources

        res = convert.check(resources)
        if not res:
            return
        if not os.path.isdir(self.directory):
            raise NotFound(f"cannot {'update' if updating else 'apply'} resources: cgroup"
                           f" {self.directory} does not exist (create it first)")
        convert.run(v2_resources.plan(self.directory, res, updating))

    def stats(self) -> dict:
        """What the cgroup uses, in runc's stats shape (see stats.py)."""
        from hutch.cgroups import stats
        return stats.v2_stats(self.directory)

    def state(self) -> dict[str, object]:
        return {"version": 2, "path": self.path, "paths": {UNIFIED: self.directory}}

    def __repr__(self) -> str:
        return f"V2Manager({self.path!r}, {self.directory!r})"


def enable_controllers(directory: str) -> None:
    """Enable in ``directory``'s subtree_control every controller it has, where allowed.

    Nothing is enabled in a non-root cgroup that holds processes: the kernel's
    "no internal processes" rule refuses domain controllers there, and enabling a
    threaded one (cpu, pids) would turn it "domain threaded" and every new child
    "domain invalid". Such a cgroup's children get no controllers; apply() then
    says which limit it cannot set.
    """
    is_root = not os.path.exists(os.path.join(directory, "cgroup.type"))
    if not is_root and files.read(os.path.join(directory, "cgroup.procs")).strip():
        return
    available = files.read(os.path.join(directory, "cgroup.controllers")).split()
    control = os.path.join(directory, "cgroup.subtree_control")
    enabled = set(files.read(control).split())
    missing = [c for c in available if c not in enabled]
    if not missing:
        return
    try:
        files.write(control, " ".join(f"+{c}" for c in missing))
    except SystemFailure:
        for c in missing:  # one by one, so one refusal does not cost the others
            try:
                files.write(control, f"+{c}")
            except SystemFailure:
                continue
