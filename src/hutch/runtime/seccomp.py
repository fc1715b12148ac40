"""Seccomp filters from the OCI ``linux.seccomp`` object, built with libseccomp.

The only module that imports the binding (pyseccomp: ctypes over
libseccomp.so.2), and only when a container asks for seccomp.

Two steps, because of where they run:

``prepare(seccomp)``
    imports the binding, loads libseccomp and builds the whole filter (a
    libseccomp context in C memory). It must run while the host's files are
    still reachable: before ``pivot_root`` in init, before ``setns`` into the
    container's mount namespace in exec. After that Python cannot import
    anything and the container's root has no libseccomp. Best is the runtime
    process itself, before it forks: the children inherit the filter, and a
    bad profile fails before anything is created.

``PreparedFilter.load()``
    one call, seccomp_load(3): libseccomp turns the context into BPF in
    memory and hands it to the kernel (prctl/seccomp system calls only: no
    import, no file). It runs last, just before the container's program is
    exec'd through the sealed trampoline (execveat of a memfd with
    AT_EMPTY_PATH, which then calls execve). So a profile must allow
    ``execve`` and ``execveat``; Docker's and hutch's default do. ``prepare``
    adds no rule of its own: a profile that denies execve fails in
    ``prepare`` (nothing could ever start), and one that does not certainly
    allow execveat sets ``allows_execveat`` False, and the caller then skips
    the trampoline and calls execve directly.

    Loading a filter needs CAP_SYS_ADMIN (in the current user namespace) or
    no_new_privs. With ``process.noNewPrivileges`` the filter is loaded just
    before the exec; without it, it must be loaded while the process still
    has its capabilities, before the user and capabilities are switched (as
    runc does), and then the profile must also allow what the runtime does
    after that (setgroups, setresuid, capset, prctl, chdir, open...).

Semantics follow runc's:

- libseccomp sets no_new_privs itself by default; that is turned off:
  ``process.noNewPrivileges`` decides.
- A rule whose action equals the default action is skipped (libseccomp
  refuses it).
- A system call name this libseccomp does not know is skipped and listed in
  ``PreparedFilter.skipped`` (runc logs them at debug level); a name known
  only on another architecture is added for the architectures that have it.
- Conditions of one rule must all hold, except when two of them test the
  same argument: then each condition becomes a rule of its own (either one
  matches), as Docker's profiles expect.
- ``errnoRet`` applies to SCMP_ACT_ERRNO and SCMP_ACT_TRACE (default EPERM)
  and is ignored for other actions.
- No ``flags`` at all means SECCOMP_FILTER_FLAG_SPEC_ALLOW where the kernel
  has it (runc 1.2's default: seccomp then does not force the speculative
  store bypass mitigation on); ``"flags": []`` means none.
  SECCOMP_FILTER_FLAG_TSYNC is set where the kernel has it and ignored where
  not: the process that loads the filter has one thread.
- SCMP_ACT_NOTIFY (and so listenerPath) is not supported.
- Unlike runc, the filter is not patched to return ENOSYS for system calls
  newer than the profile: those get the default action. hutch's default
  profile returns ENOSYS for clone3 and io_uring itself.
"""

from __future__ import annotations

import json

from hutch.common.jsonkind import json_kind as _kind
from hutch.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import IO

EPERM = 1

# Action values (libseccomp's seccomp.h; the kernel's SECCOMP_RET_* with data).
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000

ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_LETS_THROUGH = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")

# enum scmp_compare
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

# libseccomp's architecture tokens are the kernel's AUDIT_ARCH_* values
# (linux/audit.h): the ELF machine, 64-bit and little-endian bits.
_64, _LE, _N32 = 0x80000000, 0x40000000, 0x20000000
_EM_386, _EM_MIPS, _EM_PPC, _EM_PPC64, _EM_S390 = 3, 8, 20, 21, 22
_EM_ARM, _EM_X86_64, _EM_AARCH64, _EM_RISCV, _EM_LOONGARCH = 40, 62, 183, 243, 258
ARCHITECTURES: dict[str, int] = {
    "SCMP_ARCH_X86": _EM_386 | _LE,
    "SCMP_ARCH_X86_64": _EM_X86_64 | _64 | _LE,
    "SCMP_ARCH_X32": _EM_X86_64 | _LE,
    "SCMP_ARCH_ARM": _EM_ARM | _LE,
    "SCMP_ARCH_AARCH64": _EM_AARCH64 | _64 | _LE,
    "SCMP_ARCH_MIPS": _EM_MIPS,
    "SCMP_ARCH_MIPS64": _EM_MIPS | _64,
    "SCMP_ARCH_MIPS64N32": _EM_MIPS | _64 | _N32,
    "SCMP_ARCH_MIPSEL": _EM_MIPS | _LE,
    "SCMP_ARCH_MIPSEL64": _EM_MIPS | _64 | _LE,
    "SCMP_ARCH_MIPSEL64N32": _EM_MIPS | _64 | _LE | _N32,
    "SCMP_ARCH_PPC": _EM_PPC,
    "SCMP_ARCH_PPC64": _EM_PPC64 | _64,
    "SCMP_ARCH_PPC64LE": _EM_PPC64 | _64 | _LE,
    "SCMP_ARCH_S390": _EM_S390,
    "SCMP_ARCH_S390X": _EM_S390 | _64,
    "SCMP_ARCH_RISCV64": _EM_RISCV | _64 | _LE,
    "SCMP_ARCH_LOONGARCH64": _EM_LOONGARCH | _64 | _LE,
}

