"""A created container, loaded from its state directory: status and lifecycle verbs.

Status is derived from the kernel on every call, never read back from a file:
the init's pid and start time say whether it runs, the exec fifo whether it was
started, the freezer whether it is paused.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from hutch import OCI_VERSION
from hutch.cgroups import load_manager
from hutch.errors import WrongState
from hutch.linux import procfs
from hutch.oci.state import state_document
from hutch.runtime.hooks import run_hooks
from hutch.runtime.statedir import StateDir, list_ids

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


def remove_default_parent(cgroup_state: dict) -> None:
    """Remove the shared default parent ("hutch") of a container's cgroup, in each
    hierarchy, once no container uses it (``cgroup_state``: the manager's state())."""
    for path in (cgroup_state.get("paths") or {}).values():
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass  # another container is still in it, or it is gone already


class Container:
    def __init__(self, root: str, container_id: str) -> None:
        self.dir = StateDir(root, container_id)
        self.record = self.dir.load()
        self.id = container_id
        self._cgroup = None

    @property
    def pid(self) -> int:
        return int(self.record.get("pid") or 0)

    @property
    def spec(self) -> dict:
        return self.record.get("spec") or {}

    @property
    def cgroup(self):  # type: ignore[no-untyped-def]
        saved = self.record.get("cgroup")
        if self._cgroup is None and saved and saved.get("version") != 0:
            # version 0: a rootless container that runs without a cgroup (see launcher)
            self._cgroup = load_manager(saved)
        return self._cgroup

    def status(self) -> str:
        rec = self.record
        if rec.get("creating"):
            creator = rec.get("creator")
            if creator and procfs.is_alive(creator, rec.get("creator_start")):
                return CREATING
            return STOPPED
        if not procfs.is_alive(self.pid, rec.get("start_time")):
            return STOPPED
        if os.path.exists(self.dir.fifo):
            return CREATED
        cg = self.cgroup
        if cg is not None and cg.is_frozen():
            return PAUSED
        return RUNNING

    def state(self) -> dict:
        status = self.status()
        rec = self.record
        return state_document(self.id, status, self.pid, rec.get("bundle", ""),
                              rec.get("annotations") or {}, created=rec.get("created"),
                              rootfs=rec.get("rootfs", ""), owner=rec.get("owner", ""),
                              version=self.spec.get("ociVersion") or OCI_VERSION)

    # -- verbs -------------------------------------------------------------------------

    def start(self) -> None:
        status = self.status()
        if status != CREATED:
            raise WrongState(f"cannot start a container that is {status}: {self.id}"
                             + (" (only a created container can be started)"
                                if status != STOPPED else ""))
        try:
            fd = os.open(self.dir.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise WrongState(f"container {self.id} was started already") from None
        try:
            # The init holds the write end open (blocked in open() until now) and
            # writes one byte; wait for it, or for the init to die.
            # Then it keeps the write end open until its execve: EOF means the
            # container's program runs (or the init died trying).
            import select
            got = b""
            while True:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    data = os.read(fd, 64)
                    if not data and got:
                        break
                    got += data
                elif not procfs.is_alive(self.pid, self.record.get("start_time")):
                    if got:
                        break
                    raise WrongState(f"container {self.id} init exited before start")
        finally:
            os.close(fd)
            try:
                os.unlink(self.dir.fifo)
            except FileNotFoundError:
                pass
        run_hooks(self.spec.get("hooks"), "poststart", self.state())

    def kill(self, sig: int, all_processes: bool = False) -> None:
        status = self.status()
        if status not in (CREATED, RUNNING, PAUSED):
            raise WrongState(f"container {self.id} is not running ({status})")
        if all_processes and self.cgroup is not None:
            self.cgroup.kill_all(sig)
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        status = self.status()
        if status != RUNNING:
            raise WrongState(f"container {self.id} is not running ({status}), cannot pause it")
        self._require_cgroup("pause").freeze()

    def resume(self) -> None:
        status = self.status()
        if status != PAUSED:
            raise WrongState(f"container {self.id} is not paused ({status}), cannot resume it")
        self._require_cgroup("resume").thaw()

    def _require_cgroup(self, verb: str):  # type: ignore[no-untyped-def]
        if self.cgroup is None:
            raise WrongState(f"cannot {verb} container {self.id}: it has no cgroup")
        return self.cgroup

    def update(self, resources: dict) -> None:
        """Change the limits of a live container; the saved spec follows."""
        status = self.status()
        if status not in (CREATED, RUNNING, PAUSED):
            raise WrongState(f"cannot update container {self.id}: it is {status}")
        self._require_cgroup("update").update(resources)
        spec = self.record.get("spec") or {}
        current = spec.setdefault("linux", {}).setdefault("resources", {})
        for key, value in resources.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key].update(value)
            else:
                current[key] = value
        self.dir.save(self.record)

    def pids(self) -> list[int]:
        if self.cgroup is None:
            return [self.pid] if self.status() != STOPPED else []
        return sorted(self.cgroup.pids())

    def delete(self, force: bool = False) -> None:
        status = self.status()
        if status in (RUNNING, PAUSED, CREATING) and not force:
            raise WrongState(f"cannot delete container {self.id} that is not stopped: {status}"
                             " (use --force)")
        if status != STOPPED:
            self._kill_everything()
        if self.cgroup is not None:
            self.cgroup.remove()
            if self.record.get("cgroup_default"):
                remove_default_parent(self.record["cgroup"])
        spec = self.spec
        if spec.get("hooks") and not self.record.get("creating"):
            state = self.state()
            state["status"] = STOPPED
            run_hooks(spec.get("hooks"), "poststop", state)
        self.dir.remove()

    def _kill_everything(self, timeout: float = 10.0) -> None:
        cg = self.cgroup
        if cg is not None and cg.exists():
            if cg.is_frozen():
                cg.thaw()
            cg.kill_all(signal.SIGKILL)
        elif self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while procfs.is_alive(self.pid, self.record.get("start_time")):
            if time.monotonic() > deadline:
                raise WrongState(f"container {self.id}: init {self.pid} did not die on SIGKILL")
            time.sleep(0.005)


def list_containers(root: str) -> list[Container]:
    out = []
    for cid in list_ids(root):
        try:
            out.append(Container(root, cid))
        except (OSError, ValueError) as e:
            if getattr(e, "errno", None) not in (errno.ENOENT, None):
                raise
    return out
