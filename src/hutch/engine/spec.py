"""config.json for a container: the image's config, the user's options, our defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hutch.errors import InvalidArgument
from hutch.oci.defaults import default_spec
from hutch.oci.seccomp_default import default_profile

# Docker's default capability set, in intent (issue 4).
ENGINE_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)


@dataclass
class RunOptions:
    """What ``hutch run``/``create`` take (Docker's names)."""

    image: str = "busybox"
    command: list[str] = field(default_factory=list)
    name: str | None = None
    detach: bool = False
    remove: bool = False
    interactive: bool = False
    tty: bool = False
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    hostname: str | None = None
    volumes: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    read_only: bool = False
    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    restart: str = "no"
    stop_signal: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    template: str | None = None  # an OS container made from this template (LXC's -t)
    autostart: bool = False
    autostart_order: int = 0  # lxc.start.order: lower starts first
    autostart_delay: float = 0.0  # lxc.start.delay: seconds to wait after starting it
    health_cmd: str | None = None  # --health-*: durations as given ("30s"); engine/health.py
    health_interval: str | None = None
    health_timeout: str | None = None
    health_retries: int | None = None
    health_start_period: str | None = None
    no_healthcheck: bool = False
    ttys: int = 0  # an OS container's /dev/tty1..N, held by its shim (shim/ttys.py)
    userns: str = "auto"  # "auto": its own user namespace and id range; "host": none
    # bridge (the default network) | NAME[,NAME...] | none | host | container:NAME; the
    # engine resolves container:NAME to a namespace path, and networks to the container's
    # own namespace (engine/networking.py)
    network: str = "bridge"
    privileged: bool = False  # every capability, no seccomp, no masked paths, host's ids
    device_read_bps: list[str] = field(default_factory=list)  # DEVICE:RATE (blkio)
    device_write_bps: list[str] = field(default_factory=list)
    device_read_iops: list[str] = field(default_factory=list)
    device_write_iops: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)  # -p [IP:][HOST:]CONTAINER[/PROTO]
    publish_all: bool = False  # -P: every exposed port on a free host port
    expose: list[str] = field(default_factory=list)  # --expose PORT[/PROTO]
    ip: str | None = None
    network_rate: str | None = None  # RATE or egress=RATE,ingress=RATE
    network_aliases: list[str] = field(default_factory=list)
    pull: str = "missing"  # --pull missing|always|never: fetch the image (engine/images.py)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def build(opts: RunOptions, image_config: dict, cid: str, id_base: int | None = None,
          id_size: int = 65536, netns: str | None = None,
          files: dict[str, str] | None = None, userns: str | None = None) -> dict:
    """The OCI config for ``opts`` (root.path "rootfs", relative to the bundle).

    With ``id_base`` the container gets its own user namespace: its ids 0..size-1 are
    the host's id_base.. (its root is an unprivileged id on the host). ``netns`` is the
    network namespace the engine made for it; ``files`` maps container paths
    (/etc/hosts, /etc/resolv.conf ...) to host files bound there.
    """
    spec = default_spec()
    _network(spec, opts.network, netns)
    spec["mounts"].extend({"destination": dest, "type": "bind", "source": src,
                           "options": ["rbind", "rprivate", "rw"]}
                          for dest, src in (files or {}).items())
    if id_base is not None:
        # a new user namespace, or the one made with the network namespace it owns
        spec["linux"]["namespaces"].append({"type": "user", **({"path": userns} if userns
                                                               else {})})
        mapping = [{"containerID": 0, "hostID": id_base, "size": id_size}]
        spec["linux"]["uidMappings"] = mapping
        spec["linux"]["gidMappings"] = [dict(m) for m in mapping]
    process = spec["process"]
    entrypoint = [opts.entrypoint] if opts.entrypoint else list(image_config.get("Entrypoint")
                                                                or [])
    cmd = opts.command or ([] if opts.entrypoint else list(image_config.get("Cmd") or []))
    args = entrypoint + cmd
    if not args:
        raise InvalidArgument(f"no command: image {opts.image} has no Cmd or Entrypoint; "
                              "give one after the image name")
    process["args"] = args
    process["terminal"] = opts.tty
    env = dict(e.split("=", 1) for e in image_config.get("Env") or [] if "=" in e)
    env.setdefault("HOSTNAME", opts.hostname or cid[:12])
    if opts.tty:
        env.setdefault("TERM", "xterm")
    for item in opts.env:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"-e {item!r}: expected NAME=VALUE")
        if eq:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]  # -e NAME passes the caller's value, as docker
    process["env"] = [f"{k}={v}" for k, v in env.items()]
    process["cwd"] = opts.workdir or image_config.get("WorkingDir") or "/"
    process["user"] = _user(opts.user or image_config.get("User") or "0")
    base = set(ENGINE_CAPABILITIES)
    if opts.template:
        base.add("CAP_SYS_BOOT")  # its init powers off through reboot(2): in its pid ns only
    caps = (base | {_cap(c) for c in opts.cap_add}) - {_cap(c) for c in opts.cap_drop}
    if "ALL" in {c.upper() for c in opts.cap_drop}:
        caps = {_cap(c) for c in opts.cap_add}
    if opts.privileged:  # all the caller has (a host may withhold some even from root)
        from hutch.linux.capabilities import current_capabilities
        caps = current_capabilities()["bounding"]
    capset = sorted(caps)
    process["capabilities"] = {"bounding": capset, "effective": capset, "permitted": capset}
    process["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    spec["hostname"] = opts.hostname or cid[:12]
    spec["root"] = {"path": "rootfs", "readonly": opts.read_only}
    spec["mounts"].extend(_volumes(opts.volumes, id_base is not None))
    spec["mounts"].extend(_tmpfs(t) for t in opts.tmpfs)
    # the shim points <bundle>/ttys/N at a pty of its own before the container starts
    spec["mounts"].extend({"destination": f"/dev/tty{n}", "type": "bind",
                           "source": f"ttys/{n}", "options": ["bind"]}
                          for n in range(1, opts.ttys + 1))
    linux = spec["linux"]
    # No cgroupsPath: the runtime's default, hutch/<id> below the caller's cgroup, whose
    # shared "hutch" parent the runtime removes with the last container in it.
    linux["resources"] = _resources(opts)
    linux["seccomp"] = default_profile(caps)
    if opts.privileged:  # Docker's --privileged: the host's devices and kernel interfaces
        del linux["seccomp"]
        linux["maskedPaths"], linux["readonlyPaths"] = [], []
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
        linux["devices"] = host_devices()
        for m in spec["mounts"]:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"]
    spec["annotations"] = {"io.hutch.image": opts.image, **{f"io.hutch.label.{k}": v for k, v
                                                            in opts.labels.items()}}
    if opts.template:  # its init gets the console as a kernel gives it: not as its ctty
        spec["annotations"]["io.hutch.console.ctty"] = "false"
        # a fresh /run and /run/lock at each boot, as podman --systemd gives (its init
        # cannot mount them itself without CAP_SYS_ADMIN)
        spec["mounts"] += [
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=755", "size=65536k"]},
            {"destination": "/run/lock", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "noexec", "mode=1777", "size=5120k"]}]
    return spec


