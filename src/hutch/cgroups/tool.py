"""`hutch cgroup`: the raw cgroup model as a tool (libcgroup's cgcreate, cgset, cgget,
cgexec, cgclassify, cgdelete, cgconfigparser; systemd-cgls and cgtop for ``tree``).

Groups are named like libcgroup does, ``CONTROLLERS:PATH`` (``cpu,memory:demo/a``;
``*`` is every hierarchy), and PATH is relative to the cgroup the tool itself runs
in, in each hierarchy: "/" is our own cgroup, never the root of a hierarchy. So the
tool only creates, changes and deletes groups below its own (it reads anything, for
``tree``), and only moves processes that are in its own subtree already.

The v1 rules the kernel enforces are checked first and explained when broken
(``HierarchyRuleError`` names the rule):

- a controller is attached to at most one hierarchy (a mount cannot put it in a
  second one, e.g. cpu together with memory when both are mounted on their own);
- a task is in exactly one group of each hierarchy (moving it to a group takes it
  out of the group it was in, in that hierarchy only);
- children inherit their parent's limits and membership (a new process starts in
  its parent's groups; a group never gets more than its ancestors allow).

On a cgroup v2 host the tool explains the one-hierarchy equivalent when a v1 notion
is asked for. This module prints nothing; it returns lines for the CLI
(cli/cgroup.py).
"""

from __future__ import annotations

import errno
import os

from hutch.cgroups import files
from hutch.cgroups.mode import (Hierarchy, Mount, OwnCgroup, find_hierarchies, is_below,
                                mode_of, read_mounts, read_own)
from hutch.cgroups.tree import make_dirs, undo_dirs, wait_until
from hutch.errors import InvalidArgument, NotFound, SystemFailure, Unsupported

RULE_ONE_HIERARCHY = "a controller is attached to at most one hierarchy"
RULE_ONE_GROUP = "a task is in exactly one group of each hierarchy"
RULE_INHERIT = "children inherit their parent's limits and membership"
RULE_NO_INTERNAL = "cgroup v2: no internal processes"

INHERIT_NOTE = ("children inherit their parent's limits and membership: a new process starts"
                " in its parent's groups, and a group never gets more than its ancestors allow")
V1_NOTE = ("each v1 hierarchy is its own tree; a process is in exactly one group of every"
           " hierarchy")
V2_NOTE = ("cgroup v2 has one hierarchy for all controllers; a group gets a controller when its"
           " parent lists it in cgroup.subtree_control, and once it does, only leaf groups hold"
           " processes (no internal processes)")
V2_MOUNT_NOTE = ("cgroup v2 has one hierarchy; controllers are enabled per subtree with"
                 " cgroup.subtree_control")

# v1 controllers and files, and what cgroup v2 has in their place.
V1_ONLY_CONTROLLERS = {
    "cpuacct": "cpu (cpu.stat counts the usage of every group)",
    "blkio": "io (io.weight, io.max, io.stat)",
    "freezer": "the core itself: cgroup.freeze in every group",
    "devices": "an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the group",
    "net_cls": "nothing: firewall rules match the cgroup path itself (nftables socket cgroupv2)",
    "net_prio": "nothing: use tc or nftables rules that match the cgroup path",
    "perf_event": "the core itself: perf follows any cgroup v2 group",
}
V1_FILES_ON_V2 = {
    "memory.limit_in_bytes": "memory.max",
    "memory.soft_limit_in_bytes": "memory.low (protection) or memory.high (throttling)",
    "memory.memsw.limit_in_bytes": "memory.swap.max (swap alone, not memory+swap)",
    "memory.usage_in_bytes": "memory.current",
    "memory.max_usage_in_bytes": "memory.peak",
    "memory.failcnt": "memory.events (the 'max' count)",
    "memory.oom_control": "memory.events (oom, oom_kill); v2 cannot switch the OOM killer off",
    "memory.swappiness": "nothing: v2 has no per-group swappiness",
    "cpu.shares": "cpu.weight (1..10000, 100 is the default; shares 1024 is weight 100)",
    "cpu.cfs_quota_us": "cpu.max ('QUOTA PERIOD' in microseconds, or 'max PERIOD')",
    "cpu.cfs_period_us": "cpu.max ('QUOTA PERIOD')",
    "cpu.rt_runtime_us": "nothing: v2 has no realtime budget per group",
    "cpuacct.usage": "cpu.stat (usage_usec)",
    "cpuacct.stat": "cpu.stat (user_usec, system_usec)",
    "blkio.weight": "io.weight",
    "blkio.throttle.read_bps_device": "io.max ('MAJ:MIN rbps=N')",
    "blkio.throttle.write_bps_device": "io.max ('MAJ:MIN wbps=N')",
    "blkio.throttle.read_iops_device": "io.max ('MAJ:MIN riops=N')",
    "blkio.throttle.write_iops_device": "io.max ('MAJ:MIN wiops=N')",
    "freezer.state": "cgroup.freeze (1 or 0)",
    "tasks": "cgroup.threads",
    "notify_on_release": "cgroup.events ('populated 0', watched with inotify)",
    "devices.allow": "an eBPF device program", "devices.deny": "an eBPF device program",
}
TASK_FILES = ("cgroup.procs", "tasks", "cgroup.threads")
REFUSED_KEYS = {
    "cgroup.procs": "processes are moved with `hutch cgroup classify` or started with"
                    " `hutch cgroup exec`",
    "tasks": "processes are moved with `hutch cgroup classify`",
    "cgroup.threads": "processes are moved with `hutch cgroup classify`",
    "release_agent": "the release agent is a program the kernel runs as root for the whole"
                     " hierarchy; hutch does not set it",
    "cgroup.kill": "this kills every process of the group; use `hutch cgroup delete` after"
                   " stopping them, or kill them yourself",
    "cgroup.event_control": "it takes an eventfd from the process that writes it",
}


