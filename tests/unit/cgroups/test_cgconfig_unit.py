"""cgconfig.conf parsing and planning, and the tool's naming rules, on fake hosts (no root).

The hosts are described, not read: a hybrid one like the development machine (each
v1 controller on its own mount, hugetlb in cgroup2), a legacy one with cpu and
cpuacct mounted together, and a pure v2 one.
"""

from __future__ import annotations

import pytest

from hutch.cgroups import cgconfig, tool
from hutch.cgroups.cgconfig import CgconfigError, parse, plan
from hutch.cgroups.tool import (RULE_INHERIT, RULE_ONE_GROUP, RULE_ONE_HIERARCHY, Hier,
                                HierarchyRuleError, Host, Target)
from hutch.errors import InvalidArgument, Unsupported


def _v1(*ctrls: str, own: str = "/", extra: tuple[str, ...] = ()) -> Hier:
    mp = f"/sys/fs/cgroup/{','.join(ctrls)}"
    return Hier(1, ctrls, mp, "/", own, (mp, *extra))


KERNEL = {"cpu": 1, "cpuacct": 2, "cpuset": 3, "memory": 4, "pids": 8, "blkio": 7,
          "hugetlb": 0, "net_cls": 0, "net_prio": 0, "freezer": 6, "devices": 5}
HYBRID = Host("hybrid", [_v1("cpu"), _v1("cpuacct"), _v1("memory", own="/process_api/x"),
                         _v1("pids"), _v1("name=systemd"),
                         Hier(2, ("hugetlb",), "/sys/fs/cgroup/unified", "/", "/")], KERNEL)
COMOUNT = Host("legacy", [_v1("cpu", "cpuacct", extra=("/sys/fs/cgroup/cpu",
                                                      "/sys/fs/cgroup/cpuacct")),
                          _v1("memory"), _v1("pids")], KERNEL)
UNIFIED = Host("unified", [Hier(2, ("cpuset", "cpu", "io", "memory", "hugetlb", "pids"),
                                "/sys/fs/cgroup", "/", "/ci.service")], KERNEL)

SAMPLE = """\
# two groups, as libcgroup's cgconfig.conf(5) writes them
mount {
    cpu = /sys/fs/cgroup/cpu;
    memory = /sys/fs/cgroup/memory;   # trailing comment
}

group demo/web {
    perm {
        task { uid = 0; gid = 0; fperm = 660; }
        admin { uid = 0; gid = 0; dperm = 775; fperm = 664; }
    }
    cpu { cpu.shares = 512; }
    memory {
        memory.memsw.limit_in_bytes = 134217728;
        memory.limit_in_bytes = 67108864;
    }
    pids { pids.max=10; }
}

group "demo/db" {
    cpu { cpu.shares = "2048"; }
    memory { memory.limit_in_bytes = 268435456; }
    pids { pids.max = 20; }
}

template users/%u { cpu { cpu.shares = 100; } }
"""


# --- parsing ------------------------------------------------------------------------------

def test_parse_reads_mounts_groups_perm_and_templates() -> None:
    cfg = parse(SAMPLE, "sample.conf")
    assert [(m.controller, m.path, m.line) for m in cfg.mounts] == [
        ("cpu", "/sys/fs/cgroup/cpu", 3), ("memory", "/sys/fs/cgroup/memory", 4)]
    web, db = cfg.groups
    assert web.name == "demo/web" and web.line == 7 and db.name == "demo/db"
    assert list(web.controllers) == ["cpu", "memory", "pids"]
    assert [(s.key, s.value) for s in web.controllers["pids"]] == [("pids.max", "10")]
    assert db.controllers["cpu"][0].value == "2048"
    assert web.perm is not None and web.perm.admin == {"uid": "0", "gid": "0", "dperm": "775",
                                                       "fperm": "664"}
    assert web.perm.task["fperm"] == "660"
    assert cfg.templates == [("users/%u", 26)]


def test_parse_keeps_values_with_spaces_and_equals_and_named_mounts() -> None:
    cfg = parse('mount { name=sched = /sys/fs/cgroup/sched; }\n'
                'group g { rdma { rdma.max = mlx4_0 hca_handle=2; }\n'
                '  devices { devices.allow = "c 1:3 rwm"; } }\n')
    assert (cfg.mounts[0].controller, cfg.mounts[0].path) == ("name=sched", "/sys/fs/cgroup/sched")
    assert cfg.groups[0].controllers["rdma"][0].value == "mlx4_0 hca_handle=2"
    assert cfg.groups[0].controllers["devices"][0].value == "c 1:3 rwm"