def _network(spec: dict, mode: str, netns: str | None) -> None:
    """none: a network namespace with only lo; host: the host's; container:PATH: another's;
    networks: the namespace the engine made (``netns``)."""
    namespaces = spec["linux"]["namespaces"]
    net = next(ns for ns in namespaces if ns["type"] == "network")
    if netns is not None:
        net["path"] = netns
        return
    if mode == "none":
        return
    if mode == "host":
        namespaces.remove(net)
        return
    if mode.startswith("container:/"):
        net["path"] = mode.split(":", 1)[1]
        return
    raise InvalidArgument(f"--network {mode}: the engine makes the namespace of a container "
                          "on networks; none, host or container:NAME otherwise")


def _cap(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") or name == "ALL" else f"CAP_{name}"


def _user(text: str) -> dict:
    uid, _, gid = str(text).partition(":")
    try:
        return {"uid": int(uid), "gid": int(gid or (uid if not gid else 0))}
    except ValueError:
        raise InvalidArgument(f"-u {text}: use numeric UID[:GID] (names come later)") from None


VOLUME_OPTIONS = ("ro", "rw", "idmap", "noidmap")


def _volumes(specs: list[str], own_userns: bool = False) -> list[dict]:
    """-v HOST:CTR[:OPTIONS], OPTIONS comma separated: ro|rw, idmap|noidmap.

    In a container with its own user namespace a volume is idmapped by default
    (as Incus's shifted disks and podman's ``:idmap``): the container sees the host's
    owners (host root's files as its root's) and what its root writes is stored as
    host root's. ``noidmap`` binds it as is: the host's files then belong to ids the
    container does not map (shown as nobody), and its root writes as its host uid.
    """
    out = []
    for v in specs:
        parts = v.split(":")
        if len(parts) not in (2, 3) or not parts[0].startswith("/") or \
                not parts[1].startswith("/"):
            raise InvalidArgument(f"-v {v}: expected /HOST/PATH:/CONTAINER/PATH[:OPTIONS] "
                                  "(named volumes come later)")
        if not os.path.exists(parts[0]):
            raise InvalidArgument(f"-v {v}: {parts[0]} does not exist on the host")
        options = parts[2].split(",") if len(parts) == 3 else []
        bad = [o for o in options if o not in VOLUME_OPTIONS]
        if bad or not options and len(parts) == 3:
            raise InvalidArgument(f"-v {v}: unknown option {(bad or [''])[0]!r}; use "
                                  "ro or rw, and idmap or noidmap, comma separated")
        if {"ro", "rw"} <= set(options) or {"idmap", "noidmap"} <= set(options):
            raise InvalidArgument(f"-v {v}: ro and rw, or idmap and noidmap, contradict")
        if "idmap" in options and not own_userns:
            raise InvalidArgument(f"-v {v}: idmap needs the container's own user namespace "
                                  "(not --userns host)")
        mount_opts = ["rbind", "rprivate", "ro" if "ro" in options else "rw"]
        if own_userns and "noidmap" not in options:
            mount_opts.append("idmap")  # the container's own mappings (hutch.runtime.idmapped)
        out.append({"destination": parts[1], "type": "bind", "source": parts[0],
                    "options": mount_opts})
    return out


# Made by the runtime itself (the default set, the console, the pty multiplexer).
_RUNTIME_DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                    "/dev/tty", "/dev/console", "/dev/ptmx"}


