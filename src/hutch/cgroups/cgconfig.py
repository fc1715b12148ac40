"""libcgroup's cgconfig.conf: parse it, check it against the host, plan what to create.

The file (cgconfig.conf(5))::

    mount {                         # which hierarchy each controller is mounted on
        cpu = /sys/fs/cgroup/cpu;
        memory = /sys/fs/cgroup/memory;
    }
    group demo/a {                  # a group, with a block per controller
        perm {
            task  { uid = root; gid = root; fperm = 660; }
            admin { uid = root; gid = root; dperm = 775; fperm = 664; }
        }
        cpu    { cpu.shares = 512; }
        memory { memory.limit_in_bytes = 64M; }
    }
    default  { perm { ... } }       # perm for groups without their own
    template ... { ... }            # for cgrulesengd: no group is made at load time
    namespace { cpu = /base; }      # per-controller base paths

``parse()`` is pure (text in, ``Config`` out, errors carry file:line).
``plan()`` checks a Config against a ``tool.Host`` and returns a ``Plan`` (the
groups, the settings per hierarchy, notes), or raises before anything is made:

- a mount entry is accepted when it names a mount that exists with exactly that
  hierarchy's controllers (hutch mounts nothing); one that would attach a
  controller to a second hierarchy (cpu with memory, when each is mounted on its
  own; or the same controller at two places) is refused naming the v1 rule "a
  controller is attached to at most one hierarchy";
- on a cgroup v2 host a mount block is explained away: there is one hierarchy, and
  a group's controllers come from its parent's cgroup.subtree_control; v1 file
  names that v2 renamed are translated (cpu.shares -> cpu.weight,
  memory.limit_in_bytes -> memory.max, ...), with a note for each;
- a child asking for more than its parent (both in the file) gets a note: children
  inherit their parent's limits, so the parent's is the one in force.

tool.load() carries a Plan out, undoing everything if the kernel refuses a write.
"""

from __future__ import annotations

import os

from hutch.cgroups.tool import (RULE_INHERIT, RULE_ONE_HIERARCHY, V1_FILES_ON_V2,
                                V1_ONLY_CONTROLLERS, V2_MOUNT_NOTE, Hier, HierarchyRuleError,
                                Host, check_key, check_rel, show)
from hutch.errors import InvalidArgument, Unsupported


class CgconfigError(InvalidArgument):
    """A cgconfig.conf that cannot be read: says where."""


# --- parsing -------------------------------------------------------------------------------------

class Token:
    __slots__ = ("kind", "line", "text")

    def __init__(self, kind: str, text: str, line: int) -> None:
        self.kind = kind  # "word", "string", "{", "}", ";"
        self.text = text
        self.line = line

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.text!r}, line {self.line})"


def tokenize(text: str, filename: str = "cgconfig.conf") -> list[Token]:
    tokens: list[Token] = []
    i, line = 0, 1
    while i < len(text):
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
        elif ch in "{};":
            tokens.append(Token(ch, ch, line))
            i += 1
        elif ch == '"':
            j = i + 1
            buf = []
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text):
                    j += 1
                if text[j] == "\n":
                    raise CgconfigError(f"{filename}:{line}: a quoted string runs past the end"
                                        " of the line")
                buf.append(text[j])
                j += 1
            if j >= len(text):
                raise CgconfigError(f"{filename}:{line}: unterminated quoted string")
            tokens.append(Token("string", "".join(buf), line))
            i = j + 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in '{};#"':
                j += 1
            tokens.append(Token("word", text[i:j], line))
            i = j
    return tokens


class Setting:
    __slots__ = ("key", "line", "value")

    def __init__(self, key: str, value: str, line: int) -> None:
        self.key = key
        self.value = value
        self.line = line

    def __repr__(self) -> str:
        return f"Setting({self.key!r}, {self.value!r})"


class Perm:
    """perm { task { uid; gid; fperm; } admin { uid; gid; dperm; fperm; } }"""

    def __init__(self) -> None:
        self.task: dict[str, str] = {}
        self.admin: dict[str, str] = {}
        self.line = 0


class GroupBlock:
    def __init__(self, name: str, line: int) -> None:
        self.name = name
        self.line = line
        self.controllers: dict[str, list[Setting]] = {}
        self.controller_lines: dict[str, int] = {}
        self.perm: Perm | None = None


