"""The snapshotter contract, checked against every driver (containerd's testsuite spirit).

Each test gets a fresh snapshotter of one driver (overlay, copy, btrfs; see
conftest.py) and mounts what it returns below its own temporary directory.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from layertools import TarBuilder

from hutch.common.mount import Mount
from hutch.errors import AlreadyExists, NotFound, WrongState
from hutch.images.unpack import apply_to_mounts
from hutch.storage import drivers
from hutch.storage.mount import mounted
from hutch.storage.snapshotter import Kind, Snapshotter

_counter = iter(range(1_000_000))


@contextmanager
def mount(mounts: list[Mount], tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / f"mnt{next(_counter)}"
    target.mkdir()
    with mounted(mounts, str(target)):
        yield target


def tree(root: Path) -> dict[str, bytes | str | None]:
    """Relative path -> file content, symlink target ("-> x") or None for a directory."""
    out: dict[str, bytes | str | None] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = None
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = f"special {stat.S_IFMT(p.lstat().st_mode):o}"
    return out


def commit_layer(s: Snapshotter, tmp_path: Path, name: str, parent: str | None,
                 files: dict[str, bytes]) -> None:
    key = f"{name}-active"
    with mount(s.prepare(key, parent), tmp_path) as root:
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
    s.commit(name, key)


def test_prepare_commit_view_chain(snapshotter: Snapshotter, tmp_path: Path) -> None:
    s = snapshotter
    with mount(s.prepare("a"), tmp_path) as root:
        (root / "etc").mkdir()
        (root / "etc/a").write_bytes(b"a1")
        (root / "dir").mkdir()
        (root / "dir/x").write_bytes(b"x")
        (root / "link").symlink_to("etc/a")
    s.commit("A", "a")
    with mount(s.prepare("b", "A"), tmp_path) as root:
        assert (root / "link").read_bytes() == b"a1"
        (root / "etc/a").write_bytes(b"a2")
        (root / "b").write_bytes(b"b")
        (root / "dir/x").unlink()
        (root / "dir").rmdir()
    s.commit("B", "b")
    with mount(s.view("vb", "B"), tmp_path) as root:
        assert tree(root) == {"b": b"b", "etc": None, "etc/a": b"a2", "link": "-> etc/a"}
        with pytest.raises(OSError) as info:
            (root / "new").write_bytes(b"no")
        assert info.value.errno == errno.EROFS
    with mount(s.view("va", "A"), tmp_path) as root:
        assert tree(root) == {"dir": None, "dir/x": b"x", "etc": None, "etc/a": b"a1",
                              "link": "-> etc/a"}
    with mount(s.view("empty"), tmp_path) as root:
        assert tree(root) == {}
    assert s.stat("B").parent == "A" and s.stat("vb").kind is Kind.VIEW


def test_a_write_never_shows_in_the_parent_or_a_sibling(snapshotter: Snapshotter,
                                                        tmp_path: Path) -> None:
    s = snapshotter
    commit_layer(s, tmp_path, "base", None, {"shared": b"original", "d/f": b"f"})
    one, two = s.prepare("one", "base"), s.prepare("two", "base")
    with mount(one, tmp_path) as r1, mount(two, tmp_path) as r2:
        (r1 / "shared").write_bytes(b"changed by one")
        (r1 / "only-one").write_bytes(b"1")
        (r1 / "d/f").unlink()
        assert (r2 / "shared").read_bytes() == b"original"
        assert not (r2 / "only-one").exists() and (r2 / "d/f").exists()
        (r2 / "only-two").write_bytes(b"2")
        assert not (r1 / "only-two").exists()
    with mount(s.view("base-view", "base"), tmp_path) as root:
        assert tree(root) == {"d": None, "d/f": b"f", "shared": b"original"}
    with mount(s.mounts("one"), tmp_path) as again:  # an active snapshot keeps its writes
        assert (again / "shared").read_bytes() == b"changed by one"


def test_deleting_lower_files_in_a_child(snapshotter: Snapshotter, tmp_path: Path) -> None:
    s = snapshotter
    commit_layer(s, tmp_path, "L1", None, {"keep": b"k", "gone": b"g", "dir/a": b"a",
                                           "dir/sub/b": b"b"})
    with mount(s.prepare("l2", "L1"), tmp_path) as root:
        (root / "gone").unlink()
        for p in sorted((root / "dir").rglob("*"), key=lambda p: -len(p.parts)):
            p.rmdir() if p.is_dir() else p.unlink()
        (root / "dir/new").write_bytes(b"n")
    s.commit("L2", "l2")
    with mount(s.prepare("l3", "L2"), tmp_path) as root:
        assert tree(root) == {"dir": None, "dir/new": b"n", "keep": b"k"}


def test_layer_whiteouts_hide_lower_files(snapshotter: Snapshotter, tmp_path: Path) -> None:
    """Layers applied the way images are unpacked (overlay form on overlay, applied
    directly elsewhere): a whiteout hides a lower file, an opaque dir its lower content."""
    s = snapshotter
    layers = [
        TarBuilder().dir("etc").file("etc/keep", b"k").file("etc/drop", b"d")
        .dir("var").dir("var/cache").file("var/cache/old", b"o").dir("opt")
        .file("opt/tool", b"t"),
        TarBuilder().whiteout("etc/drop").file("var/cache/new", b"n").opaque("var/cache")
        .whiteout("opt").whiteout("etc/never-there"),
        TarBuilder().file("etc/drop", b"back again"),
    ]
    parent = None
    seen = []
    for i, layer in enumerate(layers):
        key = f"extract-{i}"
        result = apply_to_mounts(s.prepare(key, parent), layer.stream("gzip"))
        assert result.diff_id == layer.diff_id()
        s.commit(f"layer{i}", key)
        parent = f"layer{i}"
        with mount(s.view(f"view{i}", parent), tmp_path) as root:
            seen.append(tree(root))
    assert seen[1] == {"etc": None, "etc/keep": b"k", "var": None, "var/cache": None,
                       "var/cache/new": b"n"}
    assert seen[2]["etc/drop"] == b"back again" and "opt" not in seen[2]
    for snapshot_tree in seen:
        assert not any(".wh." in p for p in snapshot_tree)
    if s.info().overlay_layers:  # the single-layer view is a bind: no whiteouts in the base
        assert not any(isinstance(v, str) and v.startswith("special")
                       for v in seen[0].values())


def test_removal_rules(snapshotter: Snapshotter, tmp_path: Path) -> None:
    s = snapshotter
    commit_layer(s, tmp_path, "P", None, {"f": b"1"})
    s.prepare("child", "P")
    s.view("look", "P")
    with pytest.raises(WrongState, match="children"):
        s.remove("P")
    s.remove("child")
    with pytest.raises(WrongState, match="children"):
        s.remove("P")
    s.remove("look")
    s.remove("P")
    for key in ("P", "child", "look"):
        with pytest.raises(NotFound):
            s.stat(key)
    with pytest.raises(NotFound):
        s.remove("P")
    assert os.listdir(os.path.join(s.root, "snapshots")) == []


def test_commit_and_prepare_rules(snapshotter: Snapshotter, tmp_path: Path) -> None:
    s = snapshotter
    commit_layer(s, tmp_path, "P", None, {"f": b"1"})
    s.prepare("a", "P")
    with pytest.raises(AlreadyExists):
        s.prepare("a", "P")
    with pytest.raises(AlreadyExists):
        s.prepare("P")
    with pytest.raises(WrongState, match="only a committed snapshot can be a parent"):
        s.prepare("b", "a")
    with pytest.raises(NotFound):
        s.prepare("b", "no-such-parent")
    with pytest.raises(AlreadyExists):
        s.commit("P", "a")
    assert s.stat("a").kind is Kind.ACTIVE  # a refused commit leaves it active
    s.view("v", "P")
    with pytest.raises(WrongState, match="only an active"):
        s.commit("V", "v")
    with pytest.raises(WrongState, match="committed"):
        s.mounts("P")
    assert sorted(os.listdir(os.path.join(s.root, "staging"))) == []


def test_usage(snapshotter: Snapshotter, tmp_path: Path) -> None:
    s = snapshotter
    with mount(s.prepare("a"), tmp_path) as root:
        (root / "one").write_bytes(os.urandom(1 << 20))
        (root / "two").write_bytes(b"2")
        os.link(root / "one", root / "one-again")
    active = s.usage("a")
    assert active.size >= 1 << 20 and active.inodes >= 3
    s.commit("A", "a")
    assert s.usage("A") == active
    with mount(s.prepare("b", "A"), tmp_path) as root:
        (root / "three").write_bytes(os.urandom(64 << 10))
    grown = s.usage("b")
    if s.info().copy_on_write and s.info().shares_layers:
        assert (64 << 10) <= grown.size < (1 << 20)  # only what b adds
    else:
        assert grown.size >= (1 << 20) + (64 << 10)  # a copy counts the whole tree
    s.view("v", "A")
    assert s.usage("v").size == 0


def test_labels_stat_walk(snapshotter: Snapshotter, tmp_path: Path) -> None:
    s = snapshotter
    s.prepare("a", labels={"hutch.test": "1"})
    assert s.stat("a").labels == {"hutch.test": "1"}
    s.commit("A", "a", labels={"kept": "yes"})
    assert s.stat("A").labels == {"kept": "yes"}
    assert s.update("A", {"new": "2"}).labels == {"new": "2"}
    s.prepare("b", "A")
    s.view("v", "A")
    assert [(i.name, i.kind, i.parent) for i in s.walk()] == [
        ("A", Kind.COMMITTED, None), ("b", Kind.ACTIVE, "A"), ("v", Kind.VIEW, "A")]
    assert [i.name for i in s.walk([Kind.ACTIVE])] == ["b"]


def test_metadata_survives_in_children(snapshotter: Snapshotter, tmp_path: Path) -> None:
    s = snapshotter
    with mount(s.prepare("a"), tmp_path) as root:
        (root / "f").write_bytes(b"data")
        os.chown(root / "f", 1234, 5678)
        os.chmod(root / "f", 0o4750)  # after chown, which clears set-user-id
        os.setxattr(root / "f", "user.hutch", b"x")
        os.link(root / "f", root / "hard")
        os.mkfifo(root / "fifo")
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        (root / "sparse").write_bytes(b"")
        os.truncate(root / "sparse", 64 << 20)
        os.utime(root / "f", ns=(1_000_000_000, 1_000_000_000))
    s.commit("A", "a")
    with mount(s.prepare("b", "A"), tmp_path) as root:
        st = (root / "f").stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4750, 1234, 5678)
        assert st.st_mtime == 1.0
        assert os.getxattr(root / "f", "user.hutch") == b"x"
        assert (root / "hard").stat().st_ino == st.st_ino
        assert stat.S_ISFIFO((root / "fifo").lstat().st_mode)
        assert (root / "null").lstat().st_rdev == os.makedev(1, 3)
        assert (root / "sparse").stat().st_blocks * 512 < (1 << 20)


def test_a_deep_chain(snapshotter: Snapshotter, tmp_path: Path) -> None:
    """70 layers: overlay's options no longer fit in a page and are shortened."""
    s = snapshotter
    parent = None
    for i in range(70):
        key = f"k{i}"
        mounts = s.prepare(key, parent)
        upper = mounts[0].option("upperdir") or mounts[0].source
        Path(upper, f"file{i}").write_bytes(str(i).encode())
        s.commit(f"layer{i}", key)
        parent = f"layer{i}"
    top = s.prepare("top", parent)
    if top[0].type == "overlay":
        assert len(",".join(top[0].options)) > 4096  # mounted through the shortening
    with mount(top, tmp_path) as root:
        assert sorted(os.listdir(root)) == sorted(f"file{i}" for i in range(70))
        assert (root / "file0").read_bytes() == b"0"