def host_devices(root: str = "/dev") -> list[dict]:
    """Every character and block device node of the host's /dev (--privileged, as
    Docker's), but the runtime's own and the terminals of /dev/pts."""
    import stat
    out = []
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in
                       (os.path.join(root, "pts"), os.path.join(root, "shm"),
                        os.path.join(root, "mqueue"))]
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if path in _RUNTIME_DEVICES or not (stat.S_ISCHR(st.st_mode) or
                                                stat.S_ISBLK(st.st_mode)):
                continue
            out.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                        "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                        "gid": st.st_gid})
    return out


def _tmpfs(text: str) -> dict:
    """``--tmpfs PATH[:OPTIONS]`` (Docker's): OPTIONS as mount(8) takes them."""
    path, _, extra = text.partition(":")
    if not path.startswith("/"):
        raise InvalidArgument(f"--tmpfs {text}: the path in the container must be absolute")
    options = ["nosuid", "nodev"] + [o for o in extra.split(",") if o]
    if not any(o.startswith("mode=") for o in options):
        options.append("mode=1777")
    return {"destination": path, "type": "tmpfs", "source": "tmpfs", "options": options}


def parse_mount(text: str) -> tuple[str, str]:
    """``--mount type=bind|volume|tmpfs,source=..,target=..[,readonly]`` -> ("volume", -v
    text) or ("tmpfs", --tmpfs text), Docker's keys and their aliases."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro") and not eq:
            value = "true"
        elif not eq:
            raise InvalidArgument(f"--mount {text}: {item!r} is not KEY=VALUE")
        key = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly"
               }.get(key, key)
        fields[key] = value
    kind = fields.pop("type", "volume")
    target = fields.pop("target", "")
    if not target.startswith("/"):
        raise InvalidArgument(f"--mount {text}: target= must be an absolute path in the "
                              "container")
    readonly = fields.pop("readonly", "false").lower() in ("1", "true", "yes")
    if kind == "tmpfs":
        opts = []
        if "tmpfs-size" in fields:
            opts.append(f"size={fields.pop('tmpfs-size')}")
        if "tmpfs-mode" in fields:
            opts.append(f"mode={fields.pop('tmpfs-mode')}")
        if readonly:
            opts.append("ro")
        if fields:
            raise InvalidArgument(f"--mount {text}: unknown keys for tmpfs: {', '.join(fields)}")
        return "tmpfs", target + (":" + ",".join(opts) if opts else "")
    if kind not in ("bind", "volume"):
        raise InvalidArgument(f"--mount {text}: type must be bind, volume or tmpfs")
    source = fields.pop("source", "")
    if not source:
        raise InvalidArgument(f"--mount {text}: source= is missing")
    if kind == "bind" and not source.startswith("/"):
        raise InvalidArgument(f"--mount {text}: a bind's source must be an absolute path")
    if kind == "volume" and source.startswith("/"):
        raise InvalidArgument(f"--mount {text}: a volume's source is a volume name")
    extra = []
    if fields.pop("idmap", None) in ("false", "0"):
        extra.append("noidmap")
    if fields:
        raise InvalidArgument(f"--mount {text}: unknown keys: {', '.join(sorted(fields))}")
    return "volume", f"{source}:{target}:{'ro' if readonly else 'rw'}" + (
        "," + ",".join(extra) if extra else "")


def _resources(opts: RunOptions) -> dict:
    res: dict = {}
    if opts.memory is not None:
        res.setdefault("memory", {})["limit"] = opts.memory
    if opts.memory_swap is not None:
        res.setdefault("memory", {})["swap"] = opts.memory_swap
    if opts.cpus is not None:
        if opts.cpus <= 0:
            raise InvalidArgument(f"--cpus {opts.cpus}: must be more than 0")
        res.setdefault("cpu", {}).update(period=100000, quota=int(opts.cpus * 100000))
    if opts.cpu_shares is not None:
        res.setdefault("cpu", {})["shares"] = opts.cpu_shares
    if opts.cpuset_cpus is not None:
        res.setdefault("cpu", {})["cpus"] = opts.cpuset_cpus
    if opts.pids_limit is not None:
        res["pids"] = {"limit": opts.pids_limit}
    for flag, key, values in (
            ("--device-read-bps", "throttleReadBpsDevice", opts.device_read_bps),
            ("--device-write-bps", "throttleWriteBpsDevice", opts.device_write_bps),
            ("--device-read-iops", "throttleReadIOPSDevice", opts.device_read_iops),
            ("--device-write-iops", "throttleWriteIOPSDevice", opts.device_write_iops)):
        for text in values:
            res.setdefault("blockIO", {}).setdefault(key, []).append(
                _throttle(flag, text, per_second=flag.endswith("bps")))
    return res


def _throttle(flag: str, text: str, per_second: bool) -> dict:
    """``/dev/sda:1mb`` (bytes/s) or ``/dev/sda:100`` (IO/s) -> a blockIO throttle entry."""
    import stat
    path, sep, rate_text = text.rpartition(":")
    if not sep or not path:
        raise InvalidArgument(f"{flag} {text}: expected DEVICE:RATE, e.g. /dev/sda:1mb")
    try:
        if per_second:
            from hutch.common.units import parse_size
            rate = parse_size(rate_text, flag)
        else:
            rate = int(rate_text)
    except (ValueError, InvalidArgument):
        raise InvalidArgument(f"{flag} {text}: {rate_text!r} is not a "
                              f"{'size such as 1mb' if per_second else 'number'}") from None
    if rate <= 0:
        raise InvalidArgument(f"{flag} {text}: the rate must be more than 0")
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"{flag} {text}: {path}: {e.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"{flag} {text}: {path} is not a block device")
    return {"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev), "rate": rate}
