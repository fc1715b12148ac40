"""hutch.runtime.seccomp: OCI linux.seccomp -> libseccomp filter, checked by running
the filter's BPF program here (the ``evaluate`` fixture), never loading it."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest

from hutch.errors import InvalidArgument, Unsupported
from hutch.runtime import seccomp

EXEC = {"names": ["execve", "execveat"], "action": "SCMP_ACT_ALLOW"}


def profile(default: str = "SCMP_ACT_ALLOW", *rules: dict[str, Any],
            **extra: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"defaultAction": default, "syscalls": list(rules)}
    p.update(extra)
    return p


def rule(names: str | list[str], action: str = "SCMP_ACT_ERRNO", *args: dict[str, Any],
         **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"names": [names] if isinstance(names, str) else names,
                         "action": action}
    if args:
        r["args"] = list(args)
    r.update(extra)
    return r


def arg(index: int, op: str, value: int = 0, value_two: int | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {"index": index, "value": value, "op": op}
    if value_two is not None:
        a["valueTwo"] = value_two
    return a


# --- actions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("action, errno_ret, expected", [
    ("SCMP_ACT_KILL", None, ("KILL_THREAD", 0)),
    ("SCMP_ACT_KILL_THREAD", None, ("KILL_THREAD", 0)),
    ("SCMP_ACT_KILL_PROCESS", None, ("KILL_PROCESS", 0)),
    ("SCMP_ACT_TRAP", None, ("TRAP", 0)),
    ("SCMP_ACT_ERRNO", None, ("ERRNO", 1)),     # EPERM when errnoRet is absent
    ("SCMP_ACT_ERRNO", 38, ("ERRNO", 38)),
    ("SCMP_ACT_ERRNO", 0, ("ERRNO", 0)),
    ("SCMP_ACT_TRACE", None, ("TRACE", 1)),
    ("SCMP_ACT_TRACE", 4242, ("TRACE", 4242)),
    ("SCMP_ACT_LOG", None, ("LOG", 0)),
    ("SCMP_ACT_LOG", 5, ("LOG", 0)),            # errnoRet ignored, as runc does
])
def test_rule_actions(evaluate, action: str, errno_ret: int | None,
                      expected: tuple[str, int]) -> None:
    extra = {} if errno_ret is None else {"errnoRet": errno_ret}
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW", rule("mkdir", action, **extra)))
    assert evaluate(filt, "mkdir") == expected
    assert evaluate(filt, "rmdir") == ("ALLOW", 0)


def test_allow_rule_under_a_denying_default(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ERRNO", EXEC, rule("getpid", "SCMP_ACT_ALLOW")))
    assert evaluate(filt, "getpid") == ("ALLOW", 0)
    assert evaluate(filt, "getppid") == ("ERRNO", 1)


@pytest.mark.parametrize("action, errno_ret, expected", [
    ("SCMP_ACT_KILL", None, ("KILL_THREAD", 0)),
    ("SCMP_ACT_KILL_THREAD", None, ("KILL_THREAD", 0)),
    ("SCMP_ACT_KILL_PROCESS", None, ("KILL_PROCESS", 0)),
    ("SCMP_ACT_TRAP", None, ("TRAP", 0)),
    ("SCMP_ACT_ERRNO", None, ("ERRNO", 1)),
    ("SCMP_ACT_ERRNO", 13, ("ERRNO", 13)),
    ("SCMP_ACT_TRACE", None, ("TRACE", 1)),
    ("SCMP_ACT_TRACE", 7, ("TRACE", 7)),
    ("SCMP_ACT_LOG", None, ("LOG", 0)),
    ("SCMP_ACT_ALLOW", None, ("ALLOW", 0)),
])
def test_default_actions(evaluate, action: str, errno_ret: int | None,
                         expected: tuple[str, int]) -> None:
    extra = {} if errno_ret is None else {"defaultErrnoRet": errno_ret}
    filt = seccomp.prepare(profile(action, EXEC, **extra))
    assert evaluate(filt, "rmdir") == expected
    assert filt.default_action == action


@pytest.mark.parametrize("where, p", [
    ("linux.seccomp.defaultAction", profile("SCMP_ACT_NOTIFY", EXEC)),
    ("linux.seccomp.syscalls[1].action",
     profile("SCMP_ACT_ALLOW", EXEC, rule("mkdir", "SCMP_ACT_NOTIFY"))),
])
def test_notify_is_unsupported(where: str, p: dict[str, Any]) -> None:
    with pytest.raises(Unsupported) as info:
        seccomp.prepare(p)
    assert str(info.value).startswith(f"{where}: SCMP_ACT_NOTIFY is not supported")


def test_a_rule_like_the_default_is_skipped(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ERRNO", EXEC, rule("mkdir", "SCMP_ACT_ERRNO"),
                                   rule("rmdir", "SCMP_ACT_ERRNO", errnoRet=2)))
    assert filt.rules == 3  # execve, execveat, rmdir: mkdir's rule is the default's
    assert evaluate(filt, "mkdir") == ("ERRNO", 1)
    assert evaluate(filt, "rmdir") == ("ERRNO", 2)


def test_the_first_unconditional_rule_of_a_name_wins(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW",
                                   rule("mkdir", "SCMP_ACT_ERRNO", arg(0, "SCMP_CMP_EQ", 1)),
                                   rule("mkdir", "SCMP_ACT_ERRNO", errnoRet=5),
                                   rule("mkdir", "SCMP_ACT_KILL")))
    assert evaluate(filt, "mkdir", 1) == ("ERRNO", 5)
    assert evaluate(filt, "mkdir", 2) == ("ERRNO", 5)
    assert filt.verdict("mkdir") == "deny"


# --- argument conditions ----------------------------------------------------------------------

@pytest.mark.parametrize("op, value, value_two, matching, not_matching", [
    ("SCMP_CMP_NE", 5, None, [0, 4, 6, 1 << 40], [5]),
    ("SCMP_CMP_LT", 5, None, [0, 4], [5, 6, 1 << 40]),
    ("SCMP_CMP_LE", 5, None, [0, 5], [6, 1 << 40]),
    ("SCMP_CMP_EQ", 5, None, [5], [0, 4, 6, (1 << 32) | 5]),
    ("SCMP_CMP_GE", 5, None, [5, 6, 1 << 40], [0, 4]),
    ("SCMP_CMP_GT", 5, None, [6, 1 << 40], [0, 5]),
    ("SCMP_CMP_MASKED_EQ", 0xF0, 0x30, [0x30, 0x35, 0x13F], [0x40, 0x05, 0x20]),
    ("SCMP_CMP_MASKED_EQ", 0x7E020000, 0, [0, 0x3D0F00, 0x11], [0x10000000, 0x20000]),
    ("SCMP_CMP_EQ", (1 << 32) | 5, None, [(1 << 32) | 5], [5]),  # all 64 bits count
    ("SCMP_CMP_EQ", (1 << 64) - 1, None, [(1 << 64) - 1], [0xFFFFFFFF]),
])
def test_operators(evaluate, op: str, value: int, value_two: int | None,
                   matching: list[int], not_matching: list[int]) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW",
                                   rule("umask", "SCMP_ACT_ERRNO", arg(0, op, value, value_two))))
    for v in matching:
        assert evaluate(filt, "umask", v) == ("ERRNO", 1), hex(v)
    for v in not_matching:
        assert evaluate(filt, "umask", v) == ("ALLOW", 0), hex(v)


def test_conditions_on_different_arguments_must_all_hold(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW", rule(
        "kill", "SCMP_ACT_ERRNO", arg(0, "SCMP_CMP_EQ", 1), arg(1, "SCMP_CMP_EQ", 9))))
    assert evaluate(filt, "kill", 1, 9) == ("ERRNO", 1)
    assert evaluate(filt, "kill", 1, 15) == ("ALLOW", 0)
    assert evaluate(filt, "kill", 2, 9) == ("ALLOW", 0)


def test_conditions_on_the_same_argument_are_alternatives(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW", rule(
        "umask", "SCMP_ACT_ERRNO", arg(0, "SCMP_CMP_LT", 5), arg(0, "SCMP_CMP_GT", 9))))
    assert [evaluate(filt, "umask", v)[0] for v in (3, 5, 7, 9, 12)] == \
        ["ERRNO", "ALLOW", "ALLOW", "ALLOW", "ERRNO"]
    assert filt.rules == 2


def test_argument_index_five(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW",
                                   rule("mmap", "SCMP_ACT_ERRNO", arg(5, "SCMP_CMP_EQ", 7))))
    assert evaluate(filt, "mmap", 0, 0, 0, 0, 0, 7) == ("ERRNO", 1)
    assert evaluate(filt, "mmap", 7, 7, 7, 7, 7, 0) == ("ALLOW", 0)


def test_conditional_verdicts() -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW",
                                   rule("umask", "SCMP_ACT_ERRNO", arg(0, "SCMP_CMP_EQ", 1))))
    assert (filt.verdict("umask"), filt.verdict("read")) == ("depends", "allow")


# --- architectures ----------------------------------------------------------------------------

def test_native_architecture_only_by_default(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW", rule("mkdir")))
    assert evaluate(filt, "mkdir") == ("ERRNO", 1)
    # a 32-bit x86 call is of an architecture the filter does not cover: killed
    assert evaluate(filt, "getpid", arch="SCMP_ARCH_X86") == ("KILL_THREAD", 0)


def test_added_architectures_get_the_same_rules(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW", rule(["mkdir", "socketcall"]),
                                   architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                                  "SCMP_ARCH_X32"]))
    assert evaluate(filt, "mkdir", arch="SCMP_ARCH_X86") == ("ERRNO", 1)
    assert evaluate(filt, "getpid", arch="SCMP_ARCH_X86") == ("ALLOW", 0)
    # socketcall exists on i386 only: its rule is there, and x86_64 has nothing to skip
    assert evaluate(filt, "socketcall", arch="SCMP_ARCH_X86") == ("ERRNO", 1)
    assert filt.skipped == []
    # an x32 call: x86_64's arch with bit 30 in the number
    assert evaluate(filt, "mkdir", x32=True) == ("ERRNO", 1)
    assert evaluate(filt, "getpid", x32=True) == ("ALLOW", 0)


def test_without_x32_its_calls_are_killed(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW", rule("mkdir"),
                                   architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]))
    assert evaluate(filt, "getpid", x32=True) == ("KILL_THREAD", 0)


def test_architecture_of_the_other_byte_order_is_unsupported() -> None:
    with pytest.raises(Unsupported, match=r"^linux\.seccomp\.architectures\[1\]: "
                                          r"SCMP_ARCH_S390X cannot be filtered on this host "
                                          r"\(its byte order differs"):
        seccomp.prepare(profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"]))


def test_architecture_this_libseccomp_lacks_is_unsupported() -> None:
    if "SCMP_ARCH_LOONGARCH64" in seccomp.supported_architectures():
        pytest.skip("this libseccomp knows loongarch64")
    with pytest.raises(Unsupported, match=r"^linux\.seccomp\.architectures\[0\]: "
                                          r"SCMP_ARCH_LOONGARCH64 .*does not know it"):
        seccomp.prepare(profile(architectures=["SCMP_ARCH_LOONGARCH64"]))


def test_supported_architectures() -> None:
    archs = seccomp.supported_architectures()
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(archs)
    assert set(archs) <= set(seccomp.ARCHITECTURES)


# --- flags ------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
def test_each_flag(flag: str) -> None:
    if flag not in seccomp.supported_flags():
        pytest.skip(f"{flag}: not supported by this kernel")
    filt = seccomp.prepare(profile(flags=[flag]))
    assert filt.flags == [flag]


def test_all_flags_together() -> None:
    flags = seccomp.supported_flags()
    assert seccomp.prepare(profile(flags=flags)).flags == flags


def test_no_flags_means_spec_allow_where_supported() -> None:
    expected = (["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
                if "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in seccomp.supported_flags() else [])
    assert seccomp.prepare(profile()).flags == expected
    assert seccomp.prepare(profile(flags=[])).flags == []


def test_unknown_flag_is_named() -> None:
    with pytest.raises(InvalidArgument, match=r'^linux\.seccomp\.flags\[1\]: unknown flag '
                                              r'"SECCOMP_FILTER_FLAG_FOO" \(one of: '):
        seccomp.prepare(profile(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_FOO"]))


def test_wait_killable_recv_needs_notify() -> None:
    with pytest.raises(Unsupported, match=r"^linux\.seccomp\.flags\[0\]: "
                                          r"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only applies "
                                          r"to SCMP_ACT_NOTIFY"):
        seccomp.prepare(profile(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))


def test_supported_flags_are_known() -> None:
    assert set(seccomp.supported_flags()) <= set(seccomp.KNOWN_FLAGS)
    assert "SECCOMP_FILTER_FLAG_TSYNC" in seccomp.supported_flags()


# --- names ------------------------------------------------------------------------------------

def test_unknown_names_are_skipped_and_listed(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW", rule(["mkdir", "no_such_call"]),
                                   rule(["also_not_a_call"], "SCMP_ACT_KILL")))
    assert filt.skipped == ["linux.seccomp.syscalls[0].names[1]: no_such_call",
                            "linux.seccomp.syscalls[1].names[0]: also_not_a_call"]
    assert evaluate(filt, "mkdir") == ("ERRNO", 1)
    assert filt.rules == 1


# --- exec -------------------------------------------------------------------------------------

def test_exec_verdicts_of_a_permissive_profile() -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW", rule("mkdir")))
    assert (filt.allows_execve, filt.allows_execveat) == (True, True)


def test_log_counts_as_allowing() -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_LOG"))
    assert (filt.allows_execve, filt.allows_execveat) == (True, True)


def test_execveat_denied_but_execve_allowed() -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ALLOW", rule("execveat", errnoRet=38)))
    assert (filt.allows_execve, filt.allows_execveat) == (True, False)


def test_execveat_allowed_only_sometimes_counts_as_not_allowed() -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ERRNO", rule("execve", "SCMP_ACT_ALLOW"),
                                   rule("execveat", "SCMP_ACT_ALLOW",
                                        arg(4, "SCMP_CMP_EQ", 0x1000))))
    assert filt.verdict("execveat") == "depends"
    assert (filt.allows_execve, filt.allows_execveat) == (True, False)


@pytest.mark.parametrize("p", [
    profile("SCMP_ACT_ERRNO"),
    profile("SCMP_ACT_ERRNO", rule("execveat", "SCMP_ACT_ALLOW")),
    profile("SCMP_ACT_ALLOW", rule("execve", "SCMP_ACT_KILL_PROCESS")),
    profile("SCMP_ACT_ALLOW", rule("execve", "SCMP_ACT_TRACE")),
])
def test_a_profile_denying_execve_is_refused(p: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument, match=r"^linux\.seccomp: the profile denies execve"):
        seccomp.prepare(p)


def test_prepare_adds_no_rule_of_its_own(evaluate) -> None:
    filt = seccomp.prepare(profile("SCMP_ACT_ERRNO", rule("execve", "SCMP_ACT_ALLOW")))
    assert filt.rules == 1
    assert evaluate(filt, "execveat") == ("ERRNO", 1)


# --- errors name the field --------------------------------------------------------------------

GOOD = profile("SCMP_ACT_ERRNO", EXEC, rule("mkdir", "SCMP_ACT_ALLOW"),
               rule("rmdir", "SCMP_ACT_ALLOW"),
               rule("umask", "SCMP_ACT_ALLOW", arg(0, "SCMP_CMP_EQ", 0)))


def broken(path: str, value: Any) -> dict[str, Any]:
    """GOOD with the value at ``path`` (dots and [n]) replaced; ``...`` deletes it."""
    p = copy.deepcopy(GOOD)
    parts = path.replace("]", "").replace("[", ".").split(".")
    obj: Any = p
    for part in parts[:-1]:
        obj = obj[int(part)] if part.isdigit() else obj[part]
    last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if value is ...:
        del obj[last]
    else:
        obj[last] = value
    return p


@pytest.mark.parametrize("path, value, message", [
    ("syscalls[3].args[0].op", "SCMP_CMP_FOO",
     'linux.seccomp.syscalls[3].args[0].op: unknown operator "SCMP_CMP_FOO" (one of: '
     "SCMP_CMP_EQ, "),
    ("syscalls[3].args[0].op", ..., "linux.seccomp.syscalls[3].args[0].op: missing"),
    ("syscalls[3].args[0].op", 4, "linux.seccomp.syscalls[3].args[0].op: must be a string, "
                                  "not a number"),
    ("syscalls[3].args[0].index", 6,
     "linux.seccomp.syscalls[3].args[0].index: 6 is out of range (0 to 5)"),
    ("syscalls[3].args[0].index", ..., "linux.seccomp.syscalls[3].args[0].index: missing"),
    ("syscalls[3].args[0].index", "0",
     "linux.seccomp.syscalls[3].args[0].index: must be an integer, not a string"),
    ("syscalls[3].args[0].value", -1,
     "linux.seccomp.syscalls[3].args[0].value: -1 is out of range (0 to 18446744073709551615)"),
    ("syscalls[3].args[0].value", True,
     "linux.seccomp.syscalls[3].args[0].value: must be an integer, not a boolean"),
    ("syscalls[3].args[0].valueTwo", 1 << 64,
     "linux.seccomp.syscalls[3].args[0].valueTwo: 18446744073709551616 is out of range"),
    ("syscalls[3].args[0]", "x", "linux.seccomp.syscalls[3].args[0]: must be an object, "
                                 "not a string"),
    ("syscalls[3].args", {}, "linux.seccomp.syscalls[3].args: must be a list, not an object"),
    ("syscalls[2].names", [], "linux.seccomp.syscalls[2].names: must list at least one "
                              "system call"),
    ("syscalls[2].names", ..., "linux.seccomp.syscalls[2].names: must list at least one"),
    ("syscalls[2].names", "rmdir", "linux.seccomp.syscalls[2].names: must be a list, "
                                   "not a string"),
    ("syscalls[2].names[0]", 3, "linux.seccomp.syscalls[2].names[0]: must be a system call "
                                "name, not 3"),
    ("syscalls[2].names[0]", "", 'linux.seccomp.syscalls[2].names[0]: must be a system call '
                                 'name, not ""'),
    ("syscalls[1].action", ..., "linux.seccomp.syscalls[1].action: missing"),
    ("syscalls[1].action", "SCMP_ACT_MAYBE",
     'linux.seccomp.syscalls[1].action: unknown action "SCMP_ACT_MAYBE" (one of: '),
    ("syscalls[1].errnoRet", 65536,
     "linux.seccomp.syscalls[1].errnoRet: 65536 is out of range (0 to 65535)"),
    ("syscalls[1].errnoRet", -1, "linux.seccomp.syscalls[1].errnoRet: -1 is out of range"),
    ("syscalls[1]", ["mkdir"], "linux.seccomp.syscalls[1]: must be an object, not a list"),
    ("syscalls", {}, "linux.seccomp.syscalls: must be a list, not an object"),
    ("defaultAction", ..., "linux.seccomp.defaultAction: missing"),
    ("defaultAction", "SCMP_ACT_KILL_ALL",
     'linux.seccomp.defaultAction: unknown action "SCMP_ACT_KILL_ALL"'),
    ("defaultErrnoRet", "1", "linux.seccomp.defaultErrnoRet: must be an integer, not a string"),
    ("architectures", "SCMP_ARCH_X86", "linux.seccomp.architectures: must be a list, "
                                       "not a string"),
    ("architectures", ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"],
     'linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_Z80" (one of: '),
    ("architectures", [64], "linux.seccomp.architectures[0]: must be a string, not a number"),
    ("flags", "SECCOMP_FILTER_FLAG_LOG", "linux.seccomp.flags: must be a list, not a string"),
    ("flags", [None], "linux.seccomp.flags[0]: must be a string, not null"),
])
def test_errors_name_the_field(path: str, value: Any, message: str) -> None:
    seccomp.prepare(GOOD)  # the unbroken profile is fine
    with pytest.raises(InvalidArgument) as info:
        seccomp.prepare(broken(path, value))
    assert str(info.value).startswith(message), str(info.value)


def test_not_an_object() -> None:
    with pytest.raises(InvalidArgument, match=r"^linux\.seccomp: must be an object, not a list"):
        seccomp.prepare([])  # type: ignore[arg-type]


def test_where_prefixes_the_fields() -> None:
    with pytest.raises(InvalidArgument, match=r"^seccomp\.defaultAction: missing"):
        seccomp.prepare({}, where="seccomp")


# --- the binding and features -----------------------------------------------------------------

def test_features() -> None:
    f = seccomp.features()
    assert f["enabled"] is True
    assert "SCMP_ACT_NOTIFY" not in f["actions"]  # type: ignore[operator]
    assert set(f["actions"]) == set(seccomp.ACTIONS) - {"SCMP_ACT_NOTIFY"}  # type: ignore[arg-type]
    assert f["operators"] == sorted(seccomp.OPERATORS)
    assert f["archs"] == seccomp.supported_architectures()
    assert f["knownFlags"] == list(seccomp.KNOWN_FLAGS)
    assert f["supportedFlags"] == seccomp.supported_flags()


def test_api_level() -> None:
    assert seccomp.api_level() >= 1


def test_missing_binding_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp, "_binding", None)
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # import pyseccomp -> ImportError
    with pytest.raises(Unsupported, match=r"^linux\.seccomp: the libseccomp binding is not "
                                          r"installed \(the pyseccomp package\)"):
        seccomp.prepare(profile())
    assert seccomp.available() is False
    assert seccomp.features() == {"enabled": False}


def test_binding_import_leaves_ctypes_util_alone() -> None:
    import subprocess
    code = ("import sys, ctypes; from hutch.runtime import seccomp; seccomp.binding(); "
            "print('ctypes.util' in sys.modules, hasattr(ctypes, 'util'), "
            "'subprocess' in sys.modules); import ctypes.util; "
            "print(ctypes.util.find_library('c') is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False", "False", "True"]
