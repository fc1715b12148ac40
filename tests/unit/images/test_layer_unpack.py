"""hutch.images.unpack: applying layers, whiteouts, diff_ids, and refusing hostile tars.

Every hostile case checks that nothing outside the target changed: a marker
directory beside it, holding a file a layer tries to reach.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from layertools import MTIME, TarBuilder, compress

from hutch.common.digest import Digest, DigestMismatch
from hutch.errors import InvalidArgument, Unsupported
from hutch.images.unpack import (
    Devices,
    IdShift,
    Limits,
    UnsafeLayer,
    apply_layer,
    detect_compression,
    diff_id_of,
)


def snapshot(path: Path) -> dict[str, tuple]:
    """Everything below ``path``: type, mode, size, content."""
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else None
        link = os.readlink(p) if p.is_symlink() else None
        out[str(p.relative_to(path))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                         data, link)
    return out


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(target, outside): the target is empty; outside holds a marker file."""
    target = tmp_path / "root"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "marker").write_bytes(b"host file\n")
    return target, outside


def apply(target: Path, builder: TarBuilder, compression: str = "none", **kw: object):
    kw.setdefault("chown", False)
    return apply_layer(str(target), builder.stream(compression), **kw)


# --- the good path ------------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_a_tree_with_every_kind_of_member(box: tuple[Path, Path], compression: str) -> None:
    target, _ = box
    b = (TarBuilder().dir("./").dir("etc", 0o755).file("etc/hostname", b"box\n", 0o640)
         .dir("usr").dir("usr/lib").file("usr/lib/libx.so", b"\x7fELF", 0o755)
         .symlink("lib", "usr/lib").file("lib/via-link", b"through a relative link")
         .symlink("etc/abs", "/usr/lib/libx.so").hardlink("usr/lib/libx.so.1", "usr/lib/libx.so")
         .fifo("run.fifo").dir("ro", 0o555).file("ro/inside", b"made before the dir's mode")
         .file("bin/implicit/parent", b"x", 0o4755))
    result = apply(target, b, compression)
    assert result.compression == compression
    assert result.diff_id == b.diff_id() and result.size == len(b.data())
    assert result.members == len(b.members)
    assert (target / "etc/hostname").read_bytes() == b"box\n"
    assert stat.S_IMODE((target / "etc/hostname").stat().st_mode) == 0o640
    assert (target / "etc/hostname").stat().st_mtime == MTIME
    assert (target / "usr/lib/via-link").read_bytes() == b"through a relative link"
    assert os.readlink(target / "etc/abs") == "/usr/lib/libx.so"
    assert (target / "usr/lib/libx.so.1").stat().st_ino == (target / "usr/lib/libx.so").stat().st_ino
    assert stat.S_ISFIFO((target / "run.fifo").lstat().st_mode)
    assert stat.S_IMODE((target / "ro").stat().st_mode) == 0o555
    assert (target / "ro/inside").exists() and (target / "ro").stat().st_mtime == MTIME
    assert stat.S_IMODE((target / "bin/implicit/parent").stat().st_mode) == 0o4755
    assert stat.S_IMODE((target / "bin/implicit").stat().st_mode) == 0o755


def test_zero_blocks_stay_holes(box: tuple[Path, Path]) -> None:
    target, _ = box
    apply(target, TarBuilder().file("sparse", bytes(8 << 20) + b"end"))
    st = (target / "sparse").stat()
    assert st.st_size == (8 << 20) + 3 and st.st_blocks * 512 < (1 << 20)


def test_diff_id_is_checked(box: tuple[Path, Path]) -> None:
    target, _ = box
    b = TarBuilder().file("a", b"a")
    assert diff_id_of(b.stream("gzip"))[0] == b.diff_id()
    with pytest.raises(DigestMismatch, match="diff_id"):
        apply(target, b, "gzip", expected_diff_id=Digest.from_bytes(b"other"))
    apply(target / "..", TarBuilder(), expected_diff_id=TarBuilder().diff_id())