class MountEntry:
    __slots__ = ("controller", "line", "path")

    def __init__(self, controller: str, path: str, line: int) -> None:
        self.controller = controller
        self.path = path
        self.line = line

    def __repr__(self) -> str:
        return f"MountEntry({self.controller!r}, {self.path!r})"


class Config:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.mounts: list[MountEntry] = []
        self.groups: list[GroupBlock] = []
        self.default_perm: Perm | None = None
        self.templates: list[tuple[str, int]] = []
        self.namespaces: list[MountEntry] = []


class _Parser:
    def __init__(self, tokens: list[Token], filename: str) -> None:
        self.tokens = tokens
        self.i = 0
        self.filename = filename

    def error(self, line: int, msg: str) -> CgconfigError:
        return CgconfigError(f"{self.filename}:{line}: {msg}")

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self, what: str) -> Token:
        tok = self.peek()
        if tok is None:
            last = self.tokens[-1].line if self.tokens else 1
            raise self.error(last, f"the file ends where {what} should come")
        self.i += 1
        return tok

    def expect(self, kind: str, what: str) -> Token:
        tok = self.next(what)
        if tok.kind != kind:
            raise self.error(tok.line, f"expected {what}, found {tok.text!r}")
        return tok

    def assignment(self, toks: list[Token], last_eq: bool) -> tuple[str, str, int]:
        """"key = value" from tokens; ``last_eq``: split at the last '=' (mount entries,
        whose key may be "name=foo"), else at the first (values may hold '=')."""
        line = toks[0].line
        eqs = [(ti, ci) for ti, t in enumerate(toks) if t.kind == "word"
               for ci, ch in enumerate(t.text) if ch == "="]
        if not eqs:
            raise self.error(line, f"expected 'key = value;', found"
                                   f" {' '.join(t.text for t in toks)!r}")
        ti, ci = eqs[-1] if last_eq else eqs[0]
        key = "".join([t.text for t in toks[:ti]] + [toks[ti].text[:ci]]).strip()
        rest = [toks[ti].text[ci + 1:]] + [t.text for t in toks[ti + 1:]]
        value = " ".join(p for p in rest if p).strip()
        if not key:
            raise self.error(line, "a setting without a name before '='")
        return key, value, line

    def block(self) -> list[tuple[list[Token], list | None, int]]:
        """Read "{ ... }" (the '{' already taken): [(header, sub-statements or None, line)]."""
        out: list[tuple[list[Token], list | None, int]] = []
        header: list[Token] = []
        while True:
            tok = self.next("'}'")
            if tok.kind == "}":
                if header:
                    raise self.error(tok.line, f"missing ';' after"
                                               f" {' '.join(t.text for t in header)!r}")
                return out
            if tok.kind == ";":
                if header:
                    out.append((header, None, header[0].line))
                header = []
            elif tok.kind == "{":
                if not header:
                    raise self.error(tok.line, "a block without a name")
                out.append((header, self.block(), header[0].line))
                header = []
            else:
                header.append(tok)


def _perm(p: _Parser, body: list, line: int) -> Perm:
    perm = Perm()
    perm.line = line
    for header, sub, l in body:
        name = header[0].text
        if sub is None or len(header) != 1 or name not in ("task", "admin"):
            raise p.error(l, f"perm holds 'task {{...}}' and 'admin {{...}}' blocks, not"
                             f" {' '.join(t.text for t in header)!r}")
        target = perm.task if name == "task" else perm.admin
        allowed = ("uid", "gid", "fperm") if name == "task" else ("uid", "gid", "dperm", "fperm")
        for h2, s2, l2 in sub:
            if s2 is not None:
                raise p.error(l2, f"no blocks inside perm {name}")
            key, value, _ = p.assignment(h2, last_eq=False)
            if key not in allowed:
                raise p.error(l2, f"perm {name} takes {', '.join(allowed)}, not {key!r}")
            target[key] = value
    return perm