class HierarchyRuleError(InvalidArgument):
    """A request that breaks one of the cgroup hierarchy rules; ``rule`` names it."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{message} (rule: {rule})")
        self.rule = rule


# --- the hierarchies the tool sees ----------------------------------------------------------------

class Hier:
    """One hierarchy: where it is mounted, which controllers, where our own cgroup is."""

    def __init__(self, version: int, controllers: tuple[str, ...], mountpoint: str, root: str,
                 own: str, mountpoints: tuple[str, ...] = ()) -> None:
        self.version = version
        # v1: the controllers mounted together ("name=systemd" for a named one);
        # v2: the controllers the hierarchy offers (cgroup.controllers of our cgroup)
        self.controllers = controllers
        self.mountpoint = mountpoint
        self.root = root
        self.own = own
        self.mountpoints = mountpoints or (mountpoint,)
        self._h = Hierarchy(version, controllers if version == 1 else (), mountpoint, root, own)

    @property
    def name(self) -> str:
        return ",".join(self.controllers) if self.version == 1 else "cgroup2"

    @property
    def own_dir(self) -> str:
        return self._h.dir_of(self.own)

    def dir(self, rel: str) -> str:
        return f"{self.own_dir}/{rel}" if rel else self.own_dir

    def cgroup_path(self, rel: str) -> str:
        """The path /proc/PID/cgroup shows for the group ``rel``."""
        own = self.own.rstrip("/")
        return f"{own}/{rel}" if rel else (self.own or "/")

    def rel_of(self, cgroup_path: str) -> str | None:
        """``cgroup_path`` relative to our own cgroup; None when it is outside."""
        if not is_below(cgroup_path, self.own):
            return None
        return cgroup_path[len(self.own):].strip("/") if self.own != "/" else \
            cgroup_path.strip("/")

    def dir_of(self, cgroup_path: str) -> str:
        return self._h.dir_of(cgroup_path)

    def has(self, controller: str) -> bool:
        return controller in self.controllers

    def __repr__(self) -> str:
        return f"Hier(v{self.version}, {self.name}, {self.mountpoint!r}, own={self.own!r})"


def show(rel: str) -> str:
    """A group as the tool names it: "/" for our own cgroup, "/demo/a" below it."""
    return "/" + rel


class Host:
    """The cgroup hierarchies of this host as the tool sees them."""

    def __init__(self, mode: str, hierarchies: list[Hier], kernel_controllers: dict[str, int]
                 | None = None) -> None:
        self.mode = mode  # "legacy", "hybrid" or "unified"
        self.hierarchies = hierarchies
        # /proc/cgroups: controller -> hierarchy id (0: not in any v1 hierarchy)
        self.kernel_controllers = kernel_controllers or {}

    @classmethod
    def current(cls) -> Host:
        mounts = read_mounts()
        own = read_own()
        return cls.from_facts(mode_of(mounts), mounts, own, _read_proc_cgroups())

    @classmethod
    def from_facts(cls, mode: str, mounts: list[Mount], own: list[OwnCgroup],
                   kernel: dict[str, int], v2_controllers: tuple[str, ...] | None = None) -> Host:
        hiers = []
        for h in find_hierarchies(mounts, own):
            if h.version == 1:
                points = tuple(m.mountpoint for m in mounts if m.fstype == "cgroup"
                               and set(h.controllers) <= m.options)
                hiers.append(Hier(1, h.controllers, h.mountpoint, h.root, h.own, points))
            else:
                points = tuple(m.mountpoint for m in mounts if m.fstype == "cgroup2")
                ctrls = v2_controllers
                if ctrls is None:
                    text = files.read_optional(os.path.join(h.dir_of(h.own), "cgroup.controllers"))
                    ctrls = tuple((text or "").split())
                hiers.append(Hier(2, ctrls, h.mountpoint, h.root, h.own, points))
        if not hiers:
            raise Unsupported("no cgroup hierarchy is mounted where hutch can see it"
                              " (see /proc/self/mountinfo)")
        hiers.sort(key=lambda h: (h.version, h.name.startswith("name="), h.name))
        return cls(mode, hiers, kernel)

    @property
    def v1(self) -> list[Hier]:
        return [h for h in self.hierarchies if h.version == 1]

    @property
    def v2(self) -> Hier | None:
        return next((h for h in self.hierarchies if h.version == 2), None)

    def hierarchy_of(self, controller: str) -> Hier | None:
        """The hierarchy a controller is attached to (v1 first, then cgroup2)."""
        for h in self.v1:
            if h.has(controller):
                return h
        v2 = self.v2
        if v2 is not None and (controller in v2.controllers
                               or controller in ("cgroup2", "unified")):
            return v2
        return None

    def resolve(self, controllers: list[str]) -> list[tuple[Hier, list[str]]]:
        """The hierarchies ``controllers`` name, each with the names that led to it.

        "*" is every hierarchy (on hybrid hosts that includes cgroup2 for process
        tracking, without asking for its controllers).
        """
        out: dict[int, tuple[Hier, list[str]]] = {}
        for c in controllers:
            if c == "*":
                for h in self.hierarchies:
                    out.setdefault(id(h), (h, []))[1].append("*")
                continue
            h = self.hierarchy_of(c)
            if h is None:
                raise self.unknown_controller(c)
            out.setdefault(id(h), (h, []))[1].append(c)
        return list(out.values())

    def unknown_controller(self, c: str) -> Exception:
        have = sorted({x for h in self.hierarchies for x in h.controllers})
        if self.mode == "unified":
            if c in V1_ONLY_CONTROLLERS:
                return Unsupported(f"{c} is a cgroup v1 controller; this host has only cgroup v2,"
                                   f" where its place is taken by {V1_ONLY_CONTROLLERS[c]}")
            if c.startswith("name="):
                return Unsupported(f"{c} names a v1 hierarchy; {V2_MOUNT_NOTE}, and there are"
                                   " no named hierarchies")
            if c in self.kernel_controllers:
                return Unsupported(
                    f"the {c} controller is not enabled for our cgroup: our parent does not list"
                    f" it in cgroup.subtree_control (available: {', '.join(have) or 'none'})")
        elif c in self.kernel_controllers:
            return Unsupported(
                f"the kernel has the {c} controller, but no hierarchy of it is mounted where"
                " hutch can see it; hutch does not mount hierarchies (that changes the host"
                f" for everyone); mount one first, e.g. mount -t cgroup -o {c} none"
                f" /sys/fs/cgroup/{c}")
        return InvalidArgument(f"unknown controller {c!r}; this host has:"
                               f" {', '.join(have) or 'none'} (or '*' for every hierarchy)")


def _read_proc_cgroups() -> dict[str, int]:
    out: dict[str, int] = {}
    text = files.read_optional("/proc/cgroups") or ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) >= 4 and fields[1].isdigit() and fields[3] == "1":
            out[fields[0]] = int(fields[1])
    return out


# --- naming groups --------------------------------------------------------------------------------

def check_rel(path: str, what: str = "group path") -> str:
    """A group path relative to our own cgroup, cleaned: "" (our own) or "a/b"."""
    if any(c in path for c in "\0\n"):
        raise InvalidArgument(f"{what} {path!r} contains a NUL or newline character")
    parts = [p for p in path.split("/") if p]
    if ".." in parts or "." in parts:
        raise InvalidArgument(f"{what} {path!r} contains '.' or '..': paths are relative to"
                              " our own cgroup and cannot leave it")
    return "/".join(parts)


def parse_spec(spec: str) -> tuple[list[str], str]:
    """libcgroup's ``CONTROLLERS:PATH`` ("cpu,memory:demo/a", "*:demo") split and checked."""
    controllers, sep, path = spec.partition(":")
    if not sep or not controllers:
        raise InvalidArgument(f"-g {spec!r}: expected CONTROLLERS:PATH, e.g. cpu,memory:demo/a")
    names = [c.strip() for c in controllers.split(",") if c.strip()]
    if not names:
        raise InvalidArgument(f"-g {spec!r}: no controller before ':'")
    return names, check_rel(path)