def test_later_members_replace_earlier_ones(box: tuple[Path, Path]) -> None:
    target, outside = box
    apply(target, TarBuilder().file("x", b"file").dir("d").file("d/f", b"1")
          .symlink("link", str(outside / "marker")))
    apply(target, TarBuilder().dir("x").file("d", b"now a file").file("link", b"not followed"))
    assert (target / "x").is_dir() and (target / "d").read_bytes() == b"now a file"
    assert not (target / "link").is_symlink()
    assert (outside / "marker").read_bytes() == b"host file\n"


def test_xattrs_are_kept_but_overlay_ones_dropped(box: tuple[Path, Path]) -> None:
    target, _ = box
    apply(target, TarBuilder().file("f", b"x", xattrs={"user.note": b"kept",
                                                      "trusted.overlay.opaque": b"y"}))
    assert os.getxattr(target / "f", "user.note") == b"kept"
    assert "trusted.overlay.opaque" not in os.listxattr(target / "f")


def test_whiteouts_applied_directly(box: tuple[Path, Path]) -> None:
    target, _ = box
    apply(target, TarBuilder().dir("etc").file("etc/a", b"a").file("etc/b", b"b")
          .dir("var").dir("var/cache").file("var/cache/old", b"o").dir("var/cache/sub")
          .file("var/cache/sub/deep", b"d").dir("opt").file("opt/gone/x", b"x"))
    apply(target, TarBuilder().whiteout("etc/a").whiteout("opt/gone").whiteout("etc/never")
          .file("var/cache/new", b"n").opaque("var/cache").file("var/cache/after", b"a"))
    assert sorted(os.listdir(target / "etc")) == ["b"]
    assert os.listdir(target / "opt") == []
    assert sorted(os.listdir(target / "var/cache")) == ["after", "new"]
    assert not any(n.startswith(".wh.") for n in os.listdir(target))


def test_opaque_keeps_what_the_same_layer_listed(box: tuple[Path, Path]) -> None:
    target, _ = box
    apply(target, TarBuilder().dir("d").dir("d/keep").file("d/keep/old", b"o")
          .file("d/drop", b"x"))
    apply(target, TarBuilder().dir("d").dir("d/keep").file("d/keep/new", b"n").opaque("d"))
    assert sorted(os.listdir(target / "d")) == ["keep"]
    assert sorted(os.listdir(target / "d/keep")) == ["new"]


def test_devices_can_be_skipped(box: tuple[Path, Path]) -> None:
    target, _ = box
    result = apply(target, TarBuilder().dir("dev").device("dev/null").file("ok", b"1"),
                   devices=Devices.SKIP)
    assert result.skipped == ("dev/null",) and not (target / "dev/null").exists()
    assert (target / "ok").exists()


def test_id_shift_maps_and_refuses_unmapped() -> None:
    shift = IdShift.offset(100000, 65536)
    assert (shift.uid(0), shift.gid(1000)) == (100000, 101000)
    with pytest.raises(UnsafeLayer, match="uid 70000 is outside"):
        shift.uid(70000, "etc/file")


# --- refused ----------------------------------------------------------------------------------

def hostile(outside: Path) -> list[tuple[str, TarBuilder, str]]:
    o = str(outside)
    return [
        ("absolute path", TarBuilder().file(f"{o}/pwned", b"x"), "absolute"),
        ("dot-dot", TarBuilder().file("../outside/pwned", b"x"), r"'\.\.'"),
        ("dot-dot inside", TarBuilder().dir("a").file("a/../../outside/pwned", b"x"), r"'\.\.'"),
        ("absolute symlink then write", TarBuilder().symlink("evil", o)
         .file("evil/pwned", b"x"), "writing through the symlink evil"),
        ("climbing symlink then write", TarBuilder().symlink("evil", "../outside")
         .file("evil/pwned", b"x"), "points outside"),
        ("symlink chain", TarBuilder().dir("a").symlink("a/up", "..").symlink("b", "a/up/..")
         .file("b/outside/pwned", b"x"), "points outside"),
        ("symlink then overwrite", TarBuilder().symlink("evil", o)
         .file("evil/marker", b"pwned"), "writing through the symlink"),
        ("symlink then mkdir", TarBuilder().symlink("evil", "../outside").dir("evil/newdir"),
         "points outside"),
        ("hardlink absolute", TarBuilder().hardlink("h", f"{o}/marker"), "absolute"),
        ("hardlink dot-dot", TarBuilder().hardlink("h", "../outside/marker"), r"'\.\.'"),
        ("hardlink through symlink", TarBuilder().symlink("evil", o)
         .hardlink("h", "evil/marker"), "writing through the symlink"),
        ("hardlink to nothing", TarBuilder().hardlink("h", "missing"), "not in this layer"),
        ("whiteout through symlink", TarBuilder().symlink("evil", o).whiteout("evil/marker"),
         "writing through the symlink"),
        ("opaque through symlink", TarBuilder().symlink("evil", "../outside").opaque("evil"),
         "points outside"),
        ("device node", TarBuilder().dir("dev").device("dev/sda", "b", 8, 0), "device node"),
        ("character device", TarBuilder().device("mem", "c", 1, 1), "device node"),
        ("long name", TarBuilder().file("a/" * 2100 + "f", b"x"), "more than the 4096"),
        ("long component", TarBuilder().file("x" * 300, b"x"), "longer than 255"),
        ("root as a file", TarBuilder().file("./", b"x"), "must be a directory"),
        ("file under a file", TarBuilder().file("f", b"x").file("f/g", b"y"), "not a directory"),
    ]


