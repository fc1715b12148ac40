"""Tests for hutch.linux.mountopts: mount option names to flags, attributes and data."""

from __future__ import annotations

import pytest

from hutch.linux import constants as C
from hutch.linux.mountopts import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME,
    MountOptions,
    known_options,
    parse_mount_options,
)

BRIEF_NAMES = (
    "defaults ro rw suid nosuid dev nodev exec noexec sync async dirsync remount mand nomand "
    "atime noatime diratime nodiratime relatime norelatime strictatime nostrictatime lazytime "
    "nolazytime bind rbind private rprivate shared rshared slave rslave unbindable runbindable "
    "nosymfollow symfollow tmpcopyup idmap ridmap"
).split()


def test_every_listed_name_is_known_and_not_data() -> None:
    known = set(known_options())
    for name in BRIEF_NAMES:
        assert name in known, name
        assert parse_mount_options([name]).data == "", name


def test_empty_and_none() -> None:
    for options in ([], None, ()):
        opts = parse_mount_options(options)
        assert opts == MountOptions()
        assert (opts.flags, opts.clear, opts.propagation, opts.data, opts.extensions) == \
            (0, 0, [], "", [])
        assert not opts.bind and not opts.recursive and not opts.readonly


def test_default_dev_mount() -> None:
    opts = parse_mount_options(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert opts.flags == C.MS_NOSUID | C.MS_STRICTATIME
    assert opts.clear == 0
    assert opts.data == "mode=755,size=65536k"
    assert opts.attr_set == C.MOUNT_ATTR_NOSUID | MOUNT_ATTR_STRICTATIME
    assert opts.attr_clr == MOUNT_ATTR__ATIME


def test_devpts_data_keeps_order() -> None:
    opts = parse_mount_options(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                                "gid=5"])
    assert opts.flags == C.MS_NOSUID | C.MS_NOEXEC
    assert opts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"


@pytest.mark.parametrize(("name", "flag"), [
    ("ro", C.MS_RDONLY), ("nosuid", C.MS_NOSUID), ("nodev", C.MS_NODEV),
    ("noexec", C.MS_NOEXEC), ("sync", C.MS_SYNCHRONOUS), ("dirsync", C.MS_DIRSYNC),
    ("remount", C.MS_REMOUNT), ("mand", C.MS_MANDLOCK), ("noatime", C.MS_NOATIME),
    ("nodiratime", C.MS_NODIRATIME), ("relatime", C.MS_RELATIME),
    ("strictatime", C.MS_STRICTATIME), ("lazytime", C.MS_LAZYTIME),
    ("nosymfollow", C.MS_NOSYMFOLLOW), ("bind", C.MS_BIND), ("rbind", C.MS_BIND | C.MS_REC),
])
def test_setting_flags(name: str, flag: int) -> None:
    opts = parse_mount_options([name])
    assert opts.flags == flag
    assert opts.clear == 0


@pytest.mark.parametrize(("name", "flag"), [
    ("rw", C.MS_RDONLY), ("suid", C.MS_NOSUID), ("dev", C.MS_NODEV), ("exec", C.MS_NOEXEC),
    ("async", C.MS_SYNCHRONOUS), ("nomand", C.MS_MANDLOCK), ("atime", C.MS_NOATIME),
    ("diratime", C.MS_NODIRATIME), ("norelatime", C.MS_RELATIME),
    ("nostrictatime", C.MS_STRICTATIME), ("nolazytime", C.MS_LAZYTIME),
    ("symfollow", C.MS_NOSYMFOLLOW),
])
def test_clearing_flags(name: str, flag: int) -> None:
    opts = parse_mount_options([name])
    assert opts.flags == 0
    assert opts.clear == flag


def test_defaults_changes_nothing() -> None:
    assert parse_mount_options(["defaults"]) == MountOptions()


def test_later_option_wins() -> None:
    opts = parse_mount_options(["ro", "rw"])
    assert opts.flags & C.MS_RDONLY == 0 and opts.clear & C.MS_RDONLY
    assert not opts.readonly
    assert opts.attr_clr == C.MOUNT_ATTR_RDONLY and opts.attr_set == 0
    opts = parse_mount_options(["rw", "ro"])
    assert opts.flags == C.MS_RDONLY and opts.clear == 0 and opts.readonly
    assert opts.attr_set == C.MOUNT_ATTR_RDONLY and opts.attr_clr == 0


def test_bind_and_rbind() -> None:
    bind = parse_mount_options(["bind", "ro"])
    assert bind.bind and not bind.recursive
    assert bind.flags == C.MS_BIND | C.MS_RDONLY
    rbind = parse_mount_options(["rbind"])
    assert rbind.bind and rbind.recursive
    assert rbind.flags == C.MS_BIND | C.MS_REC