class Target:
    """One group in one hierarchy."""

    def __init__(self, hier: Hier, rel: str, named: list[str]) -> None:
        self.hier = hier
        self.rel = rel
        self.named = named  # the controllers the user named for it (or ["*"])

    @property
    def dir(self) -> str:
        return self.hier.dir(self.rel)

    def label(self) -> str:
        return f"{self.hier.name}:{show(self.rel)}"

    def __repr__(self) -> str:
        return f"Target({self.label()})"


def targets(host: Host, specs: list[str]) -> list[Target]:
    """The groups ``-g`` options name: one Target per hierarchy per option."""
    if not specs:
        raise InvalidArgument("name a group with -g CONTROLLERS:PATH, e.g. -g cpu,memory:demo/a")
    out = []
    for spec in specs:
        names, rel = parse_spec(spec)
        for hier, named in host.resolve(names):
            out.append(Target(hier, rel, named))
    return out


def one_group_per_hierarchy(tgts: list[Target]) -> list[Target]:
    """Refuse two different groups of one hierarchy for one process; drop repeats."""
    seen: dict[int, Target] = {}
    out = []
    for t in tgts:
        other = seen.get(id(t.hier))
        if other is None:
            seen[id(t.hier)] = t
            out.append(t)
        elif other.rel != t.rel:
            raise HierarchyRuleError(
                RULE_ONE_GROUP,
                f"{other.label()} and {t.label()} are two groups of the same hierarchy"
                f" ({t.hier.name}, mounted at {t.hier.mountpoint}); a process can be in only"
                " one of them. Name one group per hierarchy (controllers mounted together"
                " share one)")
    return out


def existing(tgts: list[Target]) -> list[Target]:
    """Leave out the hierarchies of a '*' where the group does not exist; at least one must."""
    out = [t for t in tgts if t.named != ["*"] or os.path.isdir(t.dir)]
    if tgts and not out:
        raise NotFound(f"no group {show(tgts[0].rel)} in any hierarchy")
    return out


def _require_dir(t: Target) -> None:
    if not os.path.isdir(t.dir):
        raise NotFound(f"no group {show(t.rel)} in the {t.hier.name} hierarchy ({t.dir});"
                       f" create it first: hutch cgroup create -g {t.hier.name}:{t.rel}")


def _refuse_own(t: Target, verb: str) -> None:
    if not t.rel:
        raise InvalidArgument(
            f"refusing to {verb} our own cgroup ({t.hier.cgroup_path('')} in {t.hier.name},"
            " the tool's '/'): hutch did not create it; name a group below it, e.g."
            f" {t.hier.name}:demo")


