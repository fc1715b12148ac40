"""Tests for hutch.oci.runtime_spec: loading config.json and validating it."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hutch.errors import InvalidArgument, NotFound
from hutch.oci.defaults import default_spec
from hutch.oci.runtime_spec import load_config, problems, validate

Spec = dict


@pytest.fixture
def bundle(tmp_path: Path) -> str:
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


@pytest.fixture
def spec() -> Spec:
    return default_spec()


def lines_of(spec: Spec, bundle: str) -> list[str]:
    """The lines of the InvalidArgument that validate() raises (it must raise)."""
    with pytest.raises(InvalidArgument) as info:
        validate(spec, bundle)
    lines = str(info.value).splitlines()
    assert all(line.startswith("config.json: ") for line in lines), lines
    assert info.value.problems == [line.removeprefix("config.json: ") for line in lines]
    return lines


def the_problem(spec: Spec, bundle: str) -> str:
    """The one problem validate() reports, without the "config.json: " prefix."""
    lines = lines_of(spec, bundle)
    assert len(lines) == 1, lines
    return lines[0].removeprefix("config.json: ")


# --------------------------------------------------------------- valid configs


def test_default_spec_is_valid(spec: Spec, bundle: str) -> None:
    validate(spec, bundle)
    assert problems(spec, bundle) == []


def test_rootless_default_spec_is_valid(bundle: str) -> None:
    validate(default_spec(rootless=True, uid=1000, gid=1000), bundle)


def test_unknown_top_level_keys_are_ignored(spec: Spec, bundle: str) -> None:
    spec["org.example.extension"] = {"anything": [1, 2]}
    spec["vm"] = {"hypervisor": {"path": "/bin/qemu"}}
    validate(spec, bundle)


def test_full_featured_config_is_valid(spec: Spec, bundle: str) -> None:
    spec["domainname"] = "example.org"
    spec["process"].update({
        "consoleSize": {"height": 24, "width": 80},
        "user": {"uid": 1000, "gid": 1000, "umask": 0o22, "additionalGids": [5, 10]},
        "oomScoreAdj": -1000,
        "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"],
                         "permitted": ["CAP_CHOWN"], "inheritable": ["CAP_CHOWN"],
                         "ambient": ["CAP_CHOWN"]},
    })
    spec["mounts"].append({"destination": "/data", "type": "none", "source": "/srv",
                           "options": ["rbind", "idmap"],
                           "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                           "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]})
    linux = spec["linux"]
    linux["namespaces"].append({"type": "time"})
    linux["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        {"path": "/dev/myfifo", "type": "p"},
    ]
    linux["sysctl"] = {"kernel.shmmax": "1", "fs.mqueue.msg_max": "20",
                       "net.ipv4.ip_forward": "1", "net/ipv4/conf/eth0.100/rp_filter": "0",
                       "kernel.domainname": "example.org"}
    linux["rootfsPropagation"] = "rslave"
    linux["cgroupsPath"] = "/hutch/abc"
    linux["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                        "architectures": ["SCMP_ARCH_X86_64"],
                        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                                     {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                                      "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}
    spec["hooks"] = {name: [{"path": "/bin/true", "args": ["true"], "env": ["A=b"],
                             "timeout": 5}]
                     for name in ("prestart", "createRuntime", "createContainer",
                                  "startContainer", "poststart", "poststop")}
    spec["annotations"] = {"org.example.key": "value"}
    validate(spec, bundle)


def test_absolute_root_path(spec: Spec, bundle: str) -> None:
    spec["root"]["path"] = os.path.join(bundle, "rootfs")
    validate(spec, "/nonexistent-bundle")


# --------------------------------------------------------------- one problem each

Mutator = Callable[[Spec], None]


def _walk(spec: Spec, path: str) -> tuple[object, object]:
    """The container that dotted ``path`` ends in, and the last key (digits index lists)."""
    *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = spec
    for key in parents:
        node = node[key]
    return node, last


def setter(path: str, value: object) -> Mutator:
    def mutate(spec: Spec) -> None:
        node, last = _walk(spec, path)
        node[last] = value
    return mutate


def deleter(path: str) -> Mutator:
    def mutate(spec: Spec) -> None:
        node, last = _walk(spec, path)
        del node[last]
    return mutate


def both(*mutators: Mutator) -> Mutator:
    def mutate(spec: Spec) -> None:
        for m in mutators:
            m(spec)
    return mutate


def add_ns(ns: dict) -> Mutator:
    return lambda spec: spec["linux"]["namespaces"].append(ns)


def drop_ns(ns_type: str) -> Mutator:
    def mutate(spec: Spec) -> None:
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                       if n["type"] != ns_type]
    return mutate


def add_mount(mount: dict) -> Mutator:
    return lambda spec: spec["mounts"].append(mount)


def add_device(device: dict) -> Mutator:
    return lambda spec: spec["linux"].setdefault("devices", []).append(device)


MAP = [{"containerID": 0, "hostID": 1000, "size": 1}]

CASES: list[tuple[str, Mutator, str]] = [
    # ociVersion
    ("ociVersion", deleter("ociVersion"), "missing"),
    ("ociVersion", setter("ociVersion", 1), "must be a string, not a number"),
    ("ociVersion", setter("ociVersion", "2.0.0"), 'unsupported version "2.0.0"'),
    # root
    ("root", deleter("root"), "missing"),
    ("root", setter("root", "rootfs"), "must be an object, not a string"),
    ("root.path", deleter("root.path"), "missing"),
    ("root.path", setter("root.path", ""), "must not be empty"),
    ("root.path", setter("root.path", 7), "must be a string"),
    ("root.path", setter("root.path", "nothere"), "nothere does not exist"),
    ("root.readonly", setter("root.readonly", "yes"), "must be true or false, not a string"),
    # process
    ("process", deleter("process"), "missing"),
    ("process", setter("process", []), "must be an object, not a list"),
    ("process.args", setter("process.args", []), "non-empty list of strings"),
    ("process.args", deleter("process.args"), "non-empty list of strings"),
    ("process.args", setter("process.args", None), "non-empty list of strings"),
    ("process.args", setter("process.args", "sh"), "must be a list, not a string"),
    ("process.args[1]", setter("process.args", ["sh", 3]), "must be a string, not a number"),
    ("process.env", setter("process.env", "A=b"), "must be a list"),
    ("process.env[1]", setter("process.env", ["A=b", "NOEQUALS"]),
     '"NOEQUALS" is not of the form KEY=VALUE'),
    ("process.env[0]", setter("process.env", ["=x"]), "empty variable name"),
    ("process.env[0]", setter("process.env", ["A=\0"]), "NUL byte"),
    ("process.env[0]", setter("process.env", [None]), "must be a string, not null"),
    ("process.cwd", deleter("process.cwd"), "missing"),
    ("process.cwd", setter("process.cwd", "srv"), '"srv" is not an absolute path'),
    ("process.terminal", setter("process.terminal", 1), "must be true or false, not a number"),
    ("process.noNewPrivileges", setter("process.noNewPrivileges", "true"),
     "must be true or false"),
    ("process.consoleSize", setter("process.consoleSize", [24, 80]), "must be an object"),
    ("process.consoleSize.width", setter("process.consoleSize", {"height": 24}), "missing"),
    ("process.consoleSize.height", setter("process.consoleSize", {"height": -1, "width": 80}),
     "out of range"),
    ("process.oomScoreAdj", setter("process.oomScoreAdj", 1001), "out of range (-1000 to 1000)"),
    ("process.oomScoreAdj", setter("process.oomScoreAdj", -1001), "out of range"),
    ("process.oomScoreAdj", setter("process.oomScoreAdj", 1.5), "must be an integer"),
    ("process.oomScoreAdj", setter("process.oomScoreAdj", True), "must be an integer"),
    # process.user
    ("process.user", setter("process.user", 0), "must be an object, not a number"),
    ("process.user.uid", setter("process.user.uid", -1), "out of range"),
    ("process.user.uid", setter("process.user.uid", "0"), "must be an integer, not a string"),
    ("process.user.gid", setter("process.user.gid", 1 << 32), "out of range"),
    ("process.user.gid", setter("process.user.gid", 5.0), "must be an integer, not a number"),
    ("process.user.umask", setter("process.user.umask", "022"), "must be an integer"),
    ("process.user.additionalGids", setter("process.user.additionalGids", 5), "must be a list"),
    ("process.user.additionalGids[1]", setter("process.user.additionalGids", [5, "x"]),
     "must be an integer"),
    # rlimits
    ("process.rlimits", setter("process.rlimits", {}), "must be a list, not an object"),
    ("process.rlimits[0]", setter("process.rlimits", ["RLIMIT_NOFILE"]), "must be an object"),
    ("process.rlimits[0].type", setter("process.rlimits.0.type", "NOFILE"),
     'unknown rlimit "NOFILE" (one of: RLIMIT_AS, '),
    ("process.rlimits[0].type", deleter("process.rlimits.0.type"), "missing"),
    ("process.rlimits[0].hard", deleter("process.rlimits.0.hard"), "missing"),
    ("process.rlimits[0].soft", setter("process.rlimits.0.soft", "1024"), "must be an integer"),
    ("process.rlimits[0].soft", setter("process.rlimits.0.soft", 2048),
     "2048 is above the hard limit 1024"),
    ("process.rlimits[1].type",
     setter("process.rlimits", [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}] * 2),
     "duplicate RLIMIT_NOFILE (also at process.rlimits[0])"),
    # capabilities
    ("process.capabilities", setter("process.capabilities", ["CAP_KILL"]),
     "must be an object, not a list"),
    ("process.capabilities.bounding[1]",
     setter("process.capabilities.bounding", ["CAP_KILL", "CAP_FLY"]),
     'unknown capability "CAP_FLY"'),
    ("process.capabilities.ambient[0]", setter("process.capabilities.ambient", ["KILL"]),
     'unknown capability "KILL"'),
    ("process.capabilities.inheritable", setter("process.capabilities.inheritable", "CAP_KILL"),
     "must be a list"),
    ("process.capabilities.effective[0]", setter("process.capabilities.effective", [5]),
     "must be a string"),
    # hostname / domainname
    ("hostname", setter("hostname", 5), "must be a string, not a number"),
    ("hostname", drop_ns("uts"), "hostname requires a new UTS namespace"),
    ("domainname", both(deleter("hostname"), drop_ns("uts"), setter("domainname", "x.org")),
     "domainname requires a new UTS namespace"),
    # mounts
    ("mounts", setter("mounts", {}), "must be a list, not an object"),
    ("mounts[7]", add_mount("tmpfs"), "must be an object, not a string"),
    ("mounts[7].destination", add_mount({"type": "tmpfs", "source": "tmpfs"}), "missing"),
    ("mounts[7].destination", add_mount({"destination": "tmp", "type": "tmpfs"}),
     '"tmp" is not an absolute path'),
    ("mounts[7].type", add_mount({"destination": "/tmp", "type": 1}), "must be a string"),
    ("mounts[7].source", add_mount({"destination": "/tmp", "source": ["/a"]}),
     "must be a string, not a list"),
    ("mounts[7].options", add_mount({"destination": "/tmp", "options": "ro"}),
     "must be a list, not a string"),
    ("mounts[7].options[1]", add_mount({"destination": "/tmp", "options": ["ro", 1]}),
     "must be a string"),
    ("mounts[7].uidMappings[0].size",
     add_mount({"destination": "/d", "source": "/s", "options": ["bind"],
                "uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}],
                "gidMappings": MAP}), "must be greater than 0"),
    ("mounts[7].gidMappings",
     add_mount({"destination": "/d", "source": "/s", "options": ["bind"],
                "uidMappings": MAP}), "needs both uidMappings and gidMappings"),
    ("mounts[7].uidMappings",
     add_mount({"destination": "/d", "source": "/s", "options": ["idmap"],
                "uidMappings": MAP, "gidMappings": MAP}), "only bind mounts can be idmapped"),
    # linux
    ("linux", setter("linux", []), "must be an object, not a list"),
    # namespaces
    ("linux.namespaces", setter("linux.namespaces", {"pid": {}}), "must be a list"),
    ("linux.namespaces[6]", add_ns("pid"), "must be an object, not a string"),
    ("linux.namespaces[6].type", add_ns({"type": "foo"}),
     'unknown namespace type "foo" (one of: cgroup, ipc, mount, network, pid, time, user, uts)'),
    ("linux.namespaces[6].type", add_ns({"path": "/proc/1/ns/net"}), "missing"),
    ("linux.namespaces[6].type", add_ns({"type": "ipc"}),
     "duplicate ipc namespace (also at linux.namespaces[2])"),
    ("linux.namespaces[6].path", add_ns({"type": "time", "path": "proc/1/ns/time"}),
     '"proc/1/ns/time" is not an absolute path'),
    ("linux.namespaces[6].path", add_ns({"type": "time", "path": 3}), "must be a string"),
    # user namespace and id mappings
    ("linux.uidMappings", both(add_ns({"type": "user"}), setter("linux.gidMappings", MAP)),
     "missing; the new user namespace (linux.namespaces[6]) needs uid mappings"),
    ("linux.gidMappings", both(add_ns({"type": "user"}), setter("linux.uidMappings", MAP)),
     "missing; the new user namespace (linux.namespaces[6]) needs gid mappings"),
    ("linux.uidMappings", setter("linux.uidMappings", MAP),
     "given, but linux.namespaces has no user namespace"),
    ("linux.gidMappings", setter("linux.gidMappings", MAP),
     "given, but linux.namespaces has no user namespace"),
    ("linux.uidMappings[0].hostID",
     both(add_ns({"type": "user"}), setter("linux.gidMappings", MAP),
          setter("linux.uidMappings", [{"containerID": 0, "hostID": -5, "size": 1}])),
     "out of range"),
    ("linux.uidMappings[0].containerID",
     both(add_ns({"type": "user"}), setter("linux.gidMappings", MAP),
          setter("linux.uidMappings", [{"hostID": 5, "size": 1}])), "missing"),
    ("linux.gidMappings[0]",
     both(add_ns({"type": "user"}), setter("linux.uidMappings", MAP),
          setter("linux.gidMappings", ["0 1000 1"])), "must be an object"),
    # devices
    ("linux.devices", setter("linux.devices", {}), "must be a list"),
    ("linux.devices[0].path", add_device({"type": "c", "major": 1, "minor": 3}), "missing"),
    ("linux.devices[0].path", add_device({"path": "dev/null", "type": "c", "major": 1,
                                          "minor": 3}), "not an absolute path"),
    ("linux.devices[0].type", add_device({"path": "/dev/x", "type": "x", "major": 1,
                                          "minor": 3}),
     'unknown device type "x" (one of: b, c, p, u)'),
    ("linux.devices[0].type", add_device({"path": "/dev/x", "major": 1, "minor": 3}),
     "missing"),
    ("linux.devices[0].major", add_device({"path": "/dev/x", "type": "c", "minor": 3}),
     "missing"),
    ("linux.devices[0].minor", add_device({"path": "/dev/x", "type": "b", "major": 8}),
     "missing"),
    ("linux.devices[0].minor", add_device({"path": "/dev/x", "type": "b", "major": 8,
                                           "minor": "0"}), "must be an integer"),
    ("linux.devices[0].fileMode", add_device({"path": "/dev/x", "type": "p",
                                              "fileMode": "0666"}), "must be an integer"),
    ("linux.devices[0].uid", add_device({"path": "/dev/x", "type": "p", "uid": -1}),
     "out of range"),
    ("linux.devices[0].gid", add_device({"path": "/dev/x", "type": "p", "gid": "0"}),
     "must be an integer"),
    ("linux.devices[1].path",
     both(add_device({"path": "/dev/x", "type": "p"}), add_device({"path": "/dev/x",
                                                                   "type": "p"})),
     "duplicate device /dev/x (also at linux.devices[0])"),
    # sysctl
    ("linux.sysctl", setter("linux.sysctl", ["vm.swappiness=1"]), "must be an object"),
    ('linux.sysctl["kernel.shmmax"]', setter("linux.sysctl", {"kernel.shmmax": 1}),
     "must be a string, not a number"),
    ("linux.sysctl", setter("linux.sysctl", {"vm.swappiness": "1"}),
     'sysctl "vm.swappiness" is not in a separate kernel namespace'),
    ("linux.sysctl", both(drop_ns("ipc"), setter("linux.sysctl", {"kernel.msgmax": "1"})),
     'sysctl "kernel.msgmax" is not allowed in the host\'s IPC namespace'),
    ("linux.sysctl", both(drop_ns("ipc"), setter("linux.sysctl", {"fs.mqueue.msg_max": "1"})),
     'sysctl "fs.mqueue.msg_max" is not allowed in the host\'s IPC namespace'),
    ("linux.sysctl", both(drop_ns("network"),
                          setter("linux.sysctl", {"net.ipv4.ip_forward": "1"})),
     'sysctl "net.ipv4.ip_forward" is not allowed in the host\'s network namespace'),
    ("linux.sysctl", both(drop_ns("network"),
                          setter("linux.sysctl", {"net/ipv4/ip_forward": "1"})),
     'sysctl "net.ipv4.ip_forward" is not allowed'),
    ("linux.sysctl", both(drop_ns("network"),
                          add_ns({"type": "network", "path": "/proc/self/ns/net"}),
                          setter("linux.sysctl", {"net.core.somaxconn": "1"})),
     "not allowed in the host's network namespace (/proc/self/ns/net)"),
    ("linux.sysctl", both(drop_ns("uts"), deleter("hostname"),
                          setter("linux.sysctl", {"kernel.domainname": "x"})),
     'sysctl "kernel.domainname" needs a new UTS namespace'),
    ("linux.sysctl", setter("linux.sysctl", {"kernel.hostname": "x"}),
     'sysctl "kernel.hostname" conflicts with the hostname field'),
    ("linux.sysctl", setter("linux.sysctl", {"kernel.pid_max": "1"}),
     'sysctl "kernel.pid_max" is not in a separate kernel namespace'),
    # propagation, paths, cgroups, resources
    ("linux.rootfsPropagation", setter("linux.rootfsPropagation", "recursive"),
     'unknown propagation "recursive" (one of: "", private, rprivate, rshared, rslave, '
     'runbindable, shared, slave, unbindable)'),
    ("linux.rootfsPropagation", setter("linux.rootfsPropagation", 1), "must be a string"),
    ("linux.maskedPaths", setter("linux.maskedPaths", "/proc/kcore"), "must be a list"),
    ("linux.maskedPaths[1]", setter("linux.maskedPaths", ["/proc/kcore", "proc/keys"]),
     '"proc/keys" is not an absolute path'),
    ("linux.readonlyPaths[0]", setter("linux.readonlyPaths", [None]), "must be a string"),
    ("linux.cgroupsPath", setter("linux.cgroupsPath", 5), "must be a string"),
    ("linux.resources", setter("linux.resources", []), "must be an object, not a list"),
    # seccomp
    ("linux.seccomp", setter("linux.seccomp", "default"), "must be an object"),
    ("linux.seccomp.defaultAction", setter("linux.seccomp", {}), "missing"),
    ("linux.seccomp.defaultAction", setter("linux.seccomp", {"defaultAction": "ALLOW"}),
     'unknown action "ALLOW"'),
    ("linux.seccomp.syscalls", setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                                        "syscalls": {}}), "must be a list"),
    ("linux.seccomp.syscalls[0].names",
     setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                              "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}),
     "must list at least one system call"),
    ("linux.seccomp.syscalls[0].names[1]",
     setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                              "syscalls": [{"names": ["read", 0], "action": "SCMP_ACT_ERRNO"}]}),
     "must be a string"),
    ("linux.seccomp.syscalls[0].action",
     setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                              "syscalls": [{"names": ["read"]}]}), "missing"),
    ("linux.seccomp.syscalls[0].args[0].op",
     setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                              "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                            "args": [{"index": 0, "op": "=="}]}]}),
     'unknown operator "=="'),
    ("linux.seccomp.architectures", setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                                             "architectures": "x86"}),
     "must be a list"),
    ("linux.seccomp.architectures[1]",
     setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                              "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]}),
     'unknown architecture "SCMP_ARCH_VAX"'),
    ("linux.seccomp.flags[0]",
     setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                              "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}),
     'unknown flag "SECCOMP_FILTER_FLAG_NEW_LISTENER"'),
    ("linux.seccomp.syscalls[0].errnoRet",
     setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                              "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                            "errnoRet": -1}]}), "out of range"),
    ("linux.seccomp.syscalls[0].args[0].index",
     setter("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                              "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                            "args": [{"op": "SCMP_CMP_EQ"}]}]}), "missing"),
    # hooks
    ("hooks", setter("hooks", []), "must be an object, not a list"),
    ("hooks.preStart", setter("hooks", {"preStart": []}),
     "unknown hook (one of: prestart, createRuntime, createContainer, startContainer, "
     "poststart, poststop)"),
    ("hooks.poststop", setter("hooks", {"poststop": {"path": "/bin/true"}}), "must be a list"),
    ("hooks.prestart[0].path", setter("hooks", {"prestart": [{"args": ["x"]}]}), "missing"),
    ("hooks.createRuntime[0].path", setter("hooks", {"createRuntime": [{"path": "true"}]}),
     '"true" is not an absolute path'),
    ("hooks.poststart[0].args[0]", setter("hooks", {"poststart": [{"path": "/x", "args": [1]}]}),
     "must be a string"),
    ("hooks.startContainer[0].env[0]",
     setter("hooks", {"startContainer": [{"path": "/x", "env": ["NOVALUE"]}]}),
     "is not of the form KEY=VALUE"),
    ("hooks.createContainer[0].timeout",
     setter("hooks", {"createContainer": [{"path": "/x", "timeout": 0}]}),
     "must be a whole number of seconds above 0"),
    ("hooks.createContainer[0].timeout",
     setter("hooks", {"createContainer": [{"path": "/x", "timeout": 1.5}]}),
     "must be a whole number of seconds above 0"),
    # annotations
    ("annotations", setter("annotations", ["a=b"]), "must be an object, not a list"),
    ('annotations["a"]', setter("annotations", {"a": 1}), "must be a string, not a number"),
    ("annotations", setter("annotations", {"": "x"}), "keys must not be empty"),
]


@pytest.mark.parametrize(("field", "mutate", "fragment"), CASES,
                         ids=[f"{c[0]}:{c[2][:30]}" for c in CASES])
def test_problem_names_its_field(spec: Spec, bundle: str, field: str, mutate: Mutator,
                                 fragment: str) -> None:
    mutate(spec)
    problem = the_problem(spec, bundle)
    assert problem.startswith(f"{field}: "), problem
    assert fragment in problem, problem


def test_root_path_not_a_directory(spec: Spec, bundle: str) -> None:
    Path(bundle, "file").write_text("x")
    spec["root"]["path"] = "file"
    assert the_problem(spec, bundle) == f"root.path: {bundle}/file is not a directory"


def test_user_namespace_with_path_needs_no_mappings(spec: Spec, bundle: str) -> None:
    spec["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    validate(spec, bundle)


def test_kernel_hostname_allowed_with_uts_and_no_hostname_field(spec: Spec,
                                                                bundle: str) -> None:
    del spec["hostname"]
    spec["linux"]["sysctl"] = {"kernel.hostname": "box"}
    validate(spec, bundle)


def test_net_sysctl_with_a_joined_netns_that_is_not_ours(spec: Spec, bundle: str,
                                                         tmp_path: Path) -> None:
    other = tmp_path / "netns"
    other.write_text("")
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                   if n["type"] != "network"]
    spec["linux"]["namespaces"].append({"type": "network", "path": str(other)})
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    validate(spec, bundle)


def test_sysctl_slash_form_keeps_dots_inside_parts(spec: Spec, bundle: str) -> None:
    # net/ipv4/conf/eth0.100/rp_filter names interface "eth0.100"; it is a net.* key.
    spec["linux"]["sysctl"] = {"net/ipv4/conf/eth0.100/rp_filter": "1"}
    validate(spec, bundle)
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                   if n["type"] != "network"]
    assert '"net.ipv4.conf.eth0/100.rp_filter"' in the_problem(spec, bundle)


def test_pipe_device_needs_no_numbers(spec: Spec, bundle: str) -> None:
    spec["linux"]["devices"] = [{"path": "/dev/fifo", "type": "p"}]
    validate(spec, bundle)


def test_idmapped_mount_needs_a_bind(spec: Spec, bundle: str) -> None:
    spec["mounts"].append({"destination": "/d", "source": "/s", "options": ["bind"],
                           "uidMappings": MAP, "gidMappings": MAP})
    validate(spec, bundle)


def test_seccomp_without_syscalls_is_valid(spec: Spec, bundle: str) -> None:
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    validate(spec, bundle)


def test_every_problem_is_reported_in_one_error(spec: Spec, bundle: str) -> None:
    spec["ociVersion"] = "0.9"
    spec["process"]["args"] = []
    spec["linux"]["namespaces"].append({"type": "foo"})
    spec["linux"]["sysctl"] = {"vm.swappiness": "10"}
    spec["hooks"] = {"bogus": []}
    lines = lines_of(spec, bundle)
    fields = [line.split(": ")[1] for line in lines]
    assert fields == ["ociVersion", "process.args", "linux.namespaces[6].type",
                      "linux.sysctl", "hooks.bogus"]


def test_version_problem_comes_first(spec: Spec, bundle: str) -> None:
    spec["annotations"] = {"a": 1}
    spec["ociVersion"] = "3.0.0"
    lines = lines_of(spec, bundle)
    assert lines[0].startswith("config.json: ociVersion: ")


def test_validate_does_not_change_the_spec(spec: Spec, bundle: str) -> None:
    spec["linux"]["sysctl"] = {"net/ipv4/ip_forward": "1"}
    before = copy.deepcopy(spec)
    validate(spec, bundle)
    assert spec == before


def test_invalid_argument_is_a_value_error(spec: Spec, bundle: str) -> None:
    del spec["process"]
    with pytest.raises(ValueError, match=r"^config.json: process: missing$"):
        validate(spec, bundle)


def test_minimal_config(bundle: str) -> None:
    validate({"ociVersion": "1.0.2-dev", "root": {"path": "rootfs"},
              "process": {"args": ["/bin/true"], "cwd": "/"}}, bundle)


# --------------------------------------------------------------- load_config


def test_load_config_reads_the_json(bundle: str, spec: Spec) -> None:
    Path(bundle, "config.json").write_text(json.dumps(spec))
    assert load_config(bundle) == spec


def test_load_config_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"bundle .*/nope: no such directory"):
        load_config(str(tmp_path / "nope"))


def test_load_config_bundle_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(InvalidArgument, match=r"bundle .*/f: not a directory"):
        load_config(str(tmp_path / "f"))


def test_load_config_missing_config(bundle: str) -> None:
    with pytest.raises(NotFound) as info:
        load_config(bundle)
    message = str(info.value)
    assert message.startswith(f"config.json: no such file in bundle {bundle}")
    assert "hutch-runtime spec" in message


def test_load_config_malformed_json_names_line_and_column(bundle: str) -> None:
    Path(bundle, "config.json").write_text('{\n  "ociVersion": "1.2.0",\n  "root": }\n')
    with pytest.raises(InvalidArgument, match=r"^config.json: invalid JSON at line 3 column 11"):
        load_config(bundle)


def test_load_config_top_level_must_be_an_object(bundle: str) -> None:
    Path(bundle, "config.json").write_text("[1, 2]")
    with pytest.raises(InvalidArgument, match="top level must be a JSON object, not a list"):
        load_config(bundle)


def test_load_config_refuses_nan(bundle: str) -> None:
    Path(bundle, "config.json").write_text('{"process": {"oomScoreAdj": NaN}}')
    with pytest.raises(InvalidArgument, match="NaN is not valid JSON"):
        load_config(bundle)


def test_load_config_refuses_non_utf8(bundle: str) -> None:
    Path(bundle, "config.json").write_bytes(b'{"hostname": "\xff"}')
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        load_config(bundle)


def test_load_config_config_is_a_directory(bundle: str) -> None:
    Path(bundle, "config.json").mkdir()
    with pytest.raises(InvalidArgument, match="is a directory"):
        load_config(bundle)
