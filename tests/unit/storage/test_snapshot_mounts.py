"""The mount records drivers return, and the overlay option shortening (no mounting here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hutch.common.mount import Mount
from hutch.errors import InvalidArgument, Unsupported, WrongState
from hutch.storage import drivers
from hutch.storage.mount import _compact_overlay
from hutch.storage.snapshotter import Kind, Snapshotter


def test_registry(tmp_path: Path) -> None:
    assert drivers.names() == ["overlay", "copy", "btrfs"]
    copy = drivers.load("copy", str(tmp_path / "c"))
    assert isinstance(copy, Snapshotter) and copy.info().name == "copy"
    assert drivers.load("vfs", str(tmp_path / "v")).info().name == "copy"
    with pytest.raises(InvalidArgument, match="known: overlay, copy, btrfs"):
        drivers.load("zfs", str(tmp_path / "z"))
    with pytest.raises(Unsupported, match="needs its root on btrfs"):
        drivers.load("btrfs", str(tmp_path / "b"))
    with pytest.raises(Unsupported, match="must not hold"):
        drivers.load("overlay", str(tmp_path / "a:b"))


@pytest.mark.overlay
def test_overlay_records(tmp_path: Path) -> None:
    s = drivers.load("overlay", str(tmp_path / "o"))
    info = s.info()
    assert info.copy_on_write and info.overlay_layers and info.shares_layers
    [m] = s.prepare("a")
    assert m.type == "bind" and m.options[-1] == "rw"
    base = m.source
    s.commit("A", "a")
    [v1] = s.view("v1", "A")
    assert (v1.type, v1.source, v1.readonly) == ("bind", base, True)
    s.prepare("b", "A")
    s.commit("B", "b")
    [m2] = s.prepare("c", "B")
    assert m2.type == "overlay"
    lowers = m2.option("lowerdir").split(":")
    assert lowers[1] == base and lowers[0].endswith("/fs") and len(lowers) == 2
    assert m2.option("upperdir").startswith(s.root) and m2.option("workdir")
    [v2] = s.view("v2", "B")
    assert v2.type == "overlay" and v2.option("upperdir") is None
    assert v2.option("lowerdir") == m2.option("lowerdir")
    assert s.mounts("c") == [m2]
    with pytest.raises(WrongState, match="committed"):
        s.mounts("A")
    assert {i.name: i.kind for i in s.walk()}["c"] is Kind.ACTIVE
    s.close()


def test_compacting_long_overlay_options() -> None:
    root = "/var/lib/hutch/storage/overlay/snapshots"
    lowers = ":".join(f"{root}/{i}/fs" for i in range(200))
    data = f"index=off,workdir={root}/999/work,upperdir={root}/999/fs,lowerdir={lowers}"
    assert len(data) > 4096
    cwd, short = _compact_overlay(data)
    assert cwd == root and len(short) < 4000
    assert short.startswith("index=off,workdir=999/work,upperdir=999/fs,lowerdir=0/fs:1/fs")
    assert _compact_overlay("lowerdir=/a:/b") is None


def test_mount_record() -> None:
    m = Mount("overlay", "overlay", None, ["ro", "lowerdir=/a:/b", "lowerdir=/c"])
    assert m.options == ("ro", "lowerdir=/a:/b", "lowerdir=/c") and m.readonly
    assert m.option("lowerdir") == "/c" and m.option("nope") is None
    assert Mount.from_dict(m.to_dict()) == m
    assert m.to_oci("/") == {"destination": "/", "type": "overlay", "source": "overlay",
                             "options": ["ro", "lowerdir=/a:/b", "lowerdir=/c"]}
    assert Mount("bind", "/x", None, ("rbind", "ro", "rw")).readonly is False