# --- create ---------------------------------------------------------------------------------------

def _v2_wanted(t: Target, mode: str) -> list[str]:
    """The v2 controllers a create should enable for ``t``: those named; for '*' all of
    them on a unified host (on a hybrid one '*' joins cgroup2 only to track processes,
    as runc does, and enables nothing in the groups above)."""
    named = [c for c in t.named if c in t.hier.controllers]
    if "*" in t.named and mode == "unified":
        named += [c for c in t.hier.controllers if c not in named]
    return named


def enable_v2(t: Target, wanted: list[str], done: list[tuple[str, str]]) -> None:
    """Enable ``wanted`` in cgroup.subtree_control from our own cgroup down to ``t``'s parent.

    ``done`` collects (subtree_control file, controller) for undo.
    """
    if not wanted:
        return
    parts = t.rel.split("/")
    levels = [t.hier.dir("/".join(parts[:i])) for i in range(len(parts))]
    for level in levels:
        control = os.path.join(level, "cgroup.subtree_control")
        enabled = set(files.read(control).split())
        missing = [c for c in wanted if c not in enabled]
        if not missing:
            continue
        is_root = not os.path.exists(os.path.join(level, "cgroup.type"))
        procs = (files.read_optional(os.path.join(level, "cgroup.procs")) or "").split()
        if procs and not is_root:
            # Checked before writing: enabling even a threaded controller (cpu, pids) here
            # would turn the group's new children "domain invalid".
            whose = ("our own cgroup " + t.hier.own) if level == t.hier.own_dir else level
            raise HierarchyRuleError(
                RULE_NO_INTERNAL,
                f"cannot give {', '.join(missing)} to the groups below {whose}: it holds"
                f" processes ({' '.join(procs[:5])}{' ...' if len(procs) > 5 else ''}), and on"
                " cgroup v2 only a group without processes can enable controllers for its"
                " children. Run hutch cgroup from a process whose cgroup can delegate (the"
                " root, or a parent whose processes were moved into a leaf, as systemd's"
                " DelegateSubgroup= does); groups without controllers can still be made:"
                f" -g cgroup2:{t.rel}")
        for c in missing:
            try:
                files.write(control, f"+{c}")
            except SystemFailure as e:
                if e.errno == errno.EOPNOTSUPP:
                    raise Unsupported(f"cannot enable {c} in {control}: the group is part of a"
                                      " threaded subtree or does not offer it (see its"
                                      " cgroup.type and cgroup.controllers)") from e
                raise
            done.append((control, c))


def undo_enable(done: list[tuple[str, str]], error: BaseException) -> None:
    for control, c in reversed(done):
        try:
            files.write(control, f"-{c}")
        except SystemFailure as e:
            error.add_note(f"cleanup: {e}")


def create(host: Host, tgts: list[Target]) -> list[str]:
    """mkdir -p each group (cgcreate); on v2 enable the named controllers on the way."""
    for t in tgts:
        _refuse_own(t, "create")
    created: list[str] = []
    enabled: list[tuple[str, str]] = []
    lines = []
    try:
        for t in tgts:
            made = make_dirs(t.dir)
            created += made
            if t.hier.version == 1 and t.hier.has("cpuset"):
                from hutch.cgroups.v1 import cpuset
                for d in made:
                    cpuset.inherit(d)
            if t.hier.version == 2:
                enable_v2(t, _v2_wanted(t, host.mode), enabled)
            lines.append(f"{'created' if made else 'exists '} {t.label()}  ({t.dir})")
    except BaseException as e:
        undo_enable(enabled, e)
        undo_dirs(created, e)
        raise
    for control, c in enabled:
        lines.append(f"enabled +{c} in {control}")
    return lines


# --- set and get ----------------------------------------------------------------------------------

def check_key(key: str) -> str:
    if not key or "/" in key or key in (".", "..") or any(c in key for c in "\0\n"):
        raise InvalidArgument(f"{key!r} is not a cgroup file name")
    if key in REFUSED_KEYS:
        raise InvalidArgument(f"{key}: not with set; {REFUSED_KEYS[key]}")
    return key