@pytest.mark.parametrize("text,where,what", [
    ("group g {\n cpu { cpu.shares = 5 }\n}\n", ":2:", "missing ';'"),
    ("group g {\n cpu { cpu.shares = 5; }\n", ":2:", "ends where"),
    ("group g { cpu { } }\ngroup g { cpu { } }\n", ":2:", "defined twice"),
    ("groups g { }\n", ":1:", "unknown section"),
    ("group g {\n cpu { }\n cpu { }\n}\n", ":3:", "appears twice"),
    ("group g {\n perm { task { dperm = 7; } }\n}\n", ":2:", "perm task takes"),
    ("group g {\n cpu { cpu.shares 5; }\n}\n", ":2:", "key = value"),
    ('group g { cpu { x = "open\n}', ":1:", "quoted string"),
])
def test_parse_errors_name_file_and_line(text: str, where: str, what: str) -> None:
    with pytest.raises(CgconfigError) as e:
        parse(text, "bad.conf")
    assert str(e.value).startswith("bad.conf" + where) and what in str(e.value), str(e.value)


# --- planning on a hybrid host (each controller on its own hierarchy) ---------------------

def test_plan_places_each_controller_in_its_hierarchy() -> None:
    p = plan(parse(SAMPLE, "s.conf"), HYBRID)
    assert [pg.rel for pg in p.groups] == ["demo/web", "demo/db"]
    web = p.groups[0]
    assert [(h.name, named) for h, named, _ in web.per_hier] == [
        ("cpu", ["cpu"]), ("memory", ["memory"]), ("pids", ["pids"])]
    mem_settings = [s.key for s in web.per_hier[1][2]]
    assert mem_settings == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]  # reordered
    assert web.owner == {"task": (0, 0, 0o660, None), "admin": (0, 0, 0o664, 0o775)}
    assert any("already mounted there" in n for n in p.notes)
    assert any("template users/%u" in n and "cgrulesengd" in n for n in p.notes)
    # the memory group lands below our own memory cgroup, not at the root
    assert Target(web.per_hier[1][0], "demo/web", []).dir == \
        "/sys/fs/cgroup/memory/process_api/x/demo/web"


def test_plan_orders_parents_first_and_notes_a_child_above_its_parent() -> None:
    cfg = parse("group a/b { memory { memory.limit_in_bytes = 128M; } }\n"
                "group a { memory { memory.limit_in_bytes = 64M; } pids { pids.max = 5; } }\n"
                "group a/b/c { pids { pids.max = 50; } }\n")
    p = plan(cfg, HYBRID)
    assert [pg.rel for pg in p.groups] == ["a", "a/b", "a/b/c"]
    notes = [n for n in p.notes if RULE_INHERIT in n]
    assert len(notes) == 2, p.notes
    assert "/a/b: memory.limit_in_bytes = 134217728 is above /a's 67108864" in notes[0] or \
        "/a/b: memory.limit_in_bytes = 134217728 is above /a's 67108864" in notes[1]
    assert any("/a/b/c: pids.max = 50 is above /a's 5" in n for n in notes)


@pytest.mark.parametrize("text,rule_or_error,words", [
    # cpu with memory, each mounted on its own: attaching both to a new hierarchy
    ("mount { cpu = /cg/cpu_mem; memory = /cg/cpu_mem; }", RULE_ONE_HIERARCHY,
     ["cpu at /sys/fs/cgroup/cpu", "memory at /sys/fs/cgroup/memory", "EBUSY"]),
    # one controller given two places
    ("mount { cpu = /sys/fs/cgroup/cpu; cpu = /cg/cpu2; }", RULE_ONE_HIERARCHY,
     ["already given /sys/fs/cgroup/cpu"]),
    # a controller on another hierarchy's mount point
    ("mount { cpuacct = /sys/fs/cgroup/cpu; }", RULE_ONE_HIERARCHY,
     ["mount point of the cpu hierarchy"]),
    # hugetlb lives in cgroup2 here: no v1 hierarchy for it
    ("mount { hugetlb = /sys/fs/cgroup/hugetlb; }", RULE_ONE_HIERARCHY,
     ["cgroup2 hierarchy at /sys/fs/cgroup/unified"]),
])
def test_mount_blocks_that_break_the_one_hierarchy_rule_are_refused(
        text: str, rule_or_error: str, words: list[str]) -> None:
    cfg = parse(text + "\ngroup g { cpu { cpu.shares = 2; } }\n", "r.conf")
    with pytest.raises(HierarchyRuleError) as e:
        plan(cfg, HYBRID)
    assert e.value.rule == rule_or_error
    msg = str(e.value)
    assert msg.startswith("r.conf:1:") and f"(rule: {rule_or_error})" in msg
    for w in words:
        assert w in msg, msg


