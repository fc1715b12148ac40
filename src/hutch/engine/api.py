"""The engine's Python API: create, start, run, stop, kill, rm, ps, logs, inspect, wait."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time

from hutch.common.signals import signal_number
from hutch.engine.db import Database
from hutch.engine.networking import ContainerNetworks, NetworkRequest
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
        self._images = None
        self.net = ContainerNetworks(self.layout, self._names_of)

    def _names_of(self, cid: str) -> list[str]:
        """The names a container answers to on its networks (DNS)."""
        try:
            row = self.db.find(cid)
        except NotFound:
            return []
        config = json.loads(row["config"])
        return [row["name"], *config.get("network_aliases", []), cid[:12]]

    @property
    def snapshotter(self):  # type: ignore[no-untyped-def]
        if self._snapshotter is None:
            from hutch.storage import drivers
            self._snapshotter = drivers.load(self._driver, os.path.join(self.layout.storage,
                                                                       self._driver))
        return self._snapshotter

    @property
    def images(self):  # type: ignore[no-untyped-def]
        """The image service (engine/images.py): names, the store, unpacking, policy."""
        if self._images is None:
            from hutch.engine.images import ImageService
            self._images = ImageService(self.layout, lambda: self.snapshotter)
        return self._images

    # -- create / start -------------------------------------------------------------------

    def create(self, opts: RunOptions, rootfs_from: str | None = None) -> dict:
        """Make the container (snapshot, bundle, record); it does not run yet.

        ``rootfs_from``: a committed snapshot to start from instead of the image
        (``hutch copy``; engine/clone.py), with no template files written again."""
        image = self.images.ensure(opts.image, "missing" if rootfs_from else opts.pull)
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
        if opts.privileged:
            opts.userns = "host"  # its root is the host's root: that is what it asks for
        if opts.network.startswith("container:") and not opts.network.startswith("container:/"):
            opts.network = "container:" + self._netns_of(opts.network.split(":", 1)[1])
        image_parent, image_config = self.images.container_root(image)
        parent = rootfs_from or image_parent
        opts.stop_signal = opts.stop_signal or image_config.get("StopSignal")
        netreq = self._network_request(opts, image_config)
        from hutch.engine.volumes import Volumes
        Volumes(self).check(opts)
        config = {**opts.to_dict(), "restart": restart, "image": image,
                  "netreq": netreq.__dict__}
        from hutch.engine import health
        config["health"] = health.resolve(config, image_config)
        self.db.add_container(cid, name, image, config, f"container/{cid}")
        bundle = self.layout.container_dir(cid)
        try:
            id_base = self.db.allocate_idmap(cid) if opts.userns == "auto" else None
            netns, userns, files = self._network_setup(cid, netreq, opts.hostname or cid[:12],
                                                       id_base)
            spec = build(Volumes(self).for_spec(opts), image_config, cid, id_base, netns=netns,
                         files=files, userns=userns)
            mounts = self.snapshotter.prepare(f"container/{cid}", parent)
            os.makedirs(os.path.join(bundle, "rootfs"), mode=0o711)
            self._mount_root(mounts, os.path.join(bundle, "rootfs"), id_base)
            if opts.template and not rootfs_from:
                from hutch.engine import templates
                templates.install(templates.get(opts.template), os.path.join(bundle, "rootfs"),
                                  spec["hostname"], owner=id_base)
            from hutch.engine.images import apply_image_config
            apply_image_config(spec, image_config, opts, bundle, id_base)
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(spec, f, indent=1)
        except BaseException as e:
            self._teardown(cid, e)
            raise
        return {"id": cid, "name": name}

    def _network_request(self, opts: RunOptions, image_config: dict) -> NetworkRequest:
        return NetworkRequest.parse(
            opts.network, publish=opts.publish, publish_all=opts.publish_all,
            exposed=[*(image_config.get("ExposedPorts") or {}), *opts.expose], ip=opts.ip,
            rate=opts.network_rate, aliases=opts.network_aliases)

    def _network_setup(self, cid: str, req: NetworkRequest, hostname: str,
                       id_base: int | None, again: bool = False
                       ) -> tuple[str | None, str | None, dict[str, str]]:
        """The container's network namespace (a path, or None for the runtime to make
        one or for the host's), the user namespace owning it (which the container joins)
        and the files to bind into it (/etc/hosts ...)."""
        netns = userns = None
        if req.mode == "networks":
            netns = (self.net.ensure if again else self.net.setup)(cid, req, id_base)
            if id_base is not None:  # the namespace's owner, which the container joins
                userns = self.net.userns_path(cid)
        elif req.mode == "host":
            return self.net.host_netns, None, {}
        directory = self.layout.container_dir(cid)
        os.makedirs(directory, mode=0o711, exist_ok=True)
        return netns, userns, self.net.write_files(cid, directory, hostname,
                                                   with_resolver=netns is not None,
                                                   owner=id_base)

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
        import errno

        from hutch.linux.idmap import userns_with
        from hutch.storage.idmapped import mount_idmapped
        from hutch.storage.mount import mount_all, unmount_all
        if os.environ.get("HUTCH_IDMAP", "auto") != "off":
            fd = userns_with(id_base)
            try:
                mount_idmapped(mounts, target, fd, id_base)
                return
            except OSError as e:  # the kernel or the file system cannot idmap this
                if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP):
                    raise
                unmount_all(target)
            finally:
                os.close(fd)
        # Shift the owners once instead (into the container's own layer).
        from hutch.storage.shift import shift_tree
        mount_all(mounts, target)
        shift_tree(target, id_base)

    def create_os(self, template: str, name: str, autostart: bool = False,
                  autostart_order: int = 0, autostart_delay: float = 0.0,
                  template_args: list[str] | None = None) -> dict:
        """An OS container (LXC style): the template's image booting its own init.
        ``template_args``: the template's options (the words after ``--``)."""
        from hutch.engine import templates
        t = templates.get(template)
        options = templates.parse_options(template, template_args or [])
        init, stop_signal = templates.boot(t, options)
        image = templates.image_for(t, options, self.images)
        return self.create(RunOptions(image=image, command=init, name=name,
                                      hostname=name, tty=True, interactive=True,
                                      stop_signal=stop_signal, template=template,
                                      autostart=autostart, autostart_order=autostart_order,
                                      autostart_delay=autostart_delay,
                                      ttys=int(t.get("ttys", 0))))

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
        if config.get("netreq", {}).get("mode") == "networks":
            # made again after a reboot; /etc/hosts and resolv.conf as the networks are now
            self._network_setup(cid, NetworkRequest(**config["netreq"]),
                                config.get("hostname") or cid[:12], self.db.idmap_of(cid),
                                again=True)
        info = spawn({
            "id": cid, "dir": shim_dir, "runtime_root": self.layout.runtime_root,
            "bundle": self.layout.container_dir(cid), "terminal": config.get("tty", False),
            "stdin": config.get("interactive", False), "restart": config["restart"],
            "stop_signal": signal_number(config.get("stop_signal") or "SIGTERM"),
            "log": {"max_size": 10 << 20, "max_files": 3}, "start_on_attach": attach_first,
            "halt_is_exit_0": bool(config.get("template")),  # an OS container's poweroff
            "health": config.get("health"),
            "ttys": config.get("ttys", 0), "tty_owner": self.db.idmap_of(cid) or 0,
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
                          "RestartCount": st.get("restart_count", 0),
                          **({"Health": st["health"]} if st.get("health") else {})},
                "NetworkSettings": self.network_settings(cid),
                "LogPath": os.path.join(self.layout.shim_dir(cid), "container.log"),
                "Privileged": bool(json.loads(row["config"]).get("privileged")),
                "UsernsMode": "host" if self.db.idmap_of(cid) is None else "private",
                "IdMapBase": self.db.idmap_of(cid)}

    def network_settings(self, cid: str) -> dict:
        """Docker's NetworkSettings: the container's networks, addresses and ports."""
        eps = self.net.endpoints(cid)
        networks, ports = {}, {}
        for ep in eps:
            gateway = str(self.net.manager.get(ep.network).gateway)
            networks[ep.network] = {"IPAddress": str(ep.address), "IPPrefixLen": ep.prefixlen,
                                    "Gateway": gateway, "MacAddress": ep.mac,
                                    "Interface": ep.ifname}
            for m in ep.ports:
                for host, ctr in m.pairs():
                    ports.setdefault(f"{ctr}/{m.proto}", []).append(
                        {"HostIp": str(m.host_ip or "0.0.0.0"), "HostPort": str(host)})
        return {"Networks": networks, "Ports": ports,
                "SandboxKey": self.net.netns_path(cid) if eps else "",
                "IPAddress": next((n["IPAddress"] for n in networks.values()), "")}

    def network_connect(self, network: str, ref: str, ip: str | None = None) -> None:
        row = self.db.find(ref)
        self.net.connect(row["id"], network, ip=ip)
        self._rewrite_network_files(row)

    def network_disconnect(self, network: str, ref: str) -> None:
        row = self.db.find(ref)
        self.net.disconnect(row["id"], network)
        self._rewrite_network_files(row)

    def _rewrite_network_files(self, row) -> None:  # type: ignore[no-untyped-def]
        config = json.loads(row["config"])
        self.net.write_files(row["id"], self.layout.container_dir(row["id"]),
                             config.get("hostname") or row["id"][:12], with_resolver=True,
                             owner=self.db.idmap_of(row["id"]))

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
                        "exit_code": st.get("exit_code"), "pid": st.get("pid", 0),
                        "started_at": st.get("started_at"),
                        "health": (st.get("health") or {}).get("Status")})
        return out

    # -- signals, stop, wait ----------------------------------------------------------

    def kill(self, ref: str, sig: str | int = "SIGKILL") -> None:
        row = self.db.find(ref)
        if self.status(row["id"]) != "running":
            raise WrongState(f"container {row['name']} is not running")
        self.shim(row["id"]).kill(signal_number(sig), all_processes=False)

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
            lambda: self.net.teardown(cid),
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
        from hutch.engine import clone
        clone.forget(self, cid)  # its snapshots, and shared layers nothing rests on any more

    def stats(self, ref: str) -> dict:
        """One sample of a running container's use: cgroup stats in runc's shape."""
        from hutch.cgroups import stats
        from hutch.runtime.container import Container
        row = self.db.find(ref)
        cg = Container(self.layout.runtime_root, row["id"]).cgroup
        if cg is None or not cg.exists():
            raise WrongState(f"container {row['name']} has no cgroup (is it running?)")
        sample = {"id": row["id"], "name": row["name"], "read": time.time(), **stats.of(cg)}
        sample["network"] = self._net_io(row["id"])
        return sample

    def _net_io(self, cid: str) -> dict:
        """Bytes and packets through the container's interfaces (lo aside), from its own
        network namespace's /proc/net/dev; zero for --network host or none."""
        total = {"rx_bytes": 0, "rx_packets": 0, "tx_bytes": 0, "tx_packets": 0}
        from hutch.network.netns import same_netns
        pid = self.shim(cid).status().get("pid") or 0
        try:
            if not pid or same_netns(f"/proc/{pid}/ns/net", self.net.host_netns):
                return total  # --network host: the host's counters are not the container's
        except OSError:
            return total  # it has just ended
        try:
            with open(f"/proc/{pid}/net/dev") as f:
                lines = f.read().splitlines()[2:]
        except OSError:
            return total
        for line in lines:
            name, _, data = line.partition(":")
            if name.strip() == "lo":
                continue
            v = [int(x) for x in data.split()]
            total["rx_bytes"] += v[0]
            total["rx_packets"] += v[1]
            total["tx_bytes"] += v[8]
            total["tx_packets"] += v[9]
        return total

    def logs(self, ref: str) -> list[dict]:
        from hutch.shim.logs import read_entries
        row = self.db.find(ref)
        return read_entries(os.path.join(self.layout.shim_dir(row["id"]), "container.log"))

    def close(self) -> None:
        self.net.close()
        self.db.close()
        if self._images is not None:
            self._images.close()
        if self._snapshotter is not None:
            self._snapshotter.close()