def parse(text: str, filename: str = "cgconfig.conf") -> Config:
    """Read a cgconfig.conf; CgconfigError (file:line: what) when it is malformed."""
    p = _Parser(tokenize(text, filename), filename)
    cfg = Config(filename)
    seen: dict[str, int] = {}
    while p.peek() is not None:
        kw = p.expect("word", "mount, group, default, template or namespace")
        if kw.text == "mount" or kw.text == "namespace":
            p.expect("{", f"'{{' after {kw.text}")
            for header, sub, line in p.block():
                if sub is not None:
                    raise p.error(line, f"no blocks inside {kw.text}")
                key, value, _ = p.assignment(header, last_eq=True)
                entry = MountEntry(key, value, line)
                (cfg.mounts if kw.text == "mount" else cfg.namespaces).append(entry)
        elif kw.text in ("group", "template"):
            name_tok = p.next(f"the {kw.text}'s name")
            if name_tok.kind not in ("word", "string"):
                raise p.error(name_tok.line, f"expected the {kw.text}'s name after"
                                             f" '{kw.text}', found {name_tok.text!r}")
            p.expect("{", f"'{{' after {kw.text} {name_tok.text}")
            body = p.block()
            if kw.text == "template":
                cfg.templates.append((name_tok.text, kw.line))
                continue
            if name_tok.text in seen:
                raise p.error(kw.line, f"group {name_tok.text} is defined twice (first on line"
                                       f" {seen[name_tok.text]})")
            seen[name_tok.text] = kw.line
            g = GroupBlock(name_tok.text, kw.line)
            for header, sub, line in body:
                if sub is None or len(header) != 1:
                    raise p.error(line, f"group {g.name}: expected 'CONTROLLER {{ key = value;"
                                        f" }}' or 'perm {{ ... }}', found"
                                        f" {' '.join(t.text for t in header)!r}")
                name = header[0].text
                if name == "perm":
                    if g.perm is not None:
                        raise p.error(line, f"group {g.name}: a second perm block")
                    g.perm = _perm(p, sub, line)
                    continue
                if name in g.controllers:
                    raise p.error(line, f"group {g.name}: controller {name} appears twice (first"
                                        f" on line {g.controller_lines[name]})")
                settings = []
                for h2, s2, l2 in sub:
                    if s2 is not None:
                        raise p.error(l2, f"group {g.name}: no blocks inside {name}")
                    key, value, _ = p.assignment(h2, last_eq=False)
                    settings.append(Setting(key, value, l2))
                g.controllers[name] = settings
                g.controller_lines[name] = line
            cfg.groups.append(g)
        elif kw.text == "default":
            p.expect("{", "'{' after default")
            for header, sub, line in p.block():
                if sub is None or [t.text for t in header] != ["perm"]:
                    raise p.error(line, "default holds one 'perm { ... }' block")
                cfg.default_perm = _perm(p, sub, line)
        else:
            raise p.error(kw.line, f"unknown section {kw.text!r}: cgconfig.conf has mount,"
                                   " group, default, template and namespace")
    return cfg


# --- planning ------------------------------------------------------------------------------------

class PlannedGroup:
    """A group to create: per hierarchy the settings, in the order to write them."""

    def __init__(self, rel: str, line: int) -> None:
        self.rel = rel
        self.line = line
        self.per_hier: list[tuple[Hier, list[str], list[Setting]]] = []  # (hier, named, settings)
        self.perm: Perm | None = None
        self.owner: dict[str, tuple[int, int, int | None, int | None]] = {}

    def __repr__(self) -> str:
        return f"PlannedGroup({show(self.rel)}, {[h.name for h, _, _ in self.per_hier]})"


class Plan:
    def __init__(self) -> None:
        self.groups: list[PlannedGroup] = []
        self.notes: list[str] = []


def _where(cfg: Config, line: int) -> str:
    return f"{cfg.filename}:{line}"


