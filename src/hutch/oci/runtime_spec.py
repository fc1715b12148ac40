"""Reading and checking an OCI bundle's config.json (runtime-spec 1.x).

The spec stays a plain dict, the JSON as decoded: the runtime reads the fields
it needs, and unknown properties pass through (the spec allows extensions).

``validate`` runs a list of small checks, one per area of the config, as
runc's configs/validate does. Each appends "field.path: what is wrong" to a
list; every problem found is reported in one InvalidArgument, one line each,
the most basic (version, root, process) first.
"""

from __future__ import annotations

import json
import os

from hutch import OCI_VERSION
from hutch.common.jsonkind import json_kind as _kind
from hutch.errors import InvalidArgument, NotFound, SystemFailure
from hutch.linux.capabilities import CAPABILITIES
from hutch.linux.constants import NAMESPACES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    Problems = list[str]

CONFIG_NAME = "config.json"

NAMESPACE_TYPES: tuple[str, ...] = tuple(sorted(NAMESPACES))

CAPABILITY_SETS: tuple[str, ...] = ("bounding", "effective", "inheritable", "permitted",
                                    "ambient")

RLIMITS: frozenset[str] = frozenset({
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
    "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
})

HOOK_NAMES: tuple[str, ...] = ("prestart", "createRuntime", "createContainer",
                               "startContainer", "poststart", "poststop")

PROPAGATIONS: tuple[str, ...] = ("", "private", "rprivate", "slave", "rslave", "shared",
                                 "rshared", "unbindable", "runbindable")

DEVICE_TYPES: tuple[str, ...] = ("c", "b", "u", "p")

SECCOMP_ACTIONS: frozenset[str] = frozenset({
    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
})
SECCOMP_OPERATORS: frozenset[str] = frozenset({
    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE",
})
SECCOMP_ARCHS: frozenset[str] = frozenset({
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_X32", "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
})
# Filter flags, in the order `features` lists them. TSYNC is accepted and
# ignored, as runc does: the runtime is single-threaded when it loads the filter.
SECCOMP_FLAGS: tuple[str, ...] = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                  "SECCOMP_FILTER_FLAG_LOG")

# sysctls that belong to the IPC namespace (besides fs.mqueue.*).
IPC_SYSCTLS: frozenset[str] = frozenset({
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
})

_UINT32 = (1 << 32) - 1
_UINT64 = (1 << 64) - 1


# ----------------------------------------------------------------- loading


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def load_config(bundle: str) -> dict[str, object]:
    """Read and decode ``<bundle>/config.json`` (not validated: see ``validate``)."""
    bundle = bundle or "."
    if not os.path.isdir(bundle):
        if os.path.lexists(bundle):
            raise InvalidArgument(f"bundle {bundle}: not a directory")
        raise NotFound(f"bundle {bundle}: no such directory")
    path = os.path.join(bundle, CONFIG_NAME)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NotFound(f"{CONFIG_NAME}: no such file in bundle {bundle}; "
                       f"run `hutch-runtime spec` there to make one") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{CONFIG_NAME}: {path} is a directory, not a file") from None
    except OSError as e:
        raise SystemFailure(e.errno or 0, f"{CONFIG_NAME}: cannot read {path}: "
                                          f"{e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidArgument(f"{CONFIG_NAME}: not UTF-8 (bad byte at offset {e.start})") from None
    try:
        spec = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"{CONFIG_NAME}: invalid JSON at line {e.lineno} column "
                              f"{e.colno}: {e.msg}") from None
    except ValueError as e:  # NaN / Infinity
        raise InvalidArgument(f"{CONFIG_NAME}: invalid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise InvalidArgument(f"{CONFIG_NAME}: the top level must be a JSON object, "
                              f"not {_kind(spec)}")
    return spec


# ----------------------------------------------------------------- helpers