# enum scmp_filter_attr
_ATTR_CTL_NNP = 3
_ATTR_CTL_OPTIMIZE = 8
_ATTR_API_SYSRAWRC = 9  # the kernel's errno from seccomp_load, not ECANCELED
FLAG_ATTRIBUTES: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 4,       # SCMP_FLTATR_CTL_TSYNC
    "SECCOMP_FILTER_FLAG_LOG": 6,         # SCMP_FLTATR_CTL_LOG (API level 3)
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 7,  # SCMP_FLTATR_CTL_SSB (API level 4)
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 10,  # SCMP_FLTATR_CTL_WAITKILL (2.6)
}
KNOWN_FLAGS: tuple[str, ...] = tuple(FLAG_ATTRIBUTES)
# Only for SCMP_ACT_NOTIFY listeners, which hutch does not support.
_NOTIFY_FLAGS = ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",)

_MAX_ARGS = 6
_MAX_ERRNO = 0xFFFF  # SECCOMP_RET_DATA; the kernel caps it at MAX_ERRNO (4095)
_UINT64 = (1 << 64) - 1
_NR_SCMP_ERROR = -1
_OPTIMIZE_OVER = 32  # rules; libseccomp <= 2.5.4 misbehaves optimizing an empty filter

_binding: ModuleType | None = None


# ------------------------------------------------------------- the binding

def binding() -> ModuleType:
    """The pyseccomp module, imported on first use; Unsupported if it cannot be."""
    global _binding
    if _binding is None:
        _binding = _import_binding()
    return _binding


def _import_binding() -> ModuleType:
    try:
        return _import_pyseccomp(fast=True)
    except Unsupported:
        return _import_pyseccomp(fast=False)


def _import_pyseccomp(fast: bool) -> ModuleType:
    """Import pyseccomp; with ``fast``, behind a stand-in for ctypes.util.

    At import, pyseccomp looks libseccomp and libc up with
    ctypes.util.find_library. Importing ctypes.util costs ~5 ms (subprocess,
    shutil, tempfile), and each lookup runs `ldconfig -p` in a subprocess
    (~3 ms each, and a fork inside the container's namespaces). The sonames
    are fixed ABI, so the stand-in answers them with what dlopen finds; if
    that fails, the real ctypes.util does the looking.
    """
    import sys

    from hutch.linux.libc import can_load

    stub = None
    ctypes_pkg = sys.modules["ctypes"]  # loaded by hutch.linux.libc
    if fast and "ctypes.util" not in sys.modules:
        import types
        sonames = {"seccomp": "libseccomp.so.2", "c": "libc.so.6"}

        def find_library(name: str) -> str | None:
            soname = sonames.get(name)
            return soname if soname is not None and can_load(soname) else None

        stub = types.ModuleType("ctypes.util")
        stub.find_library = find_library  # type: ignore[attr-defined]
        sys.modules["ctypes.util"] = stub
        ctypes_pkg.util = stub  # type: ignore[attr-defined]
    try:
        import pyseccomp
    except ImportError:
        raise Unsupported("linux.seccomp: the libseccomp binding is not installed (the "
                          "pyseccomp package); run install.sh, or pip install pyseccomp "
                          "into hutch's environment") from None
    except (OSError, RuntimeError) as e:
        raise Unsupported(f"linux.seccomp: cannot load libseccomp ({e}); install it "
                          f"(Debian: apt-get install libseccomp2)") from None
    finally:
        if stub is not None:
            del sys.modules["ctypes.util"]
            del ctypes_pkg.util  # type: ignore[attr-defined]
    return pyseccomp


def available() -> bool:
    """Whether filters can be built here (binding and libseccomp both load)."""
    try:
        binding()
    except Unsupported:
        return False
    return True