def check_mounts(cfg: Config, host: Host) -> list[str]:
    """Accept mount entries that name what is mounted already; refuse the rest (see module)."""
    notes: list[str] = []
    if not cfg.mounts:
        return notes
    if host.mode == "unified":
        for m in cfg.mounts:
            c = m.controller
            if c in V1_ONLY_CONTROLLERS or c.startswith("name="):
                what = V1_ONLY_CONTROLLERS.get(c, "nothing: there are no named hierarchies")
                raise Unsupported(f"{_where(cfg, m.line)}: mount {c} = {m.path}: {V2_MOUNT_NOTE};"
                                  f" {c} is a cgroup v1 notion, and v2 has {what} in its place")
        names = ", ".join(m.controller for m in cfg.mounts)
        notes.append(f"mount ({names}): ignored, {V2_MOUNT_NOTE}; the groups below get their"
                     " controllers from their parent's cgroup.subtree_control")
        return notes
    by_path: dict[str, list[MountEntry]] = {}
    for m in cfg.mounts:
        by_path.setdefault(os.path.normpath(m.path), []).append(m)
    placed: dict[str, MountEntry] = {}
    for path, entries in by_path.items():
        wanted = [e.controller for e in entries]
        first = entries[0]
        for e in entries:
            if e.controller in placed and os.path.normpath(placed[e.controller].path) != path:
                other = placed[e.controller]
                h = host.hierarchy_of(e.controller)
                if h is None or path not in h.mountpoints or \
                        os.path.normpath(other.path) not in h.mountpoints:
                    raise HierarchyRuleError(
                        RULE_ONE_HIERARCHY,
                        f"{_where(cfg, e.line)}: mount {e.controller} = {e.path}: {e.controller}"
                        f" is already given {other.path} on line {other.line}; one controller"
                        " cannot be attached to a second hierarchy")
            placed[e.controller] = e
        hiers = {}
        for c in wanted:
            h = host.hierarchy_of(c)
            if h is None:
                if c in host.kernel_controllers:
                    raise Unsupported(
                        f"{_where(cfg, first.line)}: mount {c} = {path}: no hierarchy of {c} is"
                        " mounted here, and hutch cgroup load does not mount one (that changes"
                        " the host for everyone); mount it first, e.g. mount -t cgroup -o"
                        f" {c} none {path}, then load again")
                raise InvalidArgument(f"{_where(cfg, first.line)}: mount {c} = {path}: this"
                                      f" kernel has no controller {c!r}")
            hiers[id(h)] = h
        if len(hiers) > 1:
            desc = "; ".join(f"{','.join(h.controllers)} at {h.mountpoint}" if h.version == 1
                             else f"{','.join(c for c in wanted if h.has(c))} in the cgroup2"
                                  f" hierarchy at {h.mountpoint}" for h in hiers.values())
            raise HierarchyRuleError(
                RULE_ONE_HIERARCHY,
                f"{_where(cfg, first.line)}: mount {', '.join(wanted)} together at {path} would"
                f" attach them to one new hierarchy, but each is attached to its own already"
                f" ({desc}). A v1 controller can be attached to only one hierarchy; the kernel"
                " refuses such a mount (EBUSY). Give each controller its existing mount point")
        (h,) = hiers.values()
        if h.version == 2 and set(wanted) <= {"cgroup2", "unified"} and path in h.mountpoints:
            notes.append(f"mount {', '.join(wanted)} = {path}: the cgroup2 hierarchy is mounted"
                         " there already (accepted; nothing to do)")
            continue
        if h.version == 2:
            raise HierarchyRuleError(
                RULE_ONE_HIERARCHY,
                f"{_where(cfg, first.line)}: mount {', '.join(wanted)} = {path} asks for a v1"
                f" hierarchy, but {', '.join(wanted)} is attached to the cgroup2 hierarchy at"
                f" {h.mountpoint} on this host; a controller is in one hierarchy, v1 or v2")
        if set(wanted) != set(h.controllers):
            raise HierarchyRuleError(
                RULE_ONE_HIERARCHY,
                f"{_where(cfg, first.line)}: mount {', '.join(wanted)} = {path}: on this host"
                f" {', '.join(wanted)} is in the hierarchy of {','.join(h.controllers)} (at"
                f" {h.mountpoint}); a hierarchy's controllers cannot be split or regrouped"
                " while it is mounted. Name all of them with that mount point")
        squatted = next((o for o in host.hierarchies if o is not h and path in o.mountpoints),
                        None)
        if squatted is not None:
            raise HierarchyRuleError(
                RULE_ONE_HIERARCHY,
                f"{_where(cfg, first.line)}: mount {', '.join(wanted)} = {path}: {path} is the"
                f" mount point of the {squatted.name} hierarchy, while {', '.join(wanted)} is"
                f" attached to its own at {h.mountpoint}; a controller cannot be attached to a"
                " second hierarchy")
        if path not in h.mountpoints:
            raise Unsupported(
                f"{_where(cfg, first.line)}: mount {', '.join(wanted)} = {path}: that hierarchy"
                f" is mounted at {', '.join(h.mountpoints)}, not at {path}; hutch cgroup load"
                " does not mount (use the existing mount point)")
        notes.append(f"mount {', '.join(wanted)} = {path}: already mounted there (accepted;"
                     " nothing to do)")
    return notes