def _key_target(key: str, tgts: list[Target], host: Host) -> Target:
    """The target whose hierarchy owns the file ``key`` (by its controller prefix)."""
    prefix = key.split(".", 1)[0]
    matches = [t for t in tgts if t.hier.has(prefix) or (t.hier.version == 2 and (
        prefix in ("cgroup", "io", "cpu", "memory", "pids", "cpuset", "hugetlb", "rdma", "misc")
        and os.path.exists(os.path.join(t.dir, key))))]
    if not matches and prefix in ("cgroup", "notify_on_release"):
        matches = [t for t in tgts if os.path.exists(os.path.join(t.dir, key))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1 and len({id(t.hier) for t in matches}) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InvalidArgument(f"{key} exists in more than one of the hierarchies named"
                              f" ({', '.join(t.label() for t in matches)}); name one with -g")
    if host.mode == "unified" and key in V1_FILES_ON_V2:
        raise Unsupported(f"{key} is a cgroup v1 file; on cgroup v2 use"
                          f" {V1_FILES_ON_V2[key]}")
    named = ", ".join(t.label() for t in tgts)
    raise InvalidArgument(f"{key}: none of the groups named ({named}) is in the hierarchy of"
                          f" the {prefix} controller; add it to -g (e.g. -g {prefix}:PATH)")


def _missing_file_hint(t: Target, key: str, host: Host) -> str:
    if t.hier.version == 2:
        if key in V1_FILES_ON_V2:
            return f"{key} is a cgroup v1 file; on cgroup v2 use {V1_FILES_ON_V2[key]}"
        c = key.split(".", 1)[0]
        if c in t.hier.controllers:
            return (f"the {c} controller is not enabled for {show(t.rel)}: its parent must"
                    f" list it in cgroup.subtree_control (hutch cgroup create -g {c}:{t.rel}"
                    " does that)")
    return f"the {t.hier.name} hierarchy has no file {key} in {show(t.rel)}"


def set_values(host: Host, tgts: list[Target], pairs: list[tuple[str, str]]) -> list[str]:
    """Write raw values (cgset); all checked first, the earlier writes undone on a refusal."""
    from hutch.cgroups.convert import Write, run

    steps = []
    for key, value in pairs:
        check_key(key)
        t = _key_target(key, tgts, host)
        _refuse_own(t, "change")
        _require_dir(t)
        path = os.path.join(t.dir, key)
        if not os.path.exists(path):
            raise NotFound(f"cannot set {key} of {t.label()}: {_missing_file_hint(t, key, host)}")
        steps.append(Write(path, value, files.read_optional(path)))
    run(steps)
    return [f"{step.path}: {step.restore!r} -> {step.value!r}" for step in steps]


# keys whose number is a limit a child cannot exceed (v1, v2)
LIMIT_KEYS = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.max",
              "memory.high", "memory.swap.max", "pids.max")


def _limit_number(text: str | None) -> int | None:
    """None: no limit (or unreadable)."""
    if text is None:
        return None
    t = text.strip()
    if t in ("", "max") or not t.lstrip("-").isdigit():
        return None
    n = int(t)
    return None if n < 0 or n >= 1 << 62 else n


def _cpu_ratio(directory: str, key: str) -> float | None:
    """CPU quota as a fraction of one CPU, from cpu.cfs_quota_us/period or cpu.max."""
    if key == "cpu.max":
        text = files.read_optional(os.path.join(directory, "cpu.max"))
        if not text:
            return None
        q, p = text.split()[0], text.split()[-1]
        return None if q == "max" or not (q.isdigit() and p.isdigit()) else int(q) / int(p)
    quota = files.read_optional(os.path.join(directory, "cpu.cfs_quota_us"))
    period = files.read_optional(os.path.join(directory, "cpu.cfs_period_us"))
    if quota is None or period is None or int(quota) < 0:
        return None
    return int(quota) / int(period)


def inherited_note(t: Target, key: str) -> str | None:
    """If an ancestor bounds ``key`` more tightly than the group itself, say so."""
    is_limit = key in LIMIT_KEYS or (key.startswith("hugetlb.") and
                                     key.endswith((".limit_in_bytes", ".max")))
    is_cpu = key in ("cpu.cfs_quota_us", "cpu.max")
    if not (is_limit or is_cpu):
        return None
    mount_root = t.hier.mountpoint

    def value(d: str) -> float | None:
        if is_cpu:
            return _cpu_ratio(d, key)
        return _limit_number(files.read_optional(os.path.join(d, key)))

    mine = value(t.dir)
    best, where = mine, None
    d = os.path.dirname(t.dir)
    while d.startswith(mount_root) and len(d) >= len(mount_root):
        v = value(d)
        if v is not None and (best is None or v < best):
            best, where = v, d
        if d == mount_root:
            break
        d = os.path.dirname(d)
    if where is None:
        return None
    rel = t.hier.rel_of(_cgroup_of_dir(t.hier, where))
    place = show(rel) if rel is not None else _cgroup_of_dir(t.hier, where) + " (above ours)"
    shown = f"{best:.0%} of a CPU" if is_cpu else str(int(best))  # type: ignore[arg-type]
    return (f"effective limit {shown}, set on {place}: {RULE_INHERIT} (a group never gets"
            " more than its ancestors allow)")


def _cgroup_of_dir(h: Hier, directory: str) -> str:
    rest = directory[len(h.mountpoint):].strip("/")
    root = h.root.rstrip("/")
    return f"{root}/{rest}" if rest else (h.root or "/")


def _readable_files(t: Target) -> list[str]:
    names = []
    for name in sorted(os.listdir(t.dir)):
        path = os.path.join(t.dir, name)
        if not os.path.isfile(path) or not os.stat(path).st_mode & 0o444:
            continue
        prefix = name.split(".", 1)[0]
        if t.hier.has(prefix) or prefix == "cgroup" or name in ("tasks", "notify_on_release"):
            names.append(name)
    return names


def get_values(host: Host, tgts: list[Target], keys: list[str]) -> list[str]:
    """cgget: the named files (all files of the named controllers without -r), each group
    under its name, with a note where an ancestor's limit is the one in force."""
    lines: list[str] = []
    groups: dict[str, list[tuple[Target, str]]] = {}
    if keys:
        for key in keys:
            if not key or "/" in key:
                raise InvalidArgument(f"{key!r} is not a cgroup file name")
            t = _key_target(key, tgts, host)
            groups.setdefault(t.label(), []).append((t, key))
    else:
        for t in existing(tgts):
            _require_dir(t)
            groups.setdefault(t.label(), []).extend((t, k) for k in _readable_files(t))
    for label, entries in groups.items():
        lines.append(f"{label}:")
        for t, key in entries:
            _require_dir(t)
            path = os.path.join(t.dir, key)
            try:
                text = files.read(path)
            except SystemFailure as e:
                if e.errno == errno.ENOENT:
                    raise NotFound(f"cannot get {key} of {t.label()}:"
                                   f" {_missing_file_hint(t, key, host)}") from None
                lines.append(f"{key}: <{e.strerror or e}>")
                continue
            if "\n" in text:
                lines.append(f"{key}:")
                lines += [f"\t{x}" for x in text.splitlines()]
            else:
                lines.append(f"{key}: {text}")
            note = inherited_note(t, key)
            if note:
                lines.append(f"\t# {note}")
        lines.append("")
    return lines[:-1] if lines and lines[-1] == "" else lines