def test_mount_blocks_hutch_would_have_to_mount_are_refused() -> None:
    with pytest.raises(Unsupported, match="does not mount one"):
        plan(parse("mount { net_cls = /sys/fs/cgroup/net_cls; }"), HYBRID)
    with pytest.raises(Unsupported, match="not at /elsewhere"):
        plan(parse("mount { cpu = /elsewhere; }"), HYBRID)
    with pytest.raises(InvalidArgument, match="no controller 'bogus'"):
        plan(parse("mount { bogus = /x; }"), HYBRID)


def test_co_mounted_controllers_must_be_named_together() -> None:
    ok = plan(parse("mount { cpu = /sys/fs/cgroup/cpu; cpuacct = /sys/fs/cgroup/cpu; }"), COMOUNT)
    assert any("already mounted" in n for n in ok.notes)
    with pytest.raises(HierarchyRuleError, match="cannot be split or regrouped") as e:
        plan(parse("mount { cpu = /sys/fs/cgroup/cpu; }"), COMOUNT)
    assert e.value.rule == RULE_ONE_HIERARCHY
    # blocks for both controllers of one hierarchy write into one directory
    p = plan(parse("group g { cpu { cpu.shares = 512; } cpuacct { } }"), COMOUNT)
    assert [(h.name, named) for h, named, _ in p.groups[0].per_hier] == [
        ("cpu,cpuacct", ["cpu", "cpuacct"])]


@pytest.mark.parametrize("text,error,words", [
    ("group . { cpu { cpu.shares = 2; } }", InvalidArgument, ["our own cgroup"]),
    ("group ../up { cpu { } }", InvalidArgument, ["'..'"]),
    ("group g { }", InvalidArgument, ["names no controller"]),
    ("group g { net_cls { net_cls.classid = 1; } }", Unsupported, ["no hierarchy of it"]),
    ("group g { cpu { memory.limit_in_bytes = 1; } }", InvalidArgument,
     ["not a file of cpu", "memory { } block"]),
    ("group g { pids { cgroup.procs = 1; } }", InvalidArgument, ["classify"]),
    ("group g { perm { admin { uid = no-such-user-here; } } cpu { } }", InvalidArgument,
     ["no user"]),
])
def test_groups_are_checked_before_anything_is_made(text: str, error: type, words: list[str]
                                                    ) -> None:
    with pytest.raises(error) as e:
        plan(parse(text, "g.conf"), HYBRID)
    for w in words:
        assert w in str(e.value), str(e.value)


# --- planning on a pure cgroup v2 host ------------------------------------------------------

def test_v2_host_explains_mount_blocks_and_translates_v1_files() -> None:
    text = """
mount { cpu = /sys/fs/cgroup/cpu; memory = /sys/fs/cgroup/memory; }
group app {
    cpu { cpu.shares = 512; cpu.cfs_quota_us = 20000; cpu.cfs_period_us = 100000; }
    cpuacct { }
    memory { memory.limit_in_bytes = 67108864; memory.memsw.limit_in_bytes = 100663296; }
    blkio { blkio.weight = 500; }
    pids { pids.max = 10; }
}
"""
    p = plan(parse(text), UNIFIED)
    assert any("cgroup v2 has one hierarchy; controllers are enabled per subtree with"
               " cgroup.subtree_control" in n for n in p.notes)
    ((h, named, settings),) = p.groups[0].per_hier
    assert h.version == 2 and named == ["cpu", "memory", "io", "pids"]
    got = {s.key: s.value for s in settings}
    assert got == {"cpu.weight": "20", "cpu.max": "20000 100000", "memory.max": "67108864",
                   "memory.swap.max": str(100663296 - 67108864), "io.weight": "4950",
                   "pids.max": "10"}
    assert any("cpu.shares = 512 is cpu.weight = 20" in n for n in p.notes)
    assert Target(h, "app", named).dir == "/sys/fs/cgroup/ci.service/app"