def test_propagation_in_order() -> None:
    opts = parse_mount_options(["rbind", "rprivate", "slave", "shared", "rshared",
                                "unbindable", "runbindable", "private", "rslave"])
    assert opts.propagation == [
        C.MS_PRIVATE | C.MS_REC, C.MS_SLAVE, C.MS_SHARED, C.MS_SHARED | C.MS_REC,
        C.MS_UNBINDABLE, C.MS_UNBINDABLE | C.MS_REC, C.MS_PRIVATE, C.MS_SLAVE | C.MS_REC]
    # Propagation is never part of the mount(2) flags of the mount itself.
    assert opts.flags == C.MS_BIND | C.MS_REC


def test_extensions() -> None:
    opts = parse_mount_options(["tmpcopyup", "mode=755", "idmap", "ridmap", "tmpcopyup"])
    assert opts.extensions == ["tmpcopyup", "idmap", "ridmap"]
    assert opts.data == "mode=755"
    assert opts.flags == 0


@pytest.mark.parametrize(("name", "attr"), [
    ("ro", C.MOUNT_ATTR_RDONLY), ("nosuid", C.MOUNT_ATTR_NOSUID),
    ("nodev", C.MOUNT_ATTR_NODEV), ("noexec", C.MOUNT_ATTR_NOEXEC),
    ("nodiratime", MOUNT_ATTR_NODIRATIME), ("nosymfollow", MOUNT_ATTR_NOSYMFOLLOW),
])
def test_setattr_bits(name: str, attr: int) -> None:
    assert parse_mount_options([name]).attr_set == attr
    opposite = {"ro": "rw"}.get(name, name[2:])  # nosuid -> suid ...
    opts = parse_mount_options([name, opposite])
    assert opts.attr_set == 0 and opts.attr_clr == attr


@pytest.mark.parametrize(("options", "mode"), [
    (["noatime"], MOUNT_ATTR_NOATIME),
    (["strictatime"], MOUNT_ATTR_STRICTATIME),
    (["relatime"], MOUNT_ATTR_RELATIME),
    (["noatime", "strictatime"], MOUNT_ATTR_STRICTATIME),
    (["strictatime", "noatime"], MOUNT_ATTR_NOATIME),
])
def test_atime_mode_is_one_field(options: list[str], mode: int) -> None:
    opts = parse_mount_options(options)
    assert opts.attr_clr & MOUNT_ATTR__ATIME == MOUNT_ATTR__ATIME
    assert opts.attr_set & MOUNT_ATTR__ATIME == mode


@pytest.mark.parametrize("options", [["noatime", "atime"], ["relatime", "norelatime"],
                                     ["strictatime", "nostrictatime"], ["atime"], []])
def test_cancelled_atime_mode_leaves_the_field_alone(options: list[str]) -> None:
    opts = parse_mount_options(options)
    assert opts.attr_clr & MOUNT_ATTR__ATIME == 0
    assert opts.attr_set & MOUNT_ATTR__ATIME == 0


def test_recursive_attributes() -> None:
    opts = parse_mount_options(["rbind", "rro", "rnosuid", "rnoexec", "rnodev", "rexec",
                                "rnoatime"])
    assert opts.rec_attr_set == (C.MOUNT_ATTR_RDONLY | C.MOUNT_ATTR_NOSUID | C.MOUNT_ATTR_NODEV
                                 | MOUNT_ATTR_NOATIME)
    assert opts.rec_attr_clr == C.MOUNT_ATTR_NOEXEC | MOUNT_ATTR__ATIME
    # The recursive options leave the plain mount flags and attributes alone.
    assert opts.flags == C.MS_BIND | C.MS_REC
    assert opts.attr_set == opts.attr_clr == 0
    assert opts.data == ""


def test_unknown_options_go_to_data_in_order() -> None:
    opts = parse_mount_options(["lowerdir=/a:/b", "ro", "upperdir=/u", "workdir=/w", "xino=off",
                                "userxattr"])
    assert opts.data == "lowerdir=/a:/b,upperdir=/u,workdir=/w,xino=off,userxattr"
    assert opts.flags == C.MS_RDONLY


def test_known_options_sorted_and_complete() -> None:
    names = known_options()
    assert names == sorted(set(names))
    assert {"rro", "rrw", "rnosuid", "ratime", "rnostrictatime"} <= set(names)


def test_mount_options_has_slots_and_repr() -> None:
    opts = parse_mount_options(["ro"])
    with pytest.raises(AttributeError):
        opts.bogus = 1  # type: ignore[attr-defined]
    assert "flags=1" in repr(opts)
    assert opts != parse_mount_options(["rw"])