# --- processes ------------------------------------------------------------------------------------

def proc_cgroups(pid: int) -> list[OwnCgroup]:
    from hutch.cgroups.mode import parse_proc_cgroup
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return parse_proc_cgroup(f.read())
    except FileNotFoundError:
        raise NotFound(f"no process {pid}") from None


def where_in(h: Hier, entries: list[OwnCgroup]) -> str | None:
    """The cgroup path of a process in hierarchy ``h`` (from its /proc/PID/cgroup lines)."""
    for e in entries:
        if h.version == 2 and e.hierarchy_id == 0:
            return e.path
        if h.version == 1 and e.hierarchy_id != 0 and set(e.controllers) == set(h.controllers):
            return e.path
    return None


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def classify(host: Host, tgts: list[Target], pids: list[int]) -> list[str]:
    """Move processes (their whole thread groups) into the groups (cgclassify)."""
    tgts = one_group_per_hierarchy(existing(tgts))
    for t in tgts:
        _require_dir(t)
    me = os.getpid()
    plans = []
    for pid in pids:
        if pid <= 1:
            raise InvalidArgument(f"pid {pid}: hutch cgroup leaves PID 1 (and 0) alone")
        entries = proc_cgroups(pid)
        for t in tgts:
            now = where_in(t.hier, entries)
            rel = t.hier.rel_of(now) if now is not None else None
            if rel is None:
                raise InvalidArgument(
                    f"pid {pid} ({comm(pid)}) is in {now} of the {t.hier.name} hierarchy,"
                    f" outside our own cgroup {t.hier.own}; hutch cgroup moves only processes"
                    " that are in its own subtree already")
            plans.append((pid, t, rel))
    lines = []
    for pid, t, rel in plans:
        try:
            files.write(os.path.join(t.dir, "cgroup.procs"), str(pid))
        except SystemFailure as e:
            hint = ""
            if t.hier.version == 2 and e.errno == errno.EBUSY:
                hint = (f" ({RULE_NO_INTERNAL}: {show(t.rel)} gives controllers to its"
                        " children, so it cannot hold processes; move them into a leaf group)")
            elif t.hier.version == 1 and t.hier.has("cpuset") and e.errno == errno.ENOSPC:
                hint = " (the group has no cpuset.cpus or cpuset.mems yet; set them first)"
            raise SystemFailure(e.errno or errno.EIO, f"move pid {pid} to {t.label()}: {e}{hint}")\
                from e
        who = "this process" if pid == me else f"pid {pid} ({comm(pid)})"
        if rel == t.rel:
            lines.append(f"{who}: {t.hier.name}: already in {show(t.rel)}")
        else:
            lines.append(f"{who}: {t.hier.name}: {show(rel)} -> {show(t.rel)}")
    if lines:
        lines.append(f"(a process leaves its old group when it joins a new one: {RULE_ONE_GROUP};"
                     " the processes it starts from now on begin in the new groups)")
    return lines


def join_for_exec(host: Host, tgts: list[Target]) -> list[str]:
    """Move this process into the groups, before it execs the command (cgexec)."""
    tgts = one_group_per_hierarchy(existing(tgts))
    for t in tgts:
        _require_dir(t)
    return classify(host, tgts, [os.getpid()])


# --- delete ---------------------------------------------------------------------------------------

def delete(host: Host, tgts: list[Target], recursive: bool = False,
           timeout: float = 5.0) -> list[str]:
    """cgdelete: remove the groups; their processes move to the parent group, as libcgroup
    does. Child groups are removed only with ``recursive``."""
    lines: list[str] = []
    for t in tgts:
        _refuse_own(t, "delete")
    tgts = existing(tgts)
    for t in tgts:
        if not os.path.isdir(t.dir):
            raise NotFound(f"no group {show(t.rel)} in the {t.hier.name} hierarchy ({t.dir})")
        children = sorted(d for d in os.listdir(t.dir) if os.path.isdir(os.path.join(t.dir, d)))
        if children and not recursive:
            raise InvalidArgument(f"{t.label()} has child groups ({', '.join(children)});"
                                  " delete them first, or give -r to delete them with it")
    for t in tgts:
        if not os.path.isdir(t.dir):
            continue  # a repeat of a co-mounted hierarchy
        parent_rel = t.rel.rpartition("/")[0]
        parent_dir = t.hier.dir(parent_rel)
        dirs = [d for d, _, _ in os.walk(t.dir)]
        for d in reversed(dirs):  # children first
            for pid in files.read_pids(os.path.join(d, "cgroup.procs")):
                try:
                    files.write(os.path.join(parent_dir, "cgroup.procs"), str(pid))
                except SystemFailure as e:
                    if e.errno == errno.ESRCH:
                        continue
                    hint = ""
                    if t.hier.version == 2 and e.errno == errno.EBUSY:
                        hint = (f" ({RULE_NO_INTERNAL}: {show(parent_rel)} gives controllers to"
                                " its children and cannot take processes; move or stop them"
                                " first)")
                    raise SystemFailure(e.errno or errno.EIO, f"move pid {pid} out of"
                                        f" {t.hier.name}:{d}: {e}{hint}") from e
                lines.append(f"pid {pid} ({comm(pid)}): {t.hier.name}:"
                             f" {show(t.hier.rel_of(_cgroup_of_dir(t.hier, d)) or '')} ->"
                             f" {show(parent_rel)}")
            _rmdir(d, timeout)
        lines.append(f"deleted {t.label()}" + (" and the groups below it" if len(dirs) > 1
                                                 else ""))
    return lines