def _v2_translate(controller: str, settings: list[Setting], cfg: Config, group: str,
                  notes: list[str]) -> tuple[str, list[Setting]]:
    """v1 controller blocks and file names on a cgroup v2 host: renamed, or refused."""
    from hutch.cgroups import convert

    ctrl = {"cpuacct": "cpu", "blkio": "io"}.get(controller, controller)
    if controller in V1_ONLY_CONTROLLERS and ctrl == controller:
        if settings:
            raise Unsupported(f"{_where(cfg, settings[0].line)}: group {group}: {controller} is a"
                              " cgroup v1 controller; this host has only cgroup v2, where its"
                              f" place is taken by {V1_ONLY_CONTROLLERS[controller]}")
        notes.append(f"group {group}: {controller} {{}} ignored: cgroup v2 has"
                     f" {V1_ONLY_CONTROLLERS[controller]}")
        return "", []
    if ctrl != controller:
        notes.append(f"group {group}: {controller} is {ctrl} on cgroup v2")
    out: list[Setting] = []
    quota = period = None
    memory_limit = next((s.value for s in settings if s.key == "memory.limit_in_bytes"), None)
    for s in settings:
        key, value = s.key, s.value
        new: tuple[str, str] | None = None
        if key == "cpu.shares":
            new = ("cpu.weight", str(convert.shares_to_weight(int(value))))
        elif key == "memory.limit_in_bytes":
            new = ("memory.max", "max" if value.strip() == "-1" else value)
        elif key == "memory.soft_limit_in_bytes":
            new = ("memory.low", "max" if value.strip() == "-1" else value)
        elif key == "memory.memsw.limit_in_bytes":
            if memory_limit is None or not (value.isdigit() and memory_limit.isdigit()):
                raise Unsupported(
                    f"{_where(cfg, s.line)}: group {group}: {key} limits memory+swap; cgroup v2"
                    " limits swap alone (memory.swap.max). Give both limits in bytes, or use"
                    " memory.swap.max")
            new = ("memory.swap.max", str(int(value) - int(memory_limit)))
        elif key == "blkio.weight":
            new = ("io.weight", str(convert.blkio_weight_to_io_weight(int(value))))
        elif key == "cpu.cfs_quota_us":
            quota = s
            continue
        elif key == "cpu.cfs_period_us":
            period = s
            continue
        elif key in V1_FILES_ON_V2:
            raise Unsupported(f"{_where(cfg, s.line)}: group {group}: {key} is a cgroup v1 file;"
                              f" on cgroup v2 use {V1_FILES_ON_V2[key]}")
        if new is not None:
            notes.append(f"group {group}: {key} = {value} is {new[0]} = {new[1]} on cgroup v2")
            out.append(Setting(new[0], new[1], s.line))
        else:
            out.append(s)
    if quota is not None or period is not None:
        q = quota.value if quota is not None else "max"
        q = "max" if q.strip() == "-1" else q
        p = period.value if period is not None else "100000"
        line = (quota or period).line  # type: ignore[union-attr]
        notes.append(f"group {group}: cpu.cfs_quota_us/cpu.cfs_period_us are cpu.max = {q} {p}"
                     " on cgroup v2")
        out.append(Setting("cpu.max", f"{q} {p}", line))
    return ctrl, out


def _order(settings: list[Setting]) -> list[Setting]:
    """cpuset cpus/mems first (tasks and children need them); memory before memory+swap."""
    def rank(s: Setting) -> int:
        if s.key in ("cpuset.cpus", "cpuset.mems"):
            return 0
        if s.key == "memory.memsw.limit_in_bytes":
            return 2
        return 1
    return sorted(settings, key=rank)


def _owner(value: str | None, kind: str, where: str) -> int | None:
    if value is None:
        return None
    v = value.strip()
    if v.isdigit():
        return int(v)
    import grp
    import pwd
    try:
        return pwd.getpwnam(v).pw_uid if kind == "uid" else grp.getgrnam(v).gr_gid
    except KeyError:
        raise InvalidArgument(f"{where}: no {'user' if kind == 'uid' else 'group'} {v!r}") \
            from None


def _mode(value: str | None, where: str) -> int | None:
    if value is None:
        return None
    try:
        mode = int(value.strip(), 8)
    except ValueError:
        raise InvalidArgument(f"{where}: {value!r} is not an octal mode like 664") from None
    if not 0 <= mode <= 0o777:
        raise InvalidArgument(f"{where}: mode {value} is out of range (000 to 777)")
    return mode