@pytest.mark.parametrize("text,words", [
    ("mount { net_cls = /sys/fs/cgroup/net_cls; }", ["one hierarchy", "nftables"]),
    ("group g { freezer { freezer.state = FROZEN; } }", ["cgroup.freeze"]),
    ("group g { memory { memory.swappiness = 10; } }", ["no per-group swappiness"]),
    ("group g { memory { memory.memsw.limit_in_bytes = 5; } }", ["swap alone"]),
])
def test_v2_host_refuses_v1_only_notions_with_the_v2_equivalent(text: str, words: list[str]
                                                                ) -> None:
    with pytest.raises(Unsupported) as e:
        plan(parse(text), UNIFIED)
    for w in words:
        assert w in str(e.value), str(e.value)


# --- the tool's names and rules -----------------------------------------------------------

def test_parse_spec_and_paths_below_our_own_cgroup() -> None:
    assert tool.parse_spec("cpu,memory:demo/a") == (["cpu", "memory"], "demo/a")
    assert tool.parse_spec("*:/demo//a/") == (["*"], "demo/a")
    assert tool.parse_spec("pids:") == (["pids"], "")
    for bad in ("demo/a", ":demo", "cpu:../x", "cpu:a/./b"):
        with pytest.raises(InvalidArgument):
            tool.parse_spec(bad)


def test_targets_resolve_controllers_to_hierarchies() -> None:
    ts = tool.targets(HYBRID, ["cpu,memory:demo", "hugetlb:demo"])
    assert [t.label() for t in ts] == ["cpu:/demo", "memory:/demo", "cgroup2:/demo"]
    assert [t.hier.name for t in tool.targets(COMOUNT, ["cpu,cpuacct:x"])] == ["cpu,cpuacct"]
    assert len(tool.targets(HYBRID, ["*:x"])) == len(HYBRID.hierarchies)
    with pytest.raises(InvalidArgument, match="unknown controller 'bogus'"):
        tool.targets(HYBRID, ["bogus:x"])
    with pytest.raises(Unsupported, match="no hierarchy of it is mounted|hutch does not mount"):
        tool.targets(HYBRID, ["net_cls:x"])
    with pytest.raises(Unsupported, match="io"):
        tool.targets(UNIFIED, ["blkio:x"])


def test_a_process_cannot_join_two_groups_of_one_hierarchy() -> None:
    ts = tool.targets(HYBRID, ["cpu,memory:a", "cpu:b"])
    with pytest.raises(HierarchyRuleError) as e:
        tool.one_group_per_hierarchy(ts)
    assert e.value.rule == RULE_ONE_GROUP and "cpu:/a and cpu:/b" in str(e.value)
    # co-mounted: cpu and cpuacct are one hierarchy, so two paths for them conflict
    with pytest.raises(HierarchyRuleError):
        tool.one_group_per_hierarchy(tool.targets(COMOUNT, ["cpu:a", "cpuacct:b"]))
    # the same group twice is fine
    assert len(tool.one_group_per_hierarchy(tool.targets(COMOUNT, ["cpu:a", "cpuacct:a"]))) == 1


def test_keys_that_are_not_for_set_are_refused_with_the_verb_to_use() -> None:
    with pytest.raises(InvalidArgument, match="classify"):
        tool.check_key("cgroup.procs")
    with pytest.raises(InvalidArgument, match="release agent"):
        tool.check_key("release_agent")
    with pytest.raises(InvalidArgument):
        tool.check_key("../x")
    assert cgconfig.check_key is tool.check_key


def test_a_cgroup2_mount_entry_naming_the_existing_mount_is_accepted() -> None:
    p = plan(parse("mount { cgroup2 = /sys/fs/cgroup/unified; }"), HYBRID)
    assert any("cgroup2 hierarchy is mounted there already" in n for n in p.notes)


def test_help_says_paths_are_relative_to_our_own_cgroup() -> None:
    from hutch.cli.cgroup import build_parser
    text = " ".join(build_parser().format_help().split())
    assert "PATH is relative to the cgroup hutch itself runs in" in text
    assert "'/' is our own cgroup (not the root of the hierarchy)" in text
    for verb in ("tree", "create", "set", "get", "exec", "classify", "delete", "load"):
        assert verb in text