def _rmdir(d: str, timeout: float) -> None:
    def gone() -> bool:
        try:
            os.rmdir(d)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno == errno.EBUSY:
                return False
            raise SystemFailure(e.errno or errno.EIO, f"remove cgroup {d}: {e.strerror}") from e
    if not wait_until(gone, timeout):
        raise SystemFailure(errno.EBUSY, f"remove cgroup {d}: still busy after {timeout:g}s")


# --- tree -----------------------------------------------------------------------------------------

def _human_bytes(n: int) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def usage(h: Hier, d: str) -> str:
    """What a group uses, in the hierarchy's controllers (cgtop's columns)."""
    def rd(name: str) -> str | None:
        return files.read_optional(os.path.join(d, name))

    parts = []
    mem = rd("memory.usage_in_bytes") if h.version == 1 else rd("memory.current")
    if mem is not None and mem.strip().isdigit():
        limit = _limit_number(rd("memory.limit_in_bytes") if h.version == 1 else rd("memory.max"))
        parts.append(f"mem {_human_bytes(int(mem))}"
                     + (f"/{_human_bytes(limit)}" if limit is not None else ""))
    if h.version == 1:
        cpu = rd("cpuacct.usage")
        if cpu is not None and cpu.strip().isdigit():
            parts.append(f"cpu {int(cpu) / 1e9:.2f}s")
        shares = rd("cpu.shares")
        if shares is not None and shares.strip() != "1024":
            parts.append(f"shares {shares.strip()}")
        quota = rd("cpu.cfs_quota_us")
        if quota is not None and quota.strip() != "-1":
            parts.append(f"quota {quota.strip()}/{(rd('cpu.cfs_period_us') or '?').strip()}us")
    else:
        stat = rd("cpu.stat")
        if stat:
            for line in stat.splitlines():
                if line.startswith("usage_usec "):
                    parts.append(f"cpu {int(line.split()[1]) / 1e6:.2f}s")
        cmax = rd("cpu.max")
        if cmax and not cmax.startswith("max"):
            parts.append(f"cpu.max {cmax.strip()}")
    pids = rd("pids.current")
    if pids is not None and pids.strip().isdigit():
        limit = _limit_number(rd("pids.max"))
        parts.append(f"pids {pids.strip()}" + (f"/{limit}" if limit is not None else ""))
    if h.version == 2:
        sub = (rd("cgroup.subtree_control") or "").split()
        if sub:
            parts.append("children get " + " ".join(f"+{c}" for c in sub))
    return "  ".join(parts)


def _procs(d: str) -> list[int]:
    try:
        return files.read_pids(os.path.join(d, "cgroup.procs"))
    except SystemFailure:
        return []


def tree(host: Host, rel: str = "", only: list[str] | None = None, max_procs: int = 6) -> str:
    """Every hierarchy (or those of ``only``) from group ``rel`` down: groups, their
    processes and use, like systemd-cgls with cgtop's numbers."""
    rel = check_rel(rel, "tree path")
    hiers = host.hierarchies if not only else [h for h, _ in host.resolve(only)]
    out: list[str] = []
    for h in hiers:
        top = h.dir(rel)
        own = "the root of this hierarchy" if h.own in ("", "/") else h.own
        out.append(f"{h.name}  (cgroup v{h.version} at {h.mountpoint}; '/' is our own cgroup,"
                   f" {own})")
        if not os.path.isdir(top):
            out.append(f"  (no group {show(rel)} in this hierarchy)")
            out.append("")
            continue
        _tree_lines(h, top, show(rel), "", "", out, max_procs)
        out.append("")
    notes = []
    if any(h.version == 1 for h in hiers):
        notes.append(V1_NOTE)
    if any(h.version == 2 for h in hiers):
        notes.append(V2_NOTE)
    notes.append(INHERIT_NOTE)
    out += [f"note: {n}" for n in notes]
    return "\n".join(out) + "\n"


def _tree_lines(h: Hier, d: str, name: str, lead: str, child_lead: str, out: list[str],
                max_procs: int) -> None:
    use = usage(h, d)
    out.append(f"{lead}{name}" + (f"  [{use}]" if use else ""))
    try:
        children = sorted(e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e)))
    except OSError:
        children = []
    pids = _procs(d)
    shown = pids if max_procs < 0 else pids[:max_procs]
    bar = "│ " if children else "  "
    for pid in shown:
        out.append(f"{child_lead}{bar} {pid} {comm(pid)}")
    if len(shown) < len(pids):
        out.append(f"{child_lead}{bar} ... and {len(pids) - len(shown)} more processes")
    for i, c in enumerate(children):
        last = i == len(children) - 1
        _tree_lines(h, os.path.join(d, c), c, child_lead + ("└─" if last else "├─"),
                    child_lead + ("  " if last else "│ "), out, max_procs)