def resolve_perm(perm: Perm | None, where: str) -> dict[str, tuple]:
    """{"task"/"admin": (uid, gid, fperm, dperm)}, names looked up now."""
    if perm is None:
        return {}
    out = {}
    for kind, d in (("task", perm.task), ("admin", perm.admin)):
        if d:
            out[kind] = (_owner(d.get("uid"), "uid", where), _owner(d.get("gid"), "gid", where),
                         _mode(d.get("fperm"), where), _mode(d.get("dperm"), where))
    return out


_LIMITS = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.max", "pids.max",
           "memory.high", "memory.swap.max")


def _bytes(value: str) -> int | None:
    v = value.strip().lower()
    if v in ("max", "-1", ""):
        return None
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(v[-1:], 1)
    num = v[:-1] if v[-1:] in "kmgt" else v
    return int(num) * mult if num.isdigit() else None


def plan(cfg: Config, host: Host) -> Plan:
    """Check everything (rules, controllers, names, owners) and plan; nothing is touched."""
    result = Plan()
    result.notes += check_mounts(cfg, host)
    if cfg.namespaces:
        result.notes.append("namespace: ignored: hutch's group paths are relative to its own"
                            " cgroup already")
    for name, line in cfg.templates:
        result.notes.append(f"template {name} (line {line}): skipped: templates are made by"
                            " cgrulesengd when a rule matches, not at load time")
    for g in cfg.groups:
        where = _where(cfg, g.line)
        rel = check_rel(g.name, f"{where}: group")
        if not rel:
            raise InvalidArgument(f"{where}: group {g.name} is our own cgroup (the tool's '/');"
                                  " hutch did not create it and does not change it; put the"
                                  " settings in a group below it")
        pg = PlannedGroup(rel, g.line)
        pg.owner = resolve_perm(g.perm or cfg.default_perm, where)
        pg.perm = g.perm or cfg.default_perm
        if not g.controllers:
            raise InvalidArgument(f"{where}: group {g.name} names no controller; give at least"
                                  " one block, e.g. cpu { }")
        by_hier: dict[int, tuple[Hier, list[str], list[Setting]]] = {}
        for controller, settings in g.controllers.items():
            if host.mode == "unified":
                controller, settings = _v2_translate(controller, settings, cfg, g.name,
                                                     result.notes)
                if not controller:
                    continue
            h = host.hierarchy_of(controller)
            if h is None:
                err = host.unknown_controller(controller)
                raise type(err)(f"{_where(cfg, g.controller_lines.get(controller, g.line))}:"
                                f" group {g.name}: {err}")
            for s in settings:
                check_key(s.key)
                prefix = s.key.split(".", 1)[0]
                if not (h.has(prefix) or prefix == "cgroup" or (h.version == 2 and
                                                                 prefix == controller)):
                    owner = host.hierarchy_of(prefix)
                    hint = (f"; {prefix} is in the {owner.name} hierarchy, so put it in a"
                            f" {prefix} {{ }} block" if owner is not None else "")
                    raise InvalidArgument(f"{_where(cfg, s.line)}: group {g.name}: {s.key} is"
                                          f" not a file of {controller}{hint}")
            entry = by_hier.setdefault(id(h), (h, [], []))
            if controller not in entry[1]:
                entry[1].append(controller)
            entry[2].extend(settings)
        pg.per_hier = [(h, named, _order(settings)) for h, named, settings in by_hier.values()]
        result.groups.append(pg)
    # parents before children, so parents' settings (cpuset, limits) are in place first
    result.groups.sort(key=lambda pg: pg.rel.count("/"))
    _inherit_notes(result)
    return result


def _inherit_notes(result: Plan) -> None:
    values: dict[tuple[str, str], int] = {}
    for pg in result.groups:
        for _, _, settings in pg.per_hier:
            for s in settings:
                if s.key in _LIMITS and (n := _bytes(s.value)) is not None:
                    values[(pg.rel, s.key)] = n
    for (rel, key), n in values.items():
        parent = rel.rpartition("/")[0]
        while parent:
            pn = values.get((parent, key))
            if pn is not None and pn < n:
                result.notes.append(
                    f"group {show(rel)}: {key} = {n} is above {show(parent)}'s {pn};"
                    f" {RULE_INHERIT}, so {show(rel)} never gets more than {pn}")
                break
            parent = parent.rpartition("/")[0]
