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
    userns: str = "auto"  # "auto": its own user namespace and id range; "host": none
    network: str = "none"  # none | host | container:<netns path> (the engine resolves NAME)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def build(opts: RunOptions, image_config: dict, cid: str, id_base: int | None = None,
          id_size: int = 65536) -> dict:
    """The OCI config for ``opts`` (root.path "rootfs", relative to the bundle).

    With ``id_base`` the container gets its own user namespace: its ids 0..size-1 are
    the host's id_base.. (its root is an unprivileged id on the host).
    """
    spec = default_spec()
    _network(spec, opts.network)
    if id_base is not None:
        spec["linux"]["namespaces"].append({"type": "user"})
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
    capset = sorted(caps)
    process["capabilities"] = {"bounding": capset, "effective": capset, "permitted": capset}
    process["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    spec["hostname"] = opts.hostname or cid[:12]
    spec["root"] = {"path": "rootfs", "readonly": opts.read_only}
    spec["mounts"].extend(_volumes(opts.volumes))
    spec["mounts"].extend({"destination": t.split(":")[0], "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1777"]} for t in opts.tmpfs)
    linux = spec["linux"]
    linux["cgroupsPath"] = f"hutch/{cid}"
    linux["resources"] = _resources(opts)
    linux["seccomp"] = default_profile(caps)
    spec["annotations"] = {"io.hutch.image": opts.image, **{f"io.hutch.label.{k}": v for k, v
                                                            in opts.labels.items()}}
    return spec


def _network(spec: dict, mode: str) -> None:
    """none: a network namespace with only lo; host: the host's; container:PATH: another's."""
    namespaces = spec["linux"]["namespaces"]
    net = next(ns for ns in namespaces if ns["type"] == "network")
    if mode == "none":
        return
    if mode == "host":
        namespaces.remove(net)
        return
    if mode.startswith("container:/"):
        net["path"] = mode.split(":", 1)[1]
        return
    raise InvalidArgument(f"--network {mode}: use none, host or container:NAME "
                          "(bridge networks are not wired into the engine yet)")


def _cap(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") or name == "ALL" else f"CAP_{name}"


def _user(text: str) -> dict:
    uid, _, gid = str(text).partition(":")
    try:
        return {"uid": int(uid), "gid": int(gid or (uid if not gid else 0))}
    except ValueError:
        raise InvalidArgument(f"-u {text}: use numeric UID[:GID] (names come later)") from None


def _volumes(specs: list[str]) -> list[dict]:
    out = []
    for v in specs:
        parts = v.split(":")
        if len(parts) not in (2, 3) or not parts[0].startswith("/") or \
                not parts[1].startswith("/"):
            raise InvalidArgument(f"-v {v}: expected /HOST/PATH:/CONTAINER/PATH[:ro] "
                                  "(named volumes come later)")
        if not os.path.exists(parts[0]):
            raise InvalidArgument(f"-v {v}: {parts[0]} does not exist on the host")
        mode = parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            raise InvalidArgument(f"-v {v}: the mode must be ro or rw")
        out.append({"destination": parts[1], "type": "bind", "source": parts[0],
                    "options": ["rbind", "rprivate", mode]})
    return out


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
    return res