# --- load (cgconfig.conf) ------------------------------------------------------------------------

def _apply_perm(d: str, owner: dict[str, tuple]) -> None:
    """perm { admin {...} task {...} } on one group directory."""
    admin, task = owner.get("admin"), owner.get("task")
    names = sorted(os.listdir(d))
    if admin:
        uid, gid, fperm, dperm = admin
        os.chown(d, -1 if uid is None else uid, -1 if gid is None else gid)
        if dperm is not None:
            os.chmod(d, dperm)
        for n in names:
            p = os.path.join(d, n)
            if n in TASK_FILES or not os.path.isfile(p):
                continue
            os.chown(p, -1 if uid is None else uid, -1 if gid is None else gid)
            if fperm is not None:
                os.chmod(p, fperm)
    if task:
        uid, gid, fperm, _ = task
        for n in TASK_FILES:
            p = os.path.join(d, n)
            if os.path.exists(p):
                os.chown(p, -1 if uid is None else uid, -1 if gid is None else gid)
                if fperm is not None:
                    os.chmod(p, fperm)


def _perm_text(owner: dict[str, tuple]) -> str:
    parts = []
    for kind in ("admin", "task"):
        if kind in owner:
            uid, gid, fperm, dperm = owner[kind]
            text = f"{kind} {'-' if uid is None else uid}:{'-' if gid is None else gid}"
            if dperm is not None:
                text += f" dperm {dperm:03o}"
            if fperm is not None:
                text += f" fperm {fperm:03o}"
            parts.append(text)
    return ", ".join(parts)


def load(host: Host, text: str, filename: str = "cgconfig.conf", check_only: bool = False
         ) -> list[str]:
    """cgconfigparser -l: build the groups of a cgconfig.conf, or nothing.

    Everything is checked before the first mkdir (syntax, the hierarchy rules, the
    controllers, owners); a write the kernel refuses afterwards undoes all that was
    done: the groups made are removed, values changed in groups that existed
    before are put back.
    """
    from hutch.cgroups import cgconfig

    cfg = cgconfig.parse(text, filename)
    p = cgconfig.plan(cfg, host)
    lines = [f"note: {n}" for n in p.notes]
    if check_only:
        for pg in p.groups:
            lines.append(f"group {show(pg.rel)}: would be in "
                         + ", ".join(h.name for h, _, _ in pg.per_hier))
            for h, _, settings in pg.per_hier:
                lines += [f"  {s.key} = {s.value}" for s in settings]
        return lines
    created: list[str] = []
    enabled: list[tuple[str, str]] = []
    restore: list[tuple[str, str]] = []  # (file, old value) in groups that existed before
    try:
        for pg in p.groups:
            places = []
            for h, named, settings in pg.per_hier:
                t = Target(h, pg.rel, named)
                made = make_dirs(t.dir)
                created += made
                if h.version == 1 and h.has("cpuset"):
                    from hutch.cgroups.v1 import cpuset
                    for d in made:
                        cpuset.inherit(d)
                if h.version == 2:
                    enable_v2(t, [c for c in named if c in h.controllers], enabled)
                for s in settings:
                    path = os.path.join(t.dir, s.key)
                    where = f"{filename}:{s.line}: group {pg.rel}"
                    if not os.path.exists(path):
                        raise NotFound(f"{where}: cannot set {s.key}:"
                                       f" {_missing_file_hint(t, s.key, host)}")
                    old = files.read_optional(path)
                    try:
                        files.write(path, s.value)
                    except SystemFailure as e:
                        raise SystemFailure(e.errno or errno.EIO, f"{where}: {e}") from e
                    if t.dir not in made and old is not None:
                        restore.append((path, old))
                if pg.owner:
                    _apply_perm(t.dir, pg.owner)
                places.append(f"{h.name} ({t.dir})")
            lines.append(f"group {show(pg.rel)}: " + ", ".join(places))
            for h, _, settings in pg.per_hier:
                lines += [f"  {s.key} = {s.value}" for s in settings]
            if pg.owner:
                lines.append(f"  perm: {_perm_text(pg.owner)}")
    except BaseException as e:
        for path, old in reversed(restore):
            try:
                files.write(path, old)
            except SystemFailure as err:
                e.add_note(f"rollback: {err}")
        undo_enable(enabled, e)
        undo_dirs(created, e)
        e.add_note("nothing was left behind: the groups this load made are removed again")
        raise
    for control, c in enabled:
        lines.append(f"enabled +{c} in {control}")
    return lines


# --- stats and accounting of a group --------------------------------------------------------------

def manager_for(host: Host, rel: str):  # type: ignore[no-untyped-def]
    """A V1Manager or V2Manager for the group ``rel`` (for stats and accounting)."""
    from hutch.cgroups.mode import UNIFIED
    from hutch.cgroups.v1.manager import V1Manager
    from hutch.cgroups.v2.manager import V2Manager

    rel = check_rel(rel)
    if host.mode == "unified":
        h = host.v2
        assert h is not None
        return V2Manager(h.dir(rel), h.cgroup_path(rel))
    paths: dict[str, str] = {}
    for h in host.hierarchies:
        if not os.path.isdir(h.dir(rel)):
            continue
        for key in (h.controllers if h.version == 1 else (UNIFIED,)):
            paths[key] = h.dir(rel)
    if not paths:
        raise NotFound(f"no group {show(rel)} in any hierarchy")
    return V1Manager(paths, show(rel))