def api_level() -> int:
    """libseccomp's API level for this kernel (seccomp_api_get(3)); 0 if unknown."""
    try:
        return int(binding().get_api())
    except (NotImplementedError, Unsupported):
        return 0


def supported_flags() -> list[str]:
    """The known filter flags that this libseccomp and kernel can set.

    Each is tried on a scratch filter: libseccomp asks the kernel. TSYNC is
    always usable here (ignored where the kernel lacks it: see the module's
    docstring); WAIT_KILLABLE_RECV only serves NOTIFY, which is refused.
    """
    s = binding()
    scratch = s.SyscallFilter(ACT_ALLOW)
    found = []
    for flag, attr in FLAG_ATTRIBUTES.items():
        if flag in _NOTIFY_FLAGS:
            continue
        try:
            scratch.set_attr(attr, 1)
        except OSError:
            if flag != "SECCOMP_FILTER_FLAG_TSYNC":
                continue
        found.append(flag)
    return found


def supported_architectures() -> list[str]:
    """The architecture names this libseccomp can build filters for."""
    s = binding()
    found = []
    for name, token in ARCHITECTURES.items():
        try:
            s.SyscallFilter(ACT_ALLOW).add_arch(token)
        except OSError as e:
            if e.errno != 17:  # EEXIST: the native one
                continue
        found.append(name)
    return sorted(found)


def features() -> dict[str, object]:
    """The ``linux.seccomp`` part of `hutch-runtime features` for this host."""
    if not available():
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": sorted(a for a in ACTIONS if a != "SCMP_ACT_NOTIFY"),
        "operators": sorted(OPERATORS),
        "archs": supported_architectures(),
        "knownFlags": list(KNOWN_FLAGS),
        "supportedFlags": supported_flags(),
    }


# ------------------------------------------------------------- the filter

class PreparedFilter:
    """A built filter, ready to load. Inherited through fork, never serialised."""

    def __init__(self, scmp_filter: object, default_action: str, flags: list[str],
                 verdicts: dict[str, str], skipped: list[str], rules: int) -> None:
        self._filter = scmp_filter
        self.default_action = default_action
        self.flags = flags          # the flags set on the filter
        self.skipped = skipped      # "field: name" of each name this libseccomp lacks
        self.rules = rules          # rules added to libseccomp
        self._verdicts = verdicts   # name -> "allow" | "deny" | "depends"
        self.allows_execve = self.verdict("execve") == "allow"
        # False: exec the program with plain execve, not the trampoline.
        self.allows_execveat = self.verdict("execveat") == "allow"
        self.loaded = False

    def verdict(self, name: str) -> str:
        """What the filter does with any call of ``name``: "allow" (ALLOW or LOG),
        "deny" (anything else) or "depends" (on the arguments)."""
        return self._verdicts.get(name, self._verdicts[""])

    def load(self) -> None:
        """seccomp_load(3): from now on the filter applies to this process and
        every process it starts. Makes no import and opens no file."""
        try:
            self._filter.load()  # type: ignore[attr-defined]
        except OSError as e:
            hint = ""
            if e.errno == 13:  # EACCES
                hint = (" (loading a filter needs CAP_SYS_ADMIN or no_new_privs: load it "
                        "before the capabilities are dropped, or set "
                        "process.noNewPrivileges)")
            raise OSError(e.errno, "seccomp_load: " + str(e.strerror) + hint) from None
        self.loaded = True

    def export_pfc(self, file: IO[bytes]) -> None:
        """libseccomp's readable pseudo code of the filter, to ``file`` (debugging)."""
        self._filter.export_pfc(file)  # type: ignore[attr-defined]

    def export_bpf(self, file: IO[bytes]) -> None:
        """The BPF program as the kernel receives it, to ``file``."""
        self._filter.export_bpf(file)  # type: ignore[attr-defined]

    def pfc(self) -> str:
        import tempfile
        with tempfile.TemporaryFile() as f:
            self.export_pfc(f)
            f.seek(0)
            return f.read().decode()


def _uint(obj: dict, key: str, where: str, top: int, default: int | None = None) -> int | None:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{where}: must be an integer, not {_kind(value)}")
    if not 0 <= value <= top:
        raise InvalidArgument(f"{where}: {value} is out of range (0 to {top})")
    return value


def _list(obj: dict, key: str, where: str) -> list:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{where}: must be a list, not {_kind(value)}")
    return value