CASES = [c[0] for c in hostile(Path("/x"))]


@pytest.mark.parametrize("case", CASES)
def test_hostile_layers_are_refused(box: tuple[Path, Path], case: str) -> None:
    target, outside = box
    _, builder, words = next(c for c in hostile(outside) if c[0] == case)
    before = snapshot(outside.parent / "outside")
    with pytest.raises(UnsafeLayer, match=words) as info:
        apply(target, builder)
    assert info.value.member in [ti.name for ti, _ in builder.members]
    assert info.value.member[:50] in str(info.value)
    assert snapshot(outside) == before
    assert sorted(p.name for p in outside.parent.iterdir()) == ["outside", "root"]


def test_limits(box: tuple[Path, Path]) -> None:
    target, outside = box
    with pytest.raises(UnsafeLayer, match="more than the 10 allowed"):
        apply(target, TarBuilder().file("big", b"x" * 11), limits=Limits(max_file_size=10))
    with pytest.raises(UnsafeLayer, match="more than 2 members"):
        apply(target, TarBuilder().file("1").file("2").file("3"), limits=Limits(max_members=2))
    with pytest.raises(UnsafeLayer, match="add up to more"):
        apply(target, TarBuilder().file("1", b"x" * 8).file("2", b"x" * 8),
              limits=Limits(max_total_size=10))
    with pytest.raises(UnsafeLayer, match="extended header"):
        apply(target, TarBuilder().file("n" * 20000, b"x"), limits=Limits(max_header=4096))
    with pytest.raises(UnsafeLayer, match="symlink target"):
        apply(target, TarBuilder().symlink("l", "t" * 5000))
    with pytest.raises(UnsafeLayer, match="xattr"):
        apply(target, TarBuilder().file("x", b"", xattrs={"user.big": b"v" * 100}),
              limits=Limits(max_xattr_size=10))
    assert snapshot(outside) == {"marker": (stat.S_IFREG, 0o644, b"host file\n", None)}


def test_corrupt_and_unsupported_streams(box: tuple[Path, Path]) -> None:
    target, _ = box
    data = TarBuilder().file("a", b"a" * 5000).data()
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        apply_layer(str(target), io.BytesIO(gzip.compress(data)[:-20]), chown=False)
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        apply_layer(str(target), io.BytesIO(b"\x1f\x8b" + b"garbage" * 10), chown=False)
    with pytest.raises(InvalidArgument):
        apply_layer(str(target), io.BytesIO(data[:700]), chown=False)
    with pytest.raises(Unsupported, match="bzip2"):
        apply_layer(str(target), io.BytesIO(bz2.compress(data)), chown=False)
    assert detect_compression(compress(data, "zstd")) == "zstd"
    assert detect_compression(data) == "none"


def test_gnu_format_long_names(box: tuple[Path, Path]) -> None:
    target, _ = box
    name = "d/" + "n" * 200
    apply(target, TarBuilder(tarfile.GNU_FORMAT).file(name, b"gnu"))
    assert (target / name).read_bytes() == b"gnu"
