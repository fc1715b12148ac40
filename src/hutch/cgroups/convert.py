"""linux.resources: the pure half. Checks, normal forms and v1 <-> v2 conversions.

Nothing here touches the file system. ``check()`` turns the OCI ``linux.resources``
object into a normalized copy (or raises ``InvalidArgument`` naming the field), so
that the managers can look at the host and plan every write before the first one.

Conversions follow runc and crun, which document them:

- cpu.shares (2..262144) -> cpu.weight (1..10000): the linear formula of runc's
  ``ConvertCPUSharesToCgroupV2Value`` and of crun before 1.23 (which moved to a
  quadratic curve that maps 1024 to 100):
  ``1 + ((shares - 2) * 9999) // 262142``. So 1024 -> 39, 2 -> 1, 262144 -> 10000.
- cpu quota/period -> cpu.max "QUOTA PERIOD" ("max" when quota < 0).
- blockIO.weight (10..1000) -> io.weight (1..10000): runc's
  ``ConvertBlkIOToIOWeightValue``, ``1 + (weight - 10) * 9999 // 990``. (io.bfq.weight
  takes the v1 value unchanged, as in runc.)
- memory.swap is memory+swap (the v1 memsw file); v2's memory.swap.max is swap alone,
  so it gets ``swap - limit`` (runc's ``ConvertMemorySwapToCgroupV2Value``); -1 is
  "max" everywhere on v2.
- memory.reservation -> memory.low (v2) / memory.soft_limit_in_bytes (v1).

Like the rest of the package this imports the stdlib only (no ``typing``, no ``re``).
"""

from __future__ import annotations

from hutch.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

WHERE = "linux.resources"

SECTIONS = ("devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma",
            "unified")
CPU_KEYS = ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus",
            "mems", "idle")
MEMORY_KEYS = ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
               "disableOOMKiller", "useHierarchy", "checkBeforeUpdate")
BLKIO_KEYS = ("weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
              "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice")
THROTTLES = ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
             "throttleWriteIOPSDevice")

SHARES_MIN, SHARES_MAX = 2, 262144  # the kernel's range for cpu.shares
PERIOD_MIN, PERIOD_MAX = 1000, 1000000  # cpu.cfs_period_us / cpu.max period, in µs
QUOTA_MIN = 1000  # µs; the kernel refuses a smaller positive quota
BLKIO_WEIGHT_MIN, BLKIO_WEIGHT_MAX = 10, 1000
INT64_MAX = (1 << 63) - 1
UINT32_MAX = (1 << 32) - 1
UINT64_MAX = (1 << 64) - 1
DEV_NUMBER_MAX = (1 << 31) - 1  # fits the immediate of a BPF compare, and every real dev_t

UNLIMITED = -1  # in the normal form: "no limit" (OCI -1, v1 "-1", v2 "max")


class IgnoredLimit(UserWarning):
    """A setting the host's cgroup version has no equivalent for, skipped as runc does."""


def warn_ignored(message: str) -> None:
    """Say that a setting was skipped (``warnings`` is imported only when that happens)."""
    import warnings
    warnings.warn(message, IgnoredLimit, stacklevel=3)


# --- plan steps -----------------------------------------------------------------------------

class Write:
    """One planned write: ``value`` to the cgroup file ``path``.

    ``explain(errno)`` may return a hint to append when the kernel refuses it;
    ``restore`` is the value that undoes it (None: nothing to undo, or unknown).
    """

    __slots__ = ("explain", "path", "restore", "value")

    def __init__(self, path: str, value: str, restore: str | None = None,
                 explain: Callable[[int], str | None] | None = None) -> None:
        self.path = path
        self.value = value
        self.restore = restore
        self.explain = explain

    def __repr__(self) -> str:
        return f"Write({self.path!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Write) and (self.path, self.value) == (other.path, other.value)

    __hash__ = None  # type: ignore[assignment]


class Call:
    """A planned step that is not a plain write (a BPF program, a retried write pair);
    ``undo`` (optional) reverses it."""

    __slots__ = ("fn", "undo", "what")

    def __init__(self, what: str, fn: Callable[[], None],
                 undo: Callable[[], None] | None = None) -> None:
        self.what = what
        self.fn = fn
        self.undo = undo

    def __repr__(self) -> str:
        return f"Call({self.what!r})"