def _action(obj: dict, key: str, errno_key: str, where: str) -> tuple[str, int]:
    """(OCI name, libseccomp value) of ``obj[key]``, with its errno where it takes one."""
    name = obj.get(key)
    if name is None:
        raise InvalidArgument(f"{where}.{key}: missing")
    if not isinstance(name, str):
        raise InvalidArgument(f"{where}.{key}: must be a string, not {_kind(name)}")
    if name not in ACTIONS:
        raise InvalidArgument(f"{where}.{key}: unknown action {json.dumps(name)} "
                              f"(one of: {', '.join(sorted(ACTIONS))})")
    if name == "SCMP_ACT_NOTIFY":
        raise Unsupported(f"{where}.{key}: SCMP_ACT_NOTIFY is not supported by hutch-runtime "
                          f"(no seccomp agent through listenerPath); use another action")
    value = ACTIONS[name]
    ret = _uint(obj, errno_key, f"{where}.{errno_key}", _MAX_ERRNO, EPERM)
    if name in _WITH_ERRNO:
        value |= ret  # type: ignore[operator]
    return name, value


def _conditions(rule: dict, where: str) -> list[tuple[int, int, int, int]]:
    conds = []
    for j, arg in enumerate(_list(rule, "args", f"{where}.args")):
        at = f"{where}.args[{j}]"
        if not isinstance(arg, dict):
            raise InvalidArgument(f"{at}: must be an object, not {_kind(arg)}")
        if arg.get("index") is None:
            raise InvalidArgument(f"{at}.index: missing")
        index = _uint(arg, "index", f"{at}.index", _MAX_ARGS - 1)
        op = arg.get("op")
        if op is None:
            raise InvalidArgument(f"{at}.op: missing")
        if not isinstance(op, str):
            raise InvalidArgument(f"{at}.op: must be a string, not {_kind(op)}")
        if op not in OPERATORS:
            raise InvalidArgument(f"{at}.op: unknown operator {json.dumps(op)} "
                                  f"(one of: {', '.join(sorted(OPERATORS))})")
        value = _uint(arg, "value", f"{at}.value", _UINT64, 0)
        value_two = _uint(arg, "valueTwo", f"{at}.valueTwo", _UINT64, 0)
        conds.append((index, OPERATORS[op], value, value_two))  # type: ignore[arg-type]
    return conds


def _flags(f: object, seccomp: dict, where: str) -> list[str]:
    raw = seccomp.get("flags")
    if raw is None:  # absent: SPEC_ALLOW where possible, as runc does
        spec_allow = "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
        try:
            f.set_attr(FLAG_ATTRIBUTES[spec_allow], 1)  # type: ignore[attr-defined]
            return [spec_allow]
        except OSError:
            return []
    applied = []
    for i, flag in enumerate(_list(seccomp, "flags", f"{where}.flags")):
        at = f"{where}.flags[{i}]"
        if not isinstance(flag, str):
            raise InvalidArgument(f"{at}: must be a string, not {_kind(flag)}")
        if flag not in FLAG_ATTRIBUTES:
            raise InvalidArgument(f"{at}: unknown flag {json.dumps(flag)} "
                                  f"(one of: {', '.join(KNOWN_FLAGS)})")
        if flag in _NOTIFY_FLAGS:
            raise Unsupported(f"{at}: {flag} only applies to SCMP_ACT_NOTIFY listeners, "
                              f"which hutch-runtime does not support; remove it")
        try:
            f.set_attr(FLAG_ATTRIBUTES[flag], 1)  # type: ignore[attr-defined]
        except OSError as e:
            if flag == "SECCOMP_FILTER_FLAG_TSYNC":
                continue  # one thread: nothing to synchronise
            raise Unsupported(f"{at}: {flag} is not supported by this kernel or libseccomp "
                              f"(API level {api_level()}: {e.strerror})") from None
        applied.append(flag)
    return applied


def for_spec(spec: dict) -> PreparedFilter | None:
    """The filter of a config's ``linux.seccomp``, built; None when it has none."""
    section = (spec.get("linux") or {}).get("seccomp")
    return None if section is None else prepare(section)


