"""Each security field of config.json gets a message naming it when it is wrong:
every capability set, noNewPrivileges, every seccomp field, idmapped mounts.
(test_validate.py has the general cases; these fill in the rest field by field.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from hutch.errors import InvalidArgument
from hutch.oci.defaults import default_spec
from hutch.oci.runtime_spec import validate

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
ALLOW = "SCMP_ACT_ALLOW"
MAP = [{"containerID": 0, "hostID": 1000, "size": 1}]


def problem_of(spec: dict, tmp_path: Path) -> str:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    with pytest.raises(InvalidArgument) as info:
        validate(spec, str(tmp_path))
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


@pytest.mark.parametrize("which", SETS)
@pytest.mark.parametrize(("value", "where", "message"), [
    (["CAP_CHOWN", "CAP_TELEPORT"], "[1]", 'unknown capability "CAP_TELEPORT"'),
    (["chown"], "[0]", 'unknown capability "chown"'),
    ("CAP_CHOWN", "", "must be a list, not a string"),
    ([7], "[0]", "must be a string, not a number"),
    ({"CAP_CHOWN": True}, "", "must be a list, not an object"),
])
def test_every_capability_set(tmp_path, which, value, where, message) -> None:
    spec = default_spec()
    spec["process"]["capabilities"][which] = value
    assert problem_of(spec, tmp_path) == f"process.capabilities.{which}{where}: {message}"


@pytest.mark.parametrize("value", [1, "yes", [True], {}])
def test_no_new_privileges_must_be_a_boolean(tmp_path, value) -> None:
    spec = default_spec()
    spec["process"]["noNewPrivileges"] = value
    problem = problem_of(spec, tmp_path)
    assert problem.startswith("process.noNewPrivileges: must be true or false, not "), problem


def _rule(**extra: object) -> dict:
    return {"names": ["read"], "action": "SCMP_ACT_ERRNO", **extra}


@pytest.mark.parametrize(("seccomp", "expected"), [
    ({"defaultAction": ALLOW, "defaultErrnoRet": -1},
     "linux.seccomp.defaultErrnoRet: -1 is out of range (0 to 4294967295)"),
    ({"defaultAction": ALLOW, "defaultErrnoRet": "EPERM"},
     "linux.seccomp.defaultErrnoRet: must be an integer, not a string"),
    ({"defaultAction": 1}, "linux.seccomp.defaultAction: must be a string, not a number"),
    ({"defaultAction": ALLOW, "listenerPath": 5},
     "linux.seccomp.listenerPath: must be a string, not a number"),
    ({"defaultAction": ALLOW, "flags": "SECCOMP_FILTER_FLAG_LOG"},
     "linux.seccomp.flags: must be a list, not a string"),
    ({"defaultAction": ALLOW, "syscalls": ["read"]},
     "linux.seccomp.syscalls[0]: must be an object, not a string"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": "read", "action": ALLOW}]},
     "linux.seccomp.syscalls[0].names: must be a list, not a string"),
    ({"defaultAction": ALLOW, "syscalls": [_rule(action="SCMP_ACT_DENY")]},
     'linux.seccomp.syscalls[0].action: unknown action "SCMP_ACT_DENY" (one of: '
     "SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, "
     "SCMP_ACT_KILL_THREAD, SCMP_ACT_LOG, SCMP_ACT_NOTIFY, SCMP_ACT_TRACE, SCMP_ACT_TRAP)"),
    ({"defaultAction": ALLOW, "syscalls": [_rule(errnoRet=True)]},
     "linux.seccomp.syscalls[0].errnoRet: must be an integer, not a boolean"),
    ({"defaultAction": ALLOW, "syscalls": [_rule(args=[3])]},
     "linux.seccomp.syscalls[0].args[0]: must be an object, not a number"),
    ({"defaultAction": ALLOW, "syscalls": [_rule(args={"index": 0})]},
     "linux.seccomp.syscalls[0].args: must be a list, not an object"),
    ({"defaultAction": ALLOW,
      "syscalls": [_rule(args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}])]},
     "linux.seccomp.syscalls[0].args[0].value: 18446744073709551616 is out of range "
     "(0 to 18446744073709551615)"),
    ({"defaultAction": ALLOW,
      "syscalls": [_rule(args=[{"index": 0, "valueTwo": "1", "op": "SCMP_CMP_MASKED_EQ"}])]},
     "linux.seccomp.syscalls[0].args[0].valueTwo: must be an integer, not a string"),
    ({"defaultAction": ALLOW,
      "syscalls": [_rule(args=[{"index": 0, "value": 1}])]},
     "linux.seccomp.syscalls[0].args[0].op: missing"),
])
def test_every_seccomp_field(tmp_path, seccomp, expected) -> None:
    spec = default_spec()
    spec["linux"]["seccomp"] = seccomp
    assert problem_of(spec, tmp_path) == expected


@pytest.mark.parametrize(("mount", "expected"), [
    ({"options": ["rbind", "idmap"], "uidMappings": MAP},
     "mounts[7].gidMappings: missing; an idmapped mount needs both uidMappings and "
     "gidMappings"),
    ({"options": ["rbind", "idmap"], "uidMappings": MAP,
      "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 0}]},
     "mounts[7].gidMappings[0].size: must be greater than 0"),
    ({"options": ["rbind"], "uidMappings": MAP, "gidMappings": [{"hostID": 1, "size": 1}]},
     "mounts[7].gidMappings[0].containerID: missing"),
    ({"type": "tmpfs", "options": ["idmap"], "uidMappings": MAP, "gidMappings": MAP},
     'mounts[7].uidMappings: only bind mounts can be idmapped (add "bind" or "rbind" to the '
     "options)"),
])
def test_idmapped_mount_fields(tmp_path, mount, expected) -> None:
    spec = default_spec()
    spec["mounts"].append({"destination": "/v", "source": "/srv", **mount})
    assert problem_of(spec, tmp_path) == expected
