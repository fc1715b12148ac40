"""Linux capabilities: the name table, and setting a process's five sets.

The table and the /proc readers are pure and cheap to import (the OCI validator
uses them). ``apply_capabilities`` needs ctypes; it imports the syscall wrappers
when it is called, so importing this module does not load ctypes.
"""

from __future__ import annotations

from hutch.errors import InvalidArgument

# Capability names as the OCI runtime-spec spells them, and their bit numbers
# (include/uapi/linux/capability.h).
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

CAP_NAMES: dict[int, str] = {v: k for k, v in CAPABILITIES.items()}

# The highest capability this table knows.
MAX_KNOWN_CAP = 40

# The version of the capget/capset ABI with two 32-bit words per set.
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_STATUS_FIELDS = {
    "CapInh": "inheritable",
    "CapPrm": "permitted",
    "CapEff": "effective",
    "CapBnd": "bounding",
    "CapAmb": "ambient",
}

_last_cap: int | None = None


def cap_number(name: str) -> int:
    """The bit number of ``name`` ("CAP_KILL"); InvalidArgument if unknown."""
    try:
        return CAPABILITIES[name]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unknown capability {name!r}") from None


def cap_name(number: int) -> str:
    """The name of capability ``number``; "CAP_<n>" for bits this table lacks."""
    return CAP_NAMES.get(number, f"CAP_{number}")


def last_cap() -> int:
    """The highest capability the running kernel knows (cached)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read().strip())
        except (OSError, ValueError):
            # Without /proc (or on an odd kernel) assume the kernel knows what we know.
            _last_cap = MAX_KNOWN_CAP
    return _last_cap


def mask_to_names(mask: int) -> set[str]:
    """The capability names whose bits are set in ``mask``."""
    return {cap_name(bit) for bit in range(mask.bit_length()) if mask >> bit & 1}


def names_to_mask(names: list[str] | tuple[str, ...] | set[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << cap_number(name)
    return mask


def current_capabilities(pid: int | str = "self") -> dict[str, set[str]]:
    """The five capability sets of a process, from /proc/<pid>/status.

    Keys: effective, permitted, inheritable, bounding, ambient.
    """
    result: dict[str, set[str]] = {}
    # Binary on purpose: this runs inside containers, where no codec module can
    # be imported lazily.
    with open(f"/proc/{pid}/status", "rb") as f:
        for raw in f:
            key, _, value = raw.decode("utf-8", "replace").partition(":")
            field = _STATUS_FIELDS.get(key)
            if field is not None:
                result[field] = mask_to_names(int(value.strip(), 16))
    return result


def apply_capabilities(bounding: list[str], effective: list[str], permitted: list[str],
                       inheritable: list[str], ambient: list[str]) -> list[str]:
    """Set the calling thread's capability sets to exactly the named ones.

    Steps, in the order the kernel needs them: drop from the bounding set every
    capability not named in ``bounding`` (needs CAP_SETPCAP, so it comes first),
    capset() the effective, permitted and inheritable sets, then clear the
    ambient set and raise each ambient capability.

    Bounding capabilities already dropped are left alone, so a process that
    is already restricted enough needs no CAP_SETPCAP.

    Unknown names raise InvalidArgument before anything changes. Capabilities
    the running kernel does not know (above cap_last_cap) are skipped, as runc
    does. Returns the names that were not applied: those unknown to the kernel,
    and ambient capabilities the kernel refused (not both permitted and
    inheritable), so the caller can warn about them.
    """
    import errno

    from hutch.linux import constants as C
    from hutch.linux.syscalls import prctl

    top = last_cap()
    skipped: list[str] = []

    def mask_of(names: list[str]) -> int:
        mask = 0
        for name in names:
            bit = cap_number(name)
            if bit > top:
                if name not in skipped:
                    skipped.append(name)
                continue
            mask |= 1 << bit
        return mask

    bnd = mask_of(bounding)
    eff = mask_of(effective)
    prm = mask_of(permitted)
    inh = mask_of(inheritable)
    amb = mask_of(ambient)

    for bit in range(top + 1):
        # Only drop what is still there: dropping needs CAP_SETPCAP, and a
        # set that is already small enough needs no privilege.
        if not bnd >> bit & 1 and prctl(C.PR_CAPBSET_READ, bit) == 1:
            prctl(C.PR_CAPBSET_DROP, bit)

    capset(eff, prm, inh)

    try:
        prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as e:
        # Kernels before 4.3 have no ambient set; that only matters if one was asked for.
        if amb or e.errno != errno.EINVAL:
            raise
    for bit in range(top + 1):
        if amb >> bit & 1:
            try:
                prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_RAISE, bit)
            except OSError as e:
                if e.errno != errno.EPERM:  # EPERM: not both permitted and inheritable
                    raise
                skipped.append(cap_name(bit))
    return skipped


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's effective, permitted and inheritable masks."""
    import ctypes

    from hutch.linux import constants as C
    from hutch.linux.libc import syscall

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header = Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (Data * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    syscall(C.SYS_CAPSET, ctypes.byref(header), data, call="capset",
            detail=f"effective={effective:#x}, permitted={permitted:#x}, "
                   f"inheritable={inheritable:#x}")


_capset = capset  # the old private name, still used by hutch.runtime.process