def _obj(parent: dict[str, object], key: str, path: str, p: Problems,
         required: bool = False) -> dict[str, object] | None:
    """``parent[key]`` if it is an object; report it if it is missing or not one."""
    value = parent.get(key)
    if value is None:
        if required:
            p.append(f"{path}: missing")
        return None
    if not isinstance(value, dict):
        p.append(f"{path}: must be an object, not {_kind(value)}")
        return None
    return value


def _list(parent: dict[str, object], key: str, path: str, p: Problems) -> list[object]:
    """``parent[key]`` if it is a list (absent: empty); report anything else."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        p.append(f"{path}: must be a list, not {_kind(value)}")
        return []
    return value


def _str(parent: dict[str, object], key: str, path: str, p: Problems,
         required: bool = False) -> str | None:
    value = parent.get(key)
    if value is None:
        if required:
            p.append(f"{path}: missing")
        return None
    if not isinstance(value, str):
        p.append(f"{path}: must be a string, not {_kind(value)}")
        return None
    return value


def _bool(parent: dict[str, object], key: str, path: str, p: Problems) -> None:
    value = parent.get(key)
    if value is not None and not isinstance(value, bool):
        p.append(f"{path}: must be true or false, not {_kind(value)}")


def _uint(parent: dict[str, object], key: str, path: str, p: Problems,
          required: bool = False, top: int = _UINT32) -> int | None:
    value = parent.get(key)
    if value is None:
        if required:
            p.append(f"{path}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        p.append(f"{path}: must be an integer, not {_kind(value)}")
        return None
    if not 0 <= value <= top:
        p.append(f"{path}: {value} is out of range (0 to {top})")
        return None
    return value


def _abs_path(value: object, path: str, p: Problems) -> str | None:
    if not isinstance(value, str):
        p.append(f"{path}: must be a string, not {_kind(value)}")
        return None
    if not value.startswith("/"):
        p.append(f"{path}: {json.dumps(value)} is not an absolute path")
        return None
    return value


def _str_list(parent: dict[str, object], key: str, path: str, p: Problems) -> list[str]:
    """The strings of list ``parent[key]``; report the list or items that are not."""
    good: list[str] = []
    for i, item in enumerate(_list(parent, key, path, p)):
        if isinstance(item, str):
            good.append(item)
        else:
            p.append(f"{path}[{i}]: must be a string, not {_kind(item)}")
    return good


def _env(parent: dict[str, object], key: str, path: str, p: Problems) -> None:
    for i, item in enumerate(_list(parent, key, path, p)):
        where = f"{path}[{i}]"
        if not isinstance(item, str):
            p.append(f"{where}: must be a string, not {_kind(item)}")
        elif "=" not in item:
            p.append(f"{where}: {json.dumps(item)} is not of the form KEY=VALUE")
        elif item.startswith("="):
            p.append(f"{where}: {json.dumps(item)} has an empty variable name")
        elif "\0" in item:
            p.append(f"{where}: contains a NUL byte")


def _abs_paths(parent: dict[str, object], key: str, path: str, p: Problems) -> None:
    for i, item in enumerate(_list(parent, key, path, p)):
        _abs_path(item, f"{path}[{i}]", p)


def _str_map(parent: dict[str, object], key: str, path: str, p: Problems) -> dict[str, str]:
    """The object ``parent[key]`` as str -> str; report values that are not strings."""
    mapping = _obj(parent, key, path, p)
    if mapping is None:
        return {}
    good: dict[str, str] = {}
    for k, v in mapping.items():
        if not isinstance(v, str):
            p.append(f"{path}[{json.dumps(k)}]: must be a string, not {_kind(v)}")
        else:
            good[k] = v
    return good


def _one_of(value: object, choices: tuple[str, ...] | frozenset[str], what: str, path: str,
            p: Problems) -> bool:
    if not isinstance(value, str):
        p.append(f"{path}: must be a string, not {_kind(value)}")
        return False
    if value not in choices:
        listed = ", ".join(c or '""' for c in sorted(choices))
        p.append(f"{path}: unknown {what} {json.dumps(value)} (one of: {listed})")
        return False
    return True


def _id_mappings(parent: dict[str, object], key: str, path: str, p: Problems) -> int:
    """Check a list of {containerID, hostID, size}; return how many are well formed."""
    good = 0
    for i, item in enumerate(_list(parent, key, path, p)):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            p.append(f"{where}: must be an object, not {_kind(item)}")
            continue
        ok = _uint(item, "containerID", f"{where}.containerID", p, required=True) is not None
        ok = _uint(item, "hostID", f"{where}.hostID", p, required=True) is not None and ok
        size = _uint(item, "size", f"{where}.size", p, required=True)
        if size == 0:
            p.append(f"{where}.size: must be greater than 0")
        good += ok and bool(size)
    return good


def _section(spec: dict[str, object], key: str) -> dict[str, object] | None:
    """A top-level object, or None when it is absent or malformed (reported elsewhere)."""
    value = spec.get(key)
    return value if isinstance(value, dict) else None


def _namespaces(spec: dict[str, object]) -> dict[str, tuple[int, dict[str, object]]] | None:
    """Namespace type -> (index, entry), for the well-formed entries (first one wins).

    None when "linux" or "linux.namespaces" is malformed: that is reported once,
    and checks that depend on the namespaces skip rather than pile on.
    """
    found: dict[str, tuple[int, dict[str, object]]] = {}
    linux = spec.get("linux")
    if linux is None:
        return found
    if not isinstance(linux, dict):
        return None
    entries = linux.get("namespaces")
    if entries is None:
        return found
    if not isinstance(entries, list):
        return None
    for i, entry in enumerate(entries):
        if isinstance(entry, dict):
            ns_type = entry.get("type")
            if isinstance(ns_type, str) and ns_type not in found:
                found[ns_type] = (i, entry)
    return found


# ----------------------------------------------------------------- checks


def check_version(spec: dict[str, object], bundle: str, p: Problems) -> None:
    version = _str(spec, "ociVersion", "ociVersion", p, required=True)
    if version is None:
        return
    if version.split(".", 1)[0] != "1":
        p.append(f"ociVersion: unsupported version {json.dumps(version)} "
                 f"(hutch-runtime reads 1.x, up to {OCI_VERSION})")


def check_root(spec: dict[str, object], bundle: str, p: Problems) -> None:
    root = _obj(spec, "root", "root", p, required=True)
    if root is None:
        return
    _bool(root, "readonly", "root.readonly", p)
    path = _str(root, "path", "root.path", p, required=True)
    if path is None:
        return
    if not path:
        p.append("root.path: must not be empty")
        return
    full = os.path.join(bundle or ".", path)
    if not os.path.exists(full):
        p.append(f"root.path: {full} does not exist")
    elif not os.path.isdir(full):
        p.append(f"root.path: {full} is not a directory")


def check_process(spec: dict[str, object], bundle: str, p: Problems) -> None:
    proc = _obj(spec, "process", "process", p, required=True)
    if proc is None:
        return
    _bool(proc, "terminal", "process.terminal", p)
    _bool(proc, "noNewPrivileges", "process.noNewPrivileges", p)
    size = _obj(proc, "consoleSize", "process.consoleSize", p)
    if size is not None:
        _uint(size, "height", "process.consoleSize.height", p, required=True)
        _uint(size, "width", "process.consoleSize.width", p, required=True)
    if not proc.get("args"):
        p.append("process.args: must name the program to run (a non-empty list of strings)")
    else:
        _str_list(proc, "args", "process.args", p)
    _env(proc, "env", "process.env", p)
    cwd = proc.get("cwd")
    if cwd is None or cwd == "":
        p.append("process.cwd: missing (an absolute path inside the container)")
    else:
        _abs_path(cwd, "process.cwd", p)
    oom = proc.get("oomScoreAdj")
    if oom is not None:
        if isinstance(oom, bool) or not isinstance(oom, int):
            p.append(f"process.oomScoreAdj: must be an integer, not {_kind(oom)}")
        elif not -1000 <= oom <= 1000:
            p.append(f"process.oomScoreAdj: {oom} is out of range (-1000 to 1000)")
    _str(proc, "apparmorProfile", "process.apparmorProfile", p)
    _str(proc, "selinuxLabel", "process.selinuxLabel", p)


def check_user(spec: dict[str, object], bundle: str, p: Problems) -> None:
    proc = _section(spec, "process")
    user = _obj(proc, "user", "process.user", p) if proc else None
    if user is None:
        return
    _uint(user, "uid", "process.user.uid", p)
    _uint(user, "gid", "process.user.gid", p)
    _uint(user, "umask", "process.user.umask", p)
    for i, gid in enumerate(_list(user, "additionalGids", "process.user.additionalGids", p)):
        _uint({"gid": gid}, "gid", f"process.user.additionalGids[{i}]", p)


def check_rlimits(spec: dict[str, object], bundle: str, p: Problems) -> None:
    proc = _section(spec, "process")
    if proc is None:
        return
    seen: dict[str, int] = {}
    for i, rl in enumerate(_list(proc, "rlimits", "process.rlimits", p)):
        where = f"process.rlimits[{i}]"
        if not isinstance(rl, dict):
            p.append(f"{where}: must be an object, not {_kind(rl)}")
            continue
        rl_type = rl.get("type")
        if rl_type is None:
            p.append(f"{where}.type: missing")
        elif _one_of(rl_type, RLIMITS, "rlimit", f"{where}.type", p) and isinstance(rl_type, str):
            if rl_type in seen:
                p.append(f"{where}.type: duplicate {rl_type} "
                         f"(also at process.rlimits[{seen[rl_type]}])")
            else:
                seen[rl_type] = i
        hard = _uint(rl, "hard", f"{where}.hard", p, required=True, top=_UINT64)
        soft = _uint(rl, "soft", f"{where}.soft", p, required=True, top=_UINT64)
        if hard is not None and soft is not None and soft > hard:
            p.append(f"{where}.soft: {soft} is above the hard limit {hard}")


def check_capabilities(spec: dict[str, object], bundle: str, p: Problems) -> None:
    proc = _section(spec, "process")
    caps = _obj(proc, "capabilities", "process.capabilities", p) if proc else None
    if caps is None:
        return
    for name in CAPABILITY_SETS:
        where = f"process.capabilities.{name}"
        for i, cap in enumerate(_str_list(caps, name, where, p)):
            if cap not in CAPABILITIES:
                p.append(f"{where}[{i}]: unknown capability {json.dumps(cap)}")


def check_linux(spec: dict[str, object], bundle: str, p: Problems) -> None:
    _obj(spec, "linux", "linux", p)


def check_namespaces(spec: dict[str, object], bundle: str, p: Problems) -> None:
    linux = _section(spec, "linux")
    if linux is None:
        return
    seen: dict[str, int] = {}
    for i, entry in enumerate(_list(linux, "namespaces", "linux.namespaces", p)):
        where = f"linux.namespaces[{i}]"
        if not isinstance(entry, dict):
            p.append(f"{where}: must be an object, not {_kind(entry)}")
            continue
        ns_type = entry.get("type")
        if ns_type is None:
            p.append(f"{where}.type: missing")
        elif (_one_of(ns_type, NAMESPACE_TYPES, "namespace type", f"{where}.type", p)
              and isinstance(ns_type, str)):
            if ns_type in seen:
                p.append(f"{where}.type: duplicate {ns_type} namespace "
                         f"(also at linux.namespaces[{seen[ns_type]}])")
            else:
                seen[ns_type] = i
        if entry.get("path") is not None:
            _abs_path(entry["path"], f"{where}.path", p)


def check_id_mappings(spec: dict[str, object], bundle: str, p: Problems) -> None:
    linux = _section(spec, "linux")
    if linux is None:
        return
    uids = _id_mappings(linux, "uidMappings", "linux.uidMappings", p)
    gids = _id_mappings(linux, "gidMappings", "linux.gidMappings", p)
    namespaces = _namespaces(spec)
    if namespaces is None:
        return
    userns = namespaces.get("user")
    if userns is None:
        for key in ("uidMappings", "gidMappings"):
            if linux.get(key):
                p.append(f"linux.{key}: given, but linux.namespaces has no user namespace")
        return
    index, entry = userns
    if entry.get("path"):
        return  # joining an existing user namespace: its mappings are already set
    for key, count, ids in (("uidMappings", uids, "uid"), ("gidMappings", gids, "gid")):
        if not count and not linux.get(key):
            p.append(f"linux.{key}: missing; the new user namespace "
                     f"(linux.namespaces[{index}]) needs {ids} mappings")


def check_uts(spec: dict[str, object], bundle: str, p: Problems) -> None:
    namespaces = _namespaces(spec)
    for key in ("hostname", "domainname"):
        value = _str(spec, key, key, p)
        if value and namespaces is not None and "uts" not in namespaces:
            p.append(f"{key}: {key} requires a new UTS namespace "
                     f"(add {{\"type\": \"uts\"}} to linux.namespaces)")


def check_mounts(spec: dict[str, object], bundle: str, p: Problems) -> None:
    for i, mount in enumerate(_list(spec, "mounts", "mounts", p)):
        where = f"mounts[{i}]"
        if not isinstance(mount, dict):
            p.append(f"{where}: must be an object, not {_kind(mount)}")
            continue
        dest = mount.get("destination")
        if dest is None:
            p.append(f"{where}.destination: missing")
        else:
            _abs_path(dest, f"{where}.destination", p)
        _str(mount, "type", f"{where}.type", p)
        _str(mount, "source", f"{where}.source", p)
        options = _str_list(mount, "options", f"{where}.options", p)
        mapped = [k for k in ("uidMappings", "gidMappings") if mount.get(k) is not None]
        for key in mapped:
            _id_mappings(mount, key, f"{where}.{key}", p)
        if len(mapped) == 1:
            other = "gidMappings" if mapped[0] == "uidMappings" else "uidMappings"
            p.append(f"{where}.{other}: missing; an idmapped mount needs both "
                     f"uidMappings and gidMappings")
        if mapped and "bind" not in options and "rbind" not in options:
            p.append(f"{where}.{mapped[0]}: only bind mounts can be idmapped "
                     f"(add \"bind\" or \"rbind\" to the options)")


def check_devices(spec: dict[str, object], bundle: str, p: Problems) -> None:
    linux = _section(spec, "linux")
    if linux is None:
        return
    paths: dict[str, int] = {}
    for i, dev in enumerate(_list(linux, "devices", "linux.devices", p)):
        where = f"linux.devices[{i}]"
        if not isinstance(dev, dict):
            p.append(f"{where}: must be an object, not {_kind(dev)}")
            continue
        path = None
        if dev.get("path") is None:
            p.append(f"{where}.path: missing")
        else:
            path = _abs_path(dev["path"], f"{where}.path", p)
        if path is not None:
            if path in paths:
                p.append(f"{where}.path: duplicate device {path} "
                         f"(also at linux.devices[{paths[path]}])")
            else:
                paths[path] = i
        dev_type = dev.get("type")
        if dev_type is None:
            p.append(f"{where}.type: missing (one of: {', '.join(DEVICE_TYPES)})")
        else:
            _one_of(dev_type, DEVICE_TYPES, "device type", f"{where}.type", p)
        for key in ("major", "minor"):
            required = dev_type != "p"
            _uint(dev, key, f"{where}.{key}", p, required=required, top=_UINT64)
        _uint(dev, "fileMode", f"{where}.fileMode", p)
        _uint(dev, "uid", f"{where}.uid", p)
        _uint(dev, "gid", f"{where}.gid", p)


def _sysctl_name(key: str) -> str:
    """sysctl(8) also takes '/' as the separator; then '.' inside a part is literal."""
    first = next((c for c in key if c in "./"), ".")
    if first == ".":
        return key
    return key.translate(str.maketrans("./", "/."))


def _is_host_netns(path: str) -> bool:
    """Whether ``path`` is the network namespace the runtime itself runs in."""
    try:
        mine, theirs = os.stat("/proc/self/ns/net"), os.stat(path)
    except OSError:
        return False  # a bad path is for the runtime to report when it joins
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def check_sysctl(spec: dict[str, object], bundle: str, p: Problems) -> None:
    linux = _section(spec, "linux")
    if linux is None:
        return
    sysctls = _str_map(linux, "sysctl", "linux.sysctl", p)
    namespaces = _namespaces(spec)
    if namespaces is None:
        return
    for key in sysctls:
        name = _sysctl_name(key)
        if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
            if "ipc" not in namespaces:
                p.append(f"linux.sysctl: sysctl {json.dumps(name)} is not allowed in the host's "
                         f"IPC namespace (add an ipc namespace to linux.namespaces)")
        elif name.startswith("net."):
            netns = namespaces.get("network")
            if netns is None:
                p.append(f"linux.sysctl: sysctl {json.dumps(name)} is not allowed in the host's "
                         f"network namespace (add a network namespace to linux.namespaces)")
            else:
                path = netns[1].get("path")
                if isinstance(path, str) and path and _is_host_netns(path):
                    p.append(f"linux.sysctl: sysctl {json.dumps(name)} is not allowed in the "
                             f"host's network namespace ({path})")
        elif name in ("kernel.hostname", "kernel.domainname"):
            if "uts" not in namespaces:
                p.append(f"linux.sysctl: sysctl {json.dumps(name)} needs a new UTS namespace "
                         f"(add a uts namespace to linux.namespaces)")
            elif name == "kernel.hostname" and spec.get("hostname"):
                p.append(f"linux.sysctl: sysctl {json.dumps(name)} conflicts with the hostname "
                         f"field; set only one of them")
        else:
            p.append(f"linux.sysctl: sysctl {json.dumps(name)} is not in a separate "
                     f"kernel namespace")


def check_linux_paths(spec: dict[str, object], bundle: str, p: Problems) -> None:
    linux = _section(spec, "linux")
    if linux is None:
        return
    if linux.get("rootfsPropagation") is not None:
        _one_of(linux["rootfsPropagation"], PROPAGATIONS, "propagation",
                "linux.rootfsPropagation", p)
    _abs_paths(linux, "maskedPaths", "linux.maskedPaths", p)
    _abs_paths(linux, "readonlyPaths", "linux.readonlyPaths", p)
    _str(linux, "cgroupsPath", "linux.cgroupsPath", p)
    _str(linux, "mountLabel", "linux.mountLabel", p)


def check_resources(spec: dict[str, object], bundle: str, p: Problems) -> None:
    linux = _section(spec, "linux")
    if linux is not None:
        _obj(linux, "resources", "linux.resources", p)


def check_seccomp(spec: dict[str, object], bundle: str, p: Problems) -> None:
    linux = _section(spec, "linux")
    seccomp = _obj(linux, "seccomp", "linux.seccomp", p) if linux else None
    if seccomp is None:
        return
    action = seccomp.get("defaultAction")
    if action is None:
        p.append("linux.seccomp.defaultAction: missing")
    else:
        _one_of(action, SECCOMP_ACTIONS, "action", "linux.seccomp.defaultAction", p)
    _uint(seccomp, "defaultErrnoRet", "linux.seccomp.defaultErrnoRet", p)
    for key, known, what in (("architectures", SECCOMP_ARCHS, "architecture"),
                             ("flags", SECCOMP_FLAGS, "flag")):
        where = f"linux.seccomp.{key}"
        for i, name in enumerate(_str_list(seccomp, key, where, p)):
            if name not in known:
                p.append(f"{where}[{i}]: unknown {what} {json.dumps(name)}")
    _str(seccomp, "listenerPath", "linux.seccomp.listenerPath", p)
    for i, rule in enumerate(_list(seccomp, "syscalls", "linux.seccomp.syscalls", p)):
        where = f"linux.seccomp.syscalls[{i}]"
        if not isinstance(rule, dict):
            p.append(f"{where}: must be an object, not {_kind(rule)}")
            continue
        if not rule.get("names"):
            p.append(f"{where}.names: must list at least one system call")
        else:
            _str_list(rule, "names", f"{where}.names", p)
        if rule.get("action") is None:
            p.append(f"{where}.action: missing")
        else:
            _one_of(rule["action"], SECCOMP_ACTIONS, "action", f"{where}.action", p)
        _uint(rule, "errnoRet", f"{where}.errnoRet", p)
        for j, arg in enumerate(_list(rule, "args", f"{where}.args", p)):
            at = f"{where}.args[{j}]"
            if not isinstance(arg, dict):
                p.append(f"{at}: must be an object, not {_kind(arg)}")
                continue
            _uint(arg, "index", f"{at}.index", p, required=True)
            _uint(arg, "value", f"{at}.value", p, top=_UINT64)
            _uint(arg, "valueTwo", f"{at}.valueTwo", p, top=_UINT64)
            if arg.get("op") is None:
                p.append(f"{at}.op: missing")
            else:
                _one_of(arg["op"], SECCOMP_OPERATORS, "operator", f"{at}.op", p)


def check_hooks(spec: dict[str, object], bundle: str, p: Problems) -> None:
    hooks = _obj(spec, "hooks", "hooks", p)
    if hooks is None:
        return
    for name in hooks:
        if name not in HOOK_NAMES:
            p.append(f"hooks.{name}: unknown hook (one of: {', '.join(HOOK_NAMES)})")
            continue
        for i, hook in enumerate(_list(hooks, name, f"hooks.{name}", p)):
            where = f"hooks.{name}[{i}]"
            if not isinstance(hook, dict):
                p.append(f"{where}: must be an object, not {_kind(hook)}")
                continue
            if hook.get("path") is None:
                p.append(f"{where}.path: missing")
            else:
                _abs_path(hook["path"], f"{where}.path", p)
            _str_list(hook, "args", f"{where}.args", p)
            _env(hook, "env", f"{where}.env", p)
            timeout = hook.get("timeout")
            if timeout is not None and (isinstance(timeout, bool)
                                        or not isinstance(timeout, int) or timeout <= 0):
                p.append(f"{where}.timeout: must be a whole number of seconds above 0, "
                         f"not {json.dumps(timeout)}")


def check_annotations(spec: dict[str, object], bundle: str, p: Problems) -> None:
    annotations = _str_map(spec, "annotations", "annotations", p)
    if "" in annotations:
        p.append("annotations: keys must not be empty")


CHECKS: tuple[Callable[[dict[str, object], str, Problems], None], ...] = (
    check_version,
    check_root,
    check_process,
    check_user,
    check_rlimits,
    check_capabilities,
    check_linux,
    check_namespaces,
    check_id_mappings,
    check_uts,
    check_mounts,
    check_devices,
    check_sysctl,
    check_linux_paths,
    check_resources,
    check_seccomp,
    check_hooks,
    check_annotations,
)


def problems(spec: dict[str, object], bundle: str) -> list[str]:
    """Every problem in ``spec``, as "field.path: what is wrong" (empty if none)."""
    found: list[str] = []
    for check in CHECKS:
        check(spec, bundle, found)
    return found


def validate(spec: dict[str, object], bundle: str) -> None:
    """Raise InvalidArgument listing every problem in ``spec``, one per line.

    ``bundle`` is the directory that relative root.path values are taken from.
    The exception's ``problems`` attribute holds the lines without the prefix.
    """
    found = problems(spec, bundle)
    if found:
        error = InvalidArgument("\n".join(f"{CONFIG_NAME}: {line}" for line in found))
        error.problems = found  # type: ignore[attr-defined]
        raise error
