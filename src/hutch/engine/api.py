"""The engine's Python API: create, start, run, stop, kill, rm, ps, logs, inspect, wait."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import time

from hutch.engine import builtin
from hutch.engine.db import Database
from hutch.engine.paths import Layout
from hutch.engine.spec import RunOptions, build
from hutch.errors import HutchError, InvalidArgument, NotFound, WrongState

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def _policy(text: str) -> dict:
    name, _, count = text.partition(":")
    if name not in RESTART_POLICIES or (count and (name != "on-failure" or not count.isdigit())):
        raise InvalidArgument(f"--restart {text}: one of no, on-failure[:N], always, "
                              "unless-stopped")
    return {"policy": name, "max_retries": int(count or 0)}


class Engine:
    def __init__(self, root: str | None = None, driver: str | None = None) -> None:
        self.layout = Layout(root)
        self.layout.ensure()
        self.db = Database(self.layout.db)
        self._driver = driver or os.environ.get("HUTCH_STORAGE_DRIVER") or "overlay"
        self._snapshotter = None

    @property
    def snapshotter(self):  # type: ignore[no-untyped-def]
        if self._snapshotter is None:
            from hutch.storage import drivers
            self._snapshotter = drivers.load(self._driver, os.path.join(self.layout.storage,
                                                                       self._driver))
        return self._snapshotter

    # -- create / start -------------------------------------------------------------------

    def create(self, opts: RunOptions) -> dict:
        """Make the container (snapshot, bundle, record); it does not run yet."""
        image = builtin.normalize(opts.image)
        restart = _policy(opts.restart)
        if opts.remove and restart["policy"] != "no":
            raise InvalidArgument("--rm cannot be combined with a --restart policy")
        cid = secrets.token_hex(32)
        name = opts.name or f"hutch_{cid[:10]}"
        if not _NAME.match(name):
            raise InvalidArgument(f"--name {name!r}: use letters, digits, '_', '.' and '-', "
                                  "starting with a letter or digit")
        if opts.userns not in ("auto", "host"):
            raise InvalidArgument(f"--userns {opts.userns}: use auto (the default) or host")
        if opts.network.startswith("container:") and not opts.network.startswith("container:/"):
            opts.network = "container:" + self._netns_of(opts.network.split(":", 1)[1])
        parent = builtin.ensure(self.snapshotter, image,
                                os.path.join(self.layout.root, "images.lock"))
        config = {**opts.to_dict(), "restart": restart, "image": image}
        self.db.add_container(cid, name, image, config, f"container/{cid}")
        bundle = self.layout.container_dir(cid)
        try:
            id_base = self.db.allocate_idmap(cid) if opts.userns == "auto" else None
            spec = build(opts, builtin.IMAGE_CONFIG[image], cid, id_base)
            mounts = self.snapshotter.prepare(f"container/{cid}", parent)
            os.makedirs(os.path.join(bundle, "rootfs"), mode=0o711)
            self._mount_root(mounts, os.path.join(bundle, "rootfs"), id_base)
            if opts.template:
                from hutch.engine import templates
                templates.install(templates.get(opts.template), os.path.join(bundle, "rootfs"),
                                  spec["hostname"])
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(spec, f, indent=1)
        except BaseException as e:
            self._teardown(cid, e)
            raise
        return {"id": cid, "name": name}

    def _netns_of(self, ref: str) -> str:
        """The network namespace path of a running container (for --network container:)."""
        row = self.db.find(ref)
        if self.status(row["id"]) != "running":
            raise WrongState(f"--network container:{ref}: that container is not running")
        pid = self.shim(row["id"]).status().get("pid") or 0
        if not pid:
            raise WrongState(f"--network container:{ref}: its process is not known")
        return f"/proc/{pid}/ns/net"

    @staticmethod
    def _mount_root(mounts: list, target: str, id_base: int | None) -> None:
        """The snapshot at ``target``; idmapped into the container's range when it has one."""
        if id_base is None:
            from hutch.storage.mount import mount_all
            mount_all(mounts, target)
            return
        from hutch.linux.idmap import userns_with
        from hutch.storage.idmapped import mount_idmapped
        fd = userns_with(id_base)
        try:
            mount_idmapped(mounts, target, fd, id_base)
        finally:
            os.close(fd)

    def create_os(self, template: str, name: str, autostart: bool = False) -> dict:
        """An OS container (LXC style): the template's image booting its own init."""
        from hutch.engine import templates
        t = templates.get(template)
        return self.create(RunOptions(image=t["image"], command=list(t["init"]), name=name,
                                      hostname=name, tty=True, interactive=True,
                                      stop_signal=t["stop_signal"], template=template,
                                      autostart=autostart))

    def freeze(self, ref: str, thaw: bool = False) -> None:
        from hutch.runtime.container import Container
        row = self.db.find(ref)
        c = Container(self.layout.runtime_root, row["id"])
        c.resume() if thaw else c.pause()

    def info(self, ref: str) -> dict:
        """inspect() plus the resource use of the container (OpenVZ's beancounters)."""
        from hutch.cgroups import accounting
        from hutch.runtime.container import Container
        data = self.inspect(ref)
        rows = []
        try:
            cg = Container(self.layout.runtime_root, data["Id"]).cgroup
            if cg is not None and cg.exists():
                rows = [{k: getattr(r, k) for k in r.__slots__} for r in accounting.rows(cg)]
        except NotFound:
            pass
        data["Resources"] = rows
        return data

    def start(self, ref: str, attach_first: bool = False) -> dict:
        from hutch.shim.client import spawn
        row = self.db.find(ref)
        cid = row["id"]
        status = self.status(cid)
        if status == "running":
            raise WrongState(f"container {row['name']} is already running")
        config = json.loads(row["config"])
        shim_dir = self.layout.shim_dir(cid)
        self._forget_runtime_leftovers(cid)
        info = spawn({
            "id": cid, "dir": shim_dir, "runtime_root": self.layout.runtime_root,
            "bundle": self.layout.container_dir(cid), "terminal": config.get("tty", False),
            "stdin": config.get("interactive", False), "restart": config["restart"],
            "stop_signal": _signal_number(config.get("stop_signal") or "SIGTERM"),
            "log": {"max_size": 10 << 20, "max_files": 3}, "start_on_attach": attach_first,
        })
        self.db.set_state(cid, "started")
        return info

    def _forget_runtime_leftovers(self, cid: str) -> None:
        """A container stopped by a crash may have left its runtime state: clear it."""
        from hutch.runtime.container import Container
        from hutch.runtime.statedir import StateDir
        if StateDir(self.layout.runtime_root, cid).exists():
            Container(self.layout.runtime_root, cid).delete(force=True)

    # -- status -----------------------------------------------------------------------

    def shim(self, cid: str):  # type: ignore[no-untyped-def]
        from hutch.shim.client import ShimClient
        return ShimClient(self.layout.shim_dir(cid))

    def status(self, cid: str) -> str:
        """created, running, restarting, exited: from the shim and the kernel, not a file."""
        shim = self.shim(cid)
        st = shim.status()
        state = st.get("state", "unknown")
        if state == "unknown":
            return "created"
        if state in ("running", "restarting") and not shim.alive():
            # The shim is gone (killed, or a reboot): ask the kernel through the runtime.
            return "running" if self._runtime_status(cid) in ("running", "paused") \
                else "exited"
        return "exited" if state == "failed" else state

    def _runtime_status(self, cid: str) -> str:
        from hutch.runtime.container import Container
        try:
            return Container(self.layout.runtime_root, cid).status()
        except NotFound:
            return "stopped"

    def inspect(self, ref: str) -> dict:
        row = self.db.find(ref)
        cid = row["id"]
        st = self.shim(cid).status()
        return {"Id": cid, "Name": row["name"], "Image": row["image"],
                "Created": row["created"], "Config": json.loads(row["config"]),
                "State": {"Status": self.status(cid), "Pid": st.get("pid", 0),
                          "ExitCode": st.get("exit_code"), "StartedAt": st.get("started_at"),
                          "FinishedAt": st.get("finished_at"),
                          "RestartCount": st.get("restart_count", 0)},
                "LogPath": os.path.join(self.layout.shim_dir(cid), "container.log"),
                "Privileged": False,
                "UsernsMode": "host" if self.db.idmap_of(cid) is None else "private",
                "IdMapBase": self.db.idmap_of(cid)}

    def ps(self, all_containers: bool = False) -> list[dict]:
        out = []
        for row in self.db.all():
            status = self.status(row["id"])
            if not all_containers and status not in ("running", "restarting"):
                continue
            config = json.loads(row["config"])
            st = self.shim(row["id"]).status()
            out.append({"id": row["id"], "name": row["name"], "image": row["image"],
                        "command": " ".join(config.get("command") or []) or "(image default)",
                        "created": row["created"], "status": status,
                        "exit_code": st.get("exit_code"), "pid": st.get("pid", 0)})
        return out

    # -- signals, stop, wait ----------------------------------------------------------

    def kill(self, ref: str, sig: str | int = "SIGKILL") -> None:
        row = self.db.find(ref)
        if self.status(row["id"]) != "running":
            raise WrongState(f"container {row['name']} is not running")
        self.shim(row["id"]).kill(_signal_number(sig), all_processes=False)

    def stop(self, ref: str, timeout: float = 10.0) -> None:
        row = self.db.find(ref)
        cid = row["id"]
        if self.status(cid) in ("running", "restarting"):
            self.shim(cid).stop(timeout)
        self.wait(cid, timeout + 10)

    def wait(self, ref: str, timeout: float | None = None) -> int:
        """Until the container has exited (its shim gone); returns the exit code."""
        row = self.db.find(ref)
        cid = row["id"]
        deadline = None if timeout is None else time.monotonic() + timeout
        shim = self.shim(cid)
        while shim.alive():
            if deadline is not None and time.monotonic() > deadline:
                raise WrongState(f"container {row['name']} did not stop within {timeout:g}s")
            time.sleep(0.005)
        code = shim.status().get("exit_code")
        return 137 if code is None else int(code)  # no shim recorded it: it was killed

    # -- remove -------------------------------------------------------------------------

    def rm(self, ref: str, force: bool = False) -> None:
        row = self.db.find(ref)
        cid = row["id"]
        if self.status(cid) in ("running", "restarting"):
            if not force:
                raise WrongState(f"container {row['name']} is running: stop it first or use "
                                 "rm -f")
            try:  # stop (so no restart policy brings it back) with no grace period
                self.shim(cid).stop(timeout=0)
            except NotFound:
                pass  # it ended on its own meanwhile, or its shim was killed
            self.wait(cid, 30)  # without a shim, _teardown's runtime delete kills it
        self._teardown(cid, None)

    def _teardown(self, cid: str, error: BaseException | None) -> None:
        """Undo everything a container has: runtime state, mounts, snapshot, dirs, record."""
        from hutch.storage.mount import unmount_all
        steps = [
            lambda: self._forget_runtime_leftovers(cid),
            lambda: unmount_all(os.path.join(self.layout.container_dir(cid), "rootfs")),
            lambda: self._remove_snapshot(cid),
            lambda: shutil.rmtree(self.layout.container_dir(cid), ignore_errors=False)
            if os.path.exists(self.layout.container_dir(cid)) else None,
            lambda: shutil.rmtree(self.layout.shim_dir(cid), ignore_errors=True),
            lambda: self.db.release_idmap(cid),
            lambda: self.db.remove_container(cid),
        ]
        first: BaseException | None = None
        for step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - go on, report with the first error
                if error is not None:
                    error.add_note(f"cleanup: {e}")
                elif first is None:
                    first = e
        if first is not None:
            raise HutchError(f"container {cid[:12]} removed with trouble: {first}")

    def _remove_snapshot(self, cid: str) -> None:
        try:
            self.snapshotter.remove(f"container/{cid}")
        except NotFound:
            pass

    def stats(self, ref: str) -> dict:
        """One sample of a running container's use: cgroup stats in runc's shape."""
        from hutch.cgroups import stats
        from hutch.runtime.container import Container
        row = self.db.find(ref)
        cg = Container(self.layout.runtime_root, row["id"]).cgroup
        if cg is None or not cg.exists():
            raise WrongState(f"container {row['name']} has no cgroup (is it running?)")
        return {"id": row["id"], "name": row["name"], "read": time.time(), **stats.of(cg)}

    def logs(self, ref: str) -> list[dict]:
        from hutch.shim.logs import read_entries
        row = self.db.find(ref)
        return read_entries(os.path.join(self.layout.shim_dir(row["id"]), "container.log"))

    def close(self) -> None:
        self.db.close()
        if self._snapshotter is not None:
            self._snapshotter.close()


def _signal_number(sig: str | int) -> int:
    if isinstance(sig, int) or str(sig).isdigit():
        return int(sig)
    name = str(sig).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"unknown signal {sig!r}") from None