def test_cleanup_removes_what_a_crash_left(snapshotter: Snapshotter, tmp_path: Path) -> None:
    s = snapshotter
    s.prepare("a")
    for d in ("staging/7-crashed", "removing/3", "snapshots/99"):
        os.makedirs(os.path.join(s.root, d, "fs"))
    assert s.cleanup() == 3
    assert [i.name for i in s.walk()] == ["a"]
    assert len(os.listdir(os.path.join(s.root, "snapshots"))) == 1
    assert os.listdir(os.path.join(s.root, "staging")) == os.listdir(
        os.path.join(s.root, "removing")) == []


def _prepare_many(name: str, root: str, worker: int, queue: multiprocessing.Queue) -> None:
    try:
        s = drivers.load(name, root)
        for i in range(5):
            s.prepare(f"w{worker}-{i}", "base")
        s.close()
        queue.put("ok")
    except BaseException as e:  # noqa: BLE001
        queue.put(repr(e))


def test_processes_share_a_root(snapshotter: Snapshotter, tmp_path: Path) -> None:
    s = snapshotter
    commit_layer(s, tmp_path, "base", None, {"f": b"1"})
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    name = s.info().name
    procs = [ctx.Process(target=_prepare_many, args=(name, s.root, w, queue)) for w in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == ["ok", "ok"]
    assert len(s.walk([Kind.ACTIVE])) == 10
