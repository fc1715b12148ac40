"""Layer unpacking as root: ownership and id shifts, device nodes, and overlayfs's
whiteout form checked through a real overlay mount."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from layertools import TarBuilder

from hutch.common.mount import Mount
from hutch.images.unpack import Devices, IdShift, UnsafeLayer, Whiteouts, apply_layer
from hutch.storage.mount import mounted


def test_ownership_and_id_shift(tmp_path: Path) -> None:
    b = (TarBuilder().dir("home", uid=0, gid=0).dir("home/u", 0o700, uid=1000, gid=1000)
         .file("home/u/f", b"x", 0o4755, uid=1000, gid=50).symlink("home/u/l", "f", uid=1000,
                                                                    gid=1000))
    plain, shifted = tmp_path / "plain", tmp_path / "shifted"
    plain.mkdir()
    shifted.mkdir()
    apply_layer(str(plain), b.stream())
    st = (plain / "home/u/f").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 50, 0o4755)
    assert (plain / "home/u/l").lstat().st_uid == 1000
    apply_layer(str(shifted), b.stream(), id_shift=IdShift.offset(200000))
    st = (shifted / "home/u/f").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (201000, 200050, 0o4755)
    assert (shifted / "home/u").stat().st_uid == 201000
    assert (shifted / "home/u/l").lstat().st_gid == 201000
    with pytest.raises(UnsafeLayer, match="uid 70000 is outside"):
        apply_layer(str(tmp_path), TarBuilder().file("x", uid=70000).stream(),
                    id_shift=IdShift.offset(200000))


def test_devices_when_allowed(tmp_path: Path) -> None:
    apply_layer(str(tmp_path), TarBuilder().dir("dev").device("dev/null", "c", 1, 3)
                .device("dev/loop9", "b", 7, 9).stream(), devices=Devices.CREATE)
    assert (tmp_path / "dev/null").lstat().st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK((tmp_path / "dev/loop9").lstat().st_mode)
    assert stat.S_IMODE((tmp_path / "dev/null").lstat().st_mode) == 0o666


def overlay(lowers: list[Path], upper: Path, work: Path) -> list[Mount]:
    return [Mount("overlay", "overlay", None, (f"upperdir={upper}", f"workdir={work}",
                                               "lowerdir=" + ":".join(map(str, lowers))))]


def test_overlay_form_whiteouts(tmp_path: Path) -> None:
    lower, upper, work, mnt = (tmp_path / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower, upper, work, mnt):
        d.mkdir()
    apply_layer(str(lower), TarBuilder().dir("etc", 0o750, uid=5, gid=6).file("etc/a", b"a")
                .file("etc/b", b"b").dir("var").dir("var/lib").file("var/lib/old", b"o")
                .symlink("lib", "usr/lib").dir("usr").dir("usr/lib").stream())
    top = (TarBuilder().whiteout("etc/a").whiteout("etc/not-below").opaque("var/lib")
           .file("var/lib/new", b"n").file("etc/c", b"c").file("lib/libnew.so", b"so")
           .whiteout("nowhere/x"))
    apply_layer(str(upper), top.stream(), whiteouts=Whiteouts.OVERLAY, lowers=[str(lower)])
    wh = (upper / "etc/a").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert not (upper / "etc/not-below").exists()  # nothing below to hide
    assert os.getxattr(upper / "var/lib", "trusted.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(upper / "var")
    st = (upper / "etc").stat()  # made for etc/c, like the lower's etc
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (5, 6, 0o750)
    assert (upper / "usr/lib/libnew.so").exists()  # through the lower's lib -> usr/lib
    assert not (upper / "lib").exists()
    with mounted(overlay([lower], upper, work), str(mnt)):
        assert sorted(os.listdir(mnt / "etc")) == ["b", "c"]
        assert os.listdir(mnt / "var/lib") == ["new"]
        assert sorted(os.listdir(mnt / "usr/lib")) == ["libnew.so"]


def test_overlay_form_refuses_escapes_through_lower_symlinks(tmp_path: Path) -> None:
    lower, upper, outside = tmp_path / "lower", tmp_path / "upper", tmp_path / "outside"
    for d in (lower, upper, outside):
        d.mkdir()
    apply_layer(str(lower), TarBuilder().symlink("evil", str(outside))
                .symlink("up", "../outside").stream())
    for name in ("evil/pwned", "up/pwned"):
        with pytest.raises(UnsafeLayer, match="points outside"):
            apply_layer(str(upper), TarBuilder().file(name, b"x").stream(),
                        whiteouts=Whiteouts.OVERLAY, lowers=[str(lower)])
    assert os.listdir(outside) == [] and os.listdir(upper) == []