# --- scalar checks --------------------------------------------------------------------------

def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _int(value: object, where: str, lo: int, hi: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON writers sometimes say 1024.0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{where}: must be an integer, not {_kind(value)}")
    if not lo <= value <= hi:
        raise InvalidArgument(f"{where}: {value} is out of range ({lo}..{hi})")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{where}: must be true or false, not {_kind(value)}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: must be a string, not {_kind(value)}")
    return value


def _obj(value: object, where: str, known: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where}: must be an object, not {_kind(value)}")
    unknown = sorted(k for k in value if k not in known)
    if unknown:
        raise InvalidArgument(f"{where}: unknown field{'s' if len(unknown) > 1 else ''}"
                              f" {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
    return value


def _list(value: object, where: str) -> list:
    if not isinstance(value, list):
        raise InvalidArgument(f"{where}: must be an array, not {_kind(value)}")
    return value


def _limit(value: object, where: str) -> int | None:
    """A byte limit: None (unset) for 0, UNLIMITED for -1, else a positive number."""
    n = _int(value, where, -1, INT64_MAX)
    if n == 0:
        return None
    return n


# --- cpu and memory node lists --------------------------------------------------------------

def parse_list(text: str, where: str) -> frozenset[int]:
    """A kernel list such as "0-3,5" (cpus or memory nodes) as a set of numbers."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise InvalidArgument(f"{where}: {text!r} is not a list such as '0-3,5'"
                                  f" (bad part {part!r})")
        lo, hi = int(first), int(last) if dash else int(first)
        if hi < lo:
            raise InvalidArgument(f"{where}: {text!r} has the backward range {part!r}")
        if hi > 65535:
            raise InvalidArgument(f"{where}: {text!r} names {hi}, more than any host has")
        out.update(range(lo, hi + 1))
    return frozenset(out)


def format_list(numbers: frozenset[int] | set[int]) -> str:
    """The kernel's short form: {0, 1, 2, 5} -> "0-2,5"."""
    parts: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [n]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def check_subset(wanted: frozenset[int], wanted_text: str, available: frozenset[int],
                 available_text: str, where: str, what: str, whose: str) -> None:
    """Refuse a cpuset naming cpus (or nodes) that ``whose`` does not have."""
    missing = wanted - available
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise InvalidArgument(f"{where}: {wanted_text!r} names {what}{s} {format_list(missing)},"
                              f" which {whose} lacks ({whose} has {what}s"
                              f" {available_text or 'none'}); nothing was changed")


# --- conversions ----------------------------------------------------------------------------

def shares_to_weight(shares: int) -> int:
    """cpu.shares -> cpu.weight (runc's / crun<1.23's linear formula, see the module doc)."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), runc's formula."""
    return 1 + (weight - 10) * 9999 // 990


def cpu_max(quota: int | None, period: int | None) -> str:
    """cpu.max text for v2: "max" or the quota, then the period if given."""
    text = "max" if quota is None or quota < 0 else str(quota)
    return f"{text} {period}" if period else text


def v2_value(n: int) -> str:
    """A v2 limit file value: "max" for UNLIMITED."""
    return "max" if n == UNLIMITED else str(n)


def v1_value(n: int) -> str:
    return "-1" if n == UNLIMITED else str(n)


def swap_only(swap: int, limit: int | None, where: str = f"{WHERE}.memory.swap") -> int:
    """v2 memory.swap.max from OCI memory.swap (memory+swap) and memory.limit.

    ``limit`` is the memory limit in force (given, or current); UNLIMITED for none.
    """
    if swap == UNLIMITED:
        return UNLIMITED
    if limit is None or limit == UNLIMITED:
        raise InvalidArgument(f"{where}: {swap} is memory+swap, which needs a memory limit"
                              " (memory.limit) to compute the swap part from; give one,"
                              " or -1 for unlimited swap")
    if swap < limit:
        raise InvalidArgument(f"{where}: {swap} is memory+swap and must not be below"
                              f" memory.limit {limit}")
    return swap - limit


# --- hugepages ------------------------------------------------------------------------------

_UNITS = ("KB", "MB", "GB", "TB", "PB")


def page_size_bytes(name: str, where: str) -> int:
    """ "2MB" -> 2097152; the OCI "<size><unit-prefix>B" format (binary units, as runc)."""
    for i, unit in enumerate(_UNITS):
        if name.endswith(unit) and name[:-2].isdigit() and not name.startswith("0"):
            return int(name[:-2]) << (10 * (i + 1))
    raise InvalidArgument(f"{where}: {name!r} is not a page size such as '2MB' or '1GB'"
                          " (a number, then KB, MB, GB, TB or PB)")


def page_size_name(size: int) -> str:
    """2097152 -> "2MB": the kernel's name in hugetlb.<size>.* files."""
    name, unit = size, "B"
    for u in _UNITS:
        if name % 1024 or name < 1024:
            break
        name //= 1024
        unit = u
    return f"{name}{unit}"


# --- devices --------------------------------------------------------------------------------

ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4  # BPF_DEVCG_ACC_* (the v1 DEVCG_ACC_* values too)
DEV_BLOCK, DEV_CHAR = 1, 2  # BPF_DEVCG_DEV_*
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
WILDCARD = -1


def access_bits(access: str) -> int:
    bits = 0
    for c in access:
        bits |= _ACCESS_BITS[c]
    return bits


def access_text(bits: int) -> str:
    return "".join(c for c, b in (("r", ACC_READ), ("w", ACC_WRITE), ("m", ACC_MKNOD))
                   if bits & b)


class DeviceRule:
    """One linux.resources.devices entry, checked. major/minor WILDCARD is "*"."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(self, allow: bool, type: str = "a", major: int = WILDCARD,
                 minor: int = WILDCARD, access: str = "rwm") -> None:
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access_text(access_bits(access))  # canonical "rwm" order

    @property
    def is_all(self) -> bool:
        """Type "a": every device; the kernel then ignores numbers and access."""
        return self.type == "a"

    def v1(self) -> str:
        """The line for v1 devices.allow / devices.deny."""
        if self.is_all:
            return "a"
        major = "*" if self.major == WILDCARD else str(self.major)
        minor = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    def __repr__(self) -> str:
        return f"{'allow' if self.allow else 'deny'} {self.v1()}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeviceRule) and repr(self) == repr(other)

    __hash__ = None  # type: ignore[assignment]


def _device_number(rule: dict, key: str, where: str) -> int:
    value = rule.get(key)
    if value is None:
        return WILDCARD
    return _int(value, f"{where}.{key}", -1, DEV_NUMBER_MAX)


def device_rule(rule: object, where: str) -> DeviceRule:
    r = _obj(rule, where, ("allow", "type", "major", "minor", "access"))
    if "allow" not in r:
        raise InvalidArgument(f"{where}.allow: missing (true or false)")
    allow = _bool(r["allow"], f"{where}.allow")
    kind = _str(r.get("type") or "a", f"{where}.type")
    if kind not in ("a", "b", "c"):
        raise InvalidArgument(f"{where}.type: {kind!r} is not 'a' (all), 'b' (block) or"
                              " 'c' (character)")
    access = _str(r.get("access") or "rwm", f"{where}.access")
    if not access or any(c not in "rwm" for c in access):
        raise InvalidArgument(f"{where}.access: {access!r} must be made of r, w and m")
    major = _device_number(r, "major", where)
    minor = _device_number(r, "minor", where)
    if kind == "a" and (major != WILDCARD or minor != WILDCARD):
        raise InvalidArgument(f"{where}: type 'a' means every device, so it cannot name"
                              f" major/minor numbers ({r.get('major')}:{r.get('minor')});"
                              " give type 'c' or 'b' for one device")
    return DeviceRule(allow, kind, major, minor, access)


class DeviceState:
    """What a list of rules leaves behind, as the v1 kernel computes it.

    ``default_allow`` is the behaviour (allow-all with deny exceptions, or deny-all
    with allow exceptions); ``exceptions`` are (type, major, minor, access bits) in the
    order the kernel keeps them (same type and numbers merge, as dev_exception_add
    and dev_exception_rm do).
    """

    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow: bool = True) -> None:
        self.default_allow = default_allow
        self.exceptions: list[list] = []

    def apply(self, rule: DeviceRule) -> None:
        if rule.is_all:
            self.default_allow = rule.allow
            self.exceptions = []
            return
        bits = access_bits(rule.access)
        same = next((e for e in self.exceptions
                     if (e[0], e[1], e[2]) == (rule.type, rule.major, rule.minor)), None)
        if rule.allow == self.default_allow:  # remove from the exceptions
            if same is not None:
                same[3] &= ~bits
                if not same[3]:
                    self.exceptions.remove(same)
        elif same is not None:
            same[3] |= bits
        else:
            self.exceptions.append([rule.type, rule.major, rule.minor, bits])

    def allows(self, kind: str, major: int, minor: int, access: str) -> bool:
        """The v1 kernel's verdict for one access (used to test the BPF program's logic)."""
        want = access_bits(access)
        for t, ma, mi, bits in self.exceptions:
            if t != kind or (ma != WILDCARD and ma != major) or (mi != WILDCARD and mi != minor):
                continue
            if self.default_allow and want & bits:
                return False  # a deny exception that matches even partly
            if not self.default_allow and not want & ~bits:
                return True  # an allow exception that covers the whole access
        return self.default_allow


def device_state(rules: list[DeviceRule]) -> DeviceState:
    """The end state of ``rules`` in a cgroup that starts out allowing everything its
    parent allows (the parent's own limits keep applying on both versions)."""
    state = DeviceState(default_allow=True)
    for rule in rules:
        state.apply(rule)
    return state


# Devices runc allows in every container (specconv.AllowedDevices), after the spec's rules.
DEFAULT_ALLOWED = (
    ("c", WILDCARD, WILDCARD, "m"), ("b", WILDCARD, WILDCARD, "m"),
    ("c", 1, 3, "rwm"),  # /dev/null
    ("c", 1, 8, "rwm"),  # /dev/random
    ("c", 1, 7, "rwm"),  # /dev/full
    ("c", 5, 0, "rwm"),  # /dev/tty
    ("c", 1, 5, "rwm"),  # /dev/zero
    ("c", 1, 9, "rwm"),  # /dev/urandom
    ("c", 136, WILDCARD, "rwm"),  # /dev/pts/*
    ("c", 5, 2, "rwm"),  # /dev/ptmx
    ("c", 10, 200, "rwm"),  # /dev/net/tun
)


def container_device_rules(linux: dict) -> list[dict]:
    """The devices list a runtime applies for a container, as runc builds it.

    ``linux.resources.devices`` as given, then the devices every container may use
    (/dev/null, zero, full, random, urandom, tty, ptmx, pts, net/tun, mknod of any
    node), then rwm for each ``linux.devices`` node the runtime creates. The result
    goes into ``resources["devices"]`` before ``apply()``.
    """
    resources = linux.get("resources") or {}
    rules = list(resources.get("devices") or [])
    for kind, major, minor, access in DEFAULT_ALLOWED:
        rules.append({"allow": True, "type": kind, "major": major, "minor": minor,
                      "access": access})
    for i, dev in enumerate(linux.get("devices") or []):
        kind = dev.get("type")
        if kind in ("c", "u", "b"):
            rules.append({"allow": True, "type": "b" if kind == "b" else "c",
                          "major": _int(dev.get("major"), f"linux.devices[{i}].major", 0,
                                        DEV_NUMBER_MAX),
                          "minor": _int(dev.get("minor"), f"linux.devices[{i}].minor", 0,
                                        DEV_NUMBER_MAX),
                          "access": "rwm"})
    return rules


# --- the whole object -----------------------------------------------------------------------

def _cpu(cpu: dict, where: str) -> dict:
    out: dict = {}
    if cpu.get("shares"):
        out["shares"] = _int(cpu["shares"], f"{where}.shares", SHARES_MIN, SHARES_MAX)
    if cpu.get("quota"):
        quota = _int(cpu["quota"], f"{where}.quota", -(1 << 63), INT64_MAX)
        if 0 < quota < QUOTA_MIN:
            raise InvalidArgument(f"{where}.quota: {quota} µs is below the kernel's minimum of"
                                  f" {QUOTA_MIN} µs (or give -1 for no limit)")
        out["quota"] = UNLIMITED if quota < 0 else quota
    if cpu.get("period"):
        out["period"] = _int(cpu["period"], f"{where}.period", PERIOD_MIN, PERIOD_MAX)
    if cpu.get("burst") is not None:
        out["burst"] = _int(cpu["burst"], f"{where}.burst", 0, INT64_MAX)
        limit = out.get("quota")
        if out["burst"] and limit is not None and (limit == UNLIMITED or out["burst"] > limit):
            raise InvalidArgument(f"{where}.burst: {out['burst']} µs needs a quota at least as"
                                  f" large (quota is {cpu.get('quota')})")
    if cpu.get("realtimeRuntime") is not None:
        runtime = _int(cpu["realtimeRuntime"], f"{where}.realtimeRuntime", -1, INT64_MAX)
        out["realtimeRuntime"] = runtime
    if cpu.get("realtimePeriod"):
        out["realtimePeriod"] = _int(cpu["realtimePeriod"], f"{where}.realtimePeriod", 1,
                                     INT64_MAX)
    rt_runtime, rt_period = out.get("realtimeRuntime"), out.get("realtimePeriod")
    if rt_runtime is not None and rt_period is not None and rt_runtime > rt_period:
        raise InvalidArgument(f"{where}.realtimeRuntime: {rt_runtime} µs is more than the"
                              f" realtimePeriod of {rt_period} µs")
    for key in ("cpus", "mems"):
        text = cpu.get(key)
        if text is not None and _str(text, f"{where}.{key}").strip():
            out[key] = (text.strip(), parse_list(text, f"{where}.{key}"))
    if cpu.get("idle") is not None:
        out["idle"] = _int(cpu["idle"], f"{where}.idle", 0, 1)
        if out["idle"] and "shares" in out:
            raise InvalidArgument(f"{where}: idle 1 gives the cgroup the lowest weight, so it"
                                  " cannot be combined with shares")
    return out


def _memory(mem: dict, where: str) -> dict:
    out: dict = {}
    for key in ("limit", "reservation", "swap"):
        if mem.get(key) is not None:
            value = _limit(mem[key], f"{where}.{key}")
            if value is not None:
                out[key] = value
    for key in ("kernel", "kernelTCP"):
        if mem.get(key):
            out[key] = _int(mem[key], f"{where}.{key}", -1, INT64_MAX)
    if mem.get("swappiness") is not None:
        value = _int(mem["swappiness"], f"{where}.swappiness", -1, UINT64_MAX)
        if value > 100:
            raise InvalidArgument(f"{where}.swappiness: {value} is out of range (0..100)")
        if value >= 0:
            out["swappiness"] = value
    for key in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
        if mem.get(key) is not None:
            out[key] = _bool(mem[key], f"{where}.{key}")
    limit, swap = out.get("limit"), out.get("swap")
    if swap is not None and swap != UNLIMITED and limit is not None:
        if limit == UNLIMITED:
            raise InvalidArgument(f"{where}.swap: {swap} (memory+swap) cannot be finite while"
                                  " memory.limit is -1 (unlimited)")
        if swap < limit:
            raise InvalidArgument(f"{where}.swap: {swap} is memory+swap and must not be below"
                                  f" memory.limit {limit}")
    reservation = out.get("reservation")
    if (reservation is not None and reservation != UNLIMITED and limit is not None
            and limit != UNLIMITED and reservation > limit):
        raise InvalidArgument(f"{where}.reservation: {reservation} is above memory.limit"
                              f" {limit}; a soft limit must not exceed the hard one")
    return out


def _block_device(entry: dict, where: str) -> tuple[int, int]:
    for key in ("major", "minor"):
        if key not in entry:
            raise InvalidArgument(f"{where}.{key}: missing")
    return (_int(entry["major"], f"{where}.major", 0, DEV_NUMBER_MAX),
            _int(entry["minor"], f"{where}.minor", 0, DEV_NUMBER_MAX))


def _blkio(bio: dict, where: str) -> dict:
    out: dict = {}
    for key in ("weight", "leafWeight"):
        if bio.get(key):
            out[key] = _int(bio[key], f"{where}.{key}", BLKIO_WEIGHT_MIN, BLKIO_WEIGHT_MAX)
    if bio.get("weightDevice") is not None:
        devices = []
        for i, entry in enumerate(_list(bio["weightDevice"], f"{where}.weightDevice")):
            w = f"{where}.weightDevice[{i}]"
            e = _obj(entry, w, ("major", "minor", "weight", "leafWeight"))
            dev = _block_device(e, w)
            weight = leaf = None
            if e.get("weight"):
                weight = _int(e["weight"], f"{w}.weight", BLKIO_WEIGHT_MIN, BLKIO_WEIGHT_MAX)
            if e.get("leafWeight"):
                leaf = _int(e["leafWeight"], f"{w}.leafWeight", BLKIO_WEIGHT_MIN,
                            BLKIO_WEIGHT_MAX)
            devices.append((dev, weight, leaf))
        out["weightDevice"] = devices
    for key in THROTTLES:
        if bio.get(key) is not None:
            rates = []
            for i, entry in enumerate(_list(bio[key], f"{where}.{key}")):
                w = f"{where}.{key}[{i}]"
                e = _obj(entry, w, ("major", "minor", "rate"))
                if "rate" not in e:
                    raise InvalidArgument(f"{w}.rate: missing (0 removes the limit)")
                rates.append((_block_device(e, w), _int(e["rate"], f"{w}.rate", 0, UINT64_MAX)))
            out[key] = rates
    return out


def _hugepages(limits: list, where: str) -> list[tuple[str, int]]:
    out = []
    for i, entry in enumerate(limits):
        w = f"{where}[{i}]"
        e = _obj(entry, w, ("pageSize", "limit"))
        for key in ("pageSize", "limit"):
            if key not in e:
                raise InvalidArgument(f"{w}.{key}: missing")
        size = page_size_bytes(_str(e["pageSize"], f"{w}.pageSize"), f"{w}.pageSize")
        out.append((page_size_name(size), _int(e["limit"], f"{w}.limit", 0, UINT64_MAX)))
    return out


def _iface_name(name: str, where: str) -> str:
    if not name or len(name) > 15 or any(c.isspace() or c in "/:" for c in name):
        raise InvalidArgument(f"{where}: {name!r} is not a network interface name")
    return name


def _network(net: dict, where: str) -> dict:
    out: dict = {}
    if net.get("classID") is not None:
        out["classID"] = _int(net["classID"], f"{where}.classID", 0, UINT32_MAX)
    if net.get("priorities") is not None:
        prios = []
        for i, entry in enumerate(_list(net["priorities"], f"{where}.priorities")):
            w = f"{where}.priorities[{i}]"
            e = _obj(entry, w, ("name", "priority"))
            name = _iface_name(_str(e.get("name"), f"{w}.name"), f"{w}.name")
            prios.append((name, _int(e.get("priority"), f"{w}.priority", 0, UINT32_MAX)))
        out["priorities"] = prios
    return out


def _rdma(rdma: dict, where: str) -> dict:
    out = {}
    for name, limits in rdma.items():
        w = f"{where}[{name!r}]"
        if not name or any(c.isspace() for c in name):
            raise InvalidArgument(f"{w}: {name!r} is not an RDMA device name")
        e = _obj(limits, w, ("hcaHandles", "hcaObjects"))
        entry = {}
        for key in ("hcaHandles", "hcaObjects"):
            if e.get(key) is not None:
                entry[key] = _int(e[key], f"{w}.{key}", 0, UINT32_MAX)
        if entry:
            out[name] = entry
    return out


# Files of the cgroup itself, not limits: the manager owns them.
_UNIFIED_REFUSED = ("cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.freeze",
                    "cgroup.subtree_control", "cgroup.type")


def _unified(unified: dict, where: str) -> dict[str, str]:
    out = {}
    for key, value in unified.items():
        w = f"{where}[{key!r}]"
        if (not key or "/" in key or "\0" in key or key.startswith(".")
                or "." not in key.strip(".") or any(c.isspace() for c in key)):
            raise InvalidArgument(f"{w}: not the name of a cgroup v2 file such as"
                                  " 'memory.high'")
        if key in _UNIFIED_REFUSED:
            raise InvalidArgument(f"{w}: {key} is not a resource setting; the cgroup manager"
                                  " handles it")
        out[key] = _str(value, w)
    return out


def check(resources: object) -> dict:
    """Check ``linux.resources`` and return its normal form.

    Unset values (absent, null, and the 0s that OCI uses for "not set") are left out;
    "no limit" is UNLIMITED. Raises ``InvalidArgument`` naming the first bad field.
    """
    if resources is None:
        return {}
    res = _obj(resources, WHERE, SECTIONS)
    out: dict = {}
    if res.get("cpu") is not None:
        cpu = _cpu(_obj(res["cpu"], f"{WHERE}.cpu", CPU_KEYS), f"{WHERE}.cpu")
        if cpu:
            out["cpu"] = cpu
    if res.get("memory") is not None:
        mem = _memory(_obj(res["memory"], f"{WHERE}.memory", MEMORY_KEYS), f"{WHERE}.memory")
        if mem:
            out["memory"] = mem
    if res.get("pids") is not None:
        pids = _obj(res["pids"], f"{WHERE}.pids", ("limit",))
        if "limit" not in pids:
            raise InvalidArgument(f"{WHERE}.pids.limit: missing (-1 for no limit)")
        limit = _int(pids["limit"], f"{WHERE}.pids.limit", -(1 << 63), INT64_MAX)
        out["pids"] = {"limit": UNLIMITED if limit <= 0 else limit}
    if res.get("blockIO") is not None:
        bio = _blkio(_obj(res["blockIO"], f"{WHERE}.blockIO", BLKIO_KEYS), f"{WHERE}.blockIO")
        if bio:
            out["blockIO"] = bio
    if res.get("hugepageLimits") is not None:
        pages = _hugepages(_list(res["hugepageLimits"], f"{WHERE}.hugepageLimits"),
                           f"{WHERE}.hugepageLimits")
        if pages:
            out["hugepageLimits"] = pages
    if res.get("devices") is not None:
        rules = [device_rule(r, f"{WHERE}.devices[{i}]")
                 for i, r in enumerate(_list(res["devices"], f"{WHERE}.devices"))]
        if rules:
            out["devices"] = rules
    if res.get("network") is not None:
        net = _network(_obj(res["network"], f"{WHERE}.network", ("classID", "priorities")),
                       f"{WHERE}.network")
        if net:
            out["network"] = net
    if res.get("rdma") is not None:
        if not isinstance(res["rdma"], dict):
            raise InvalidArgument(f"{WHERE}.rdma: must be an object, not {_kind(res['rdma'])}")
        rdma = _rdma(res["rdma"], f"{WHERE}.rdma")
        if rdma:
            out["rdma"] = rdma
    if res.get("unified") is not None:
        if not isinstance(res["unified"], dict):
            raise InvalidArgument(f"{WHERE}.unified: must be an object, not"
                                  f" {_kind(res['unified'])}")
        unified = _unified(res["unified"], f"{WHERE}.unified")
        if unified:
            out["unified"] = unified
    return out


def rdma_line(device: str, limits: dict) -> str:
    """One rdma.max line (the same on v1 and v2)."""
    parts = [device]
    if "hcaHandles" in limits:
        parts.append(f"hca_handle={limits['hcaHandles']}")
    if "hcaObjects" in limits:
        parts.append(f"hca_object={limits['hcaObjects']}")
    return " ".join(parts)


# --- running a plan -------------------------------------------------------------------------

def run(steps: list) -> None:
    """Carry out planned steps in order; if one fails, undo the ones done, newest first.

    (The only function here that touches files. Failures while undoing become notes
    on the first error.)
    """
    from hutch.cgroups import files
    from hutch.errors import SystemFailure

    done: list = []
    for step in steps:
        try:
            if isinstance(step, Write):
                try:
                    files.write(step.path, step.value)
                except SystemFailure as e:
                    hint = step.explain(e.errno or 0) if step.explain else None
                    if hint:
                        raise SystemFailure(e.errno or 0, f"{e}: {hint}") from e
                    raise
            else:
                step.fn()
        except BaseException as e:
            _undo(done, e)
            raise
        done.append(step)


def _undo(done: list, error: BaseException) -> None:
    from hutch.cgroups import files
    from hutch.errors import HutchError

    for step in reversed(done):
        try:
            if isinstance(step, Write):
                if step.restore is not None:
                    files.write(step.path, step.restore)
            elif getattr(step, "undo", None) is not None:
                step.undo()
        except (HutchError, OSError) as e:
            error.add_note(f"rollback: {e}")