def prepare(seccomp: dict, where: str = "linux.seccomp", *,
            require_execve: bool = True) -> PreparedFilter:
    """Build the filter ``seccomp`` (an OCI linux.seccomp object) describes.

    Raises InvalidArgument naming the field for a malformed profile, and
    Unsupported for what this host or hutch cannot do (NOTIFY, a flag or an
    architecture libseccomp or the kernel lacks, no libseccomp at all).
    ``require_execve``: refuse a profile that denies execve (for a filter
    that is not loaded before an exec, such as the tests' own).
    """
    if not isinstance(seccomp, dict):
        raise InvalidArgument(f"{where}: must be an object, not {_kind(seccomp)}")
    default_name, default_value = _action(seccomp, "defaultAction", "defaultErrnoRet", where)
    rules_in = _list(seccomp, "syscalls", f"{where}.syscalls")
    # Check the whole profile before building anything.
    parsed = []
    for i, rule in enumerate(rules_in):
        at = f"{where}.syscalls[{i}]"
        if not isinstance(rule, dict):
            raise InvalidArgument(f"{at}: must be an object, not {_kind(rule)}")
        names = _list(rule, "names", f"{at}.names")
        if not names:
            raise InvalidArgument(f"{at}.names: must list at least one system call")
        for j, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise InvalidArgument(f"{at}.names[{j}]: must be a system call name, "
                                      f"not {json.dumps(name)}")
        action_name, action = _action(rule, "action", "errnoRet", at)
        parsed.append((at, names, action_name, action, _conditions(rule, at)))

    s = binding()
    try:
        f = s.SyscallFilter(default_value)
    except OSError as e:
        raise Unsupported(f"{where}.defaultAction: {default_name} is not supported by this "
                          f"kernel or libseccomp ({e.strerror})") from None
    f.set_attr(_ATTR_CTL_NNP, 0)  # process.noNewPrivileges decides, not libseccomp
    try:
        f.set_attr(_ATTR_API_SYSRAWRC, 1)
    except OSError:
        pass  # libseccomp < 2.5: load errors then read ECANCELED
    for i, arch in enumerate(_list(seccomp, "architectures", f"{where}.architectures")):
        at = f"{where}.architectures[{i}]"
        if not isinstance(arch, str):
            raise InvalidArgument(f"{at}: must be a string, not {_kind(arch)}")
        if arch not in ARCHITECTURES:
            raise InvalidArgument(f"{at}: unknown architecture {json.dumps(arch)} "
                                  f"(one of: {', '.join(sorted(ARCHITECTURES))})")
        try:
            f.add_arch(ARCHITECTURES[arch])
        except OSError as e:
            if e.errno == 17:  # EEXIST: the native one is there from the start
                continue
            why = ("its byte order differs from this host's" if e.errno == 33  # EDOM
                   else "this libseccomp does not know it")
            raise Unsupported(f"{at}: {arch} cannot be filtered on this host ({why})") from None
    flags = _flags(f, seccomp, where)
    if sum(len(p[1]) for p in parsed) > _OPTIMIZE_OVER:
        try:
            f.set_attr(_ATTR_CTL_OPTIMIZE, 2)  # a binary tree: fewer checks per call
        except OSError:
            pass

    first: dict[str, str] = {}
    conditional: set[str] = set()
    skipped: list[str] = []
    added = 0
    for at, names, action_name, action, conds in parsed:
        if action == default_value:
            continue  # the default does the same; libseccomp refuses such rules
        indexes = [c[0] for c in conds]
        if len(set(indexes)) < len(indexes):
            groups = [[c] for c in conds]  # the same argument twice: either one matches
        else:
            groups = [conds]
        for j, name in enumerate(names):
            nr = s.resolve_syscall(0, name)  # 0: SCMP_ARCH_NATIVE
            if nr == _NR_SCMP_ERROR:
                skipped.append(f"{at}.names[{j}]: {name}")
                continue
            for group in groups:
                args = [s.Arg(index, op, a, b) for index, op, a, b in group]
                try:
                    f.add_rule(action, nr, *args)
                except OSError as e:
                    if e.errno == 95:  # EOPNOTSUPP: the kernel lacks the action
                        raise Unsupported(f"{at}.action: {action_name} is not supported by "
                                          f"this kernel ({e.strerror})") from None
                    raise InvalidArgument(f"{at}: libseccomp refused the rule for "
                                          f"{json.dumps(name)} ({e.strerror})") from None
                added += 1
            _record(first, conditional, name, action_name, bool(conds))
    verdicts = {name: "depends" for name in conditional}
    verdicts.update(first)
    verdicts[""] = "allow" if default_name in _LETS_THROUGH else "deny"
    filt = PreparedFilter(f, default_name, flags, verdicts, skipped, added)
    if require_execve and filt.verdict("execve") == "deny":
        raise InvalidArgument(f"{where}: the profile denies execve, so the container's "
                              f"program could never start; allow execve and execveat")
    return filt


def _record(first: dict[str, str], conditional: set[str], name: str, action_name: str,
            has_conditions: bool) -> None:
    """Track what a name's calls get. libseccomp lets the first unconditional rule
    of a name win over every other rule of it, whatever their order."""
    if has_conditions:
        conditional.add(name)
    elif name not in first:
        first[name] = "allow" if action_name in _LETS_THROUGH else "deny"
