"""The built-in busybox template: a static busybox and a link for every applet."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hutch.errors import InvalidArgument, NotFound, Unsupported
from hutch.images.templates import build_busybox_rootfs
from hutch.images.templates.busybox import DEFAULT_BUSYBOX, elf_interpreter, list_applets


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build_busybox_rootfs(str(tmp_path_factory.mktemp("tpl") / "rootfs")))


def test_busybox_is_a_static_copy(rootfs: Path) -> None:
    binary = rootfs / "bin/busybox"
    assert not binary.is_symlink() and binary.is_file()
    assert binary.stat().st_ino != Path(DEFAULT_BUSYBOX).resolve().stat().st_ino
    assert binary.stat().st_mode & 0o777 == 0o755
    assert elf_interpreter(str(binary)) is None


def test_every_applet_is_a_relative_link_to_busybox(rootfs: Path) -> None:
    applets = list_applets(DEFAULT_BUSYBOX)
    assert {"bin/sh", "bin/ls", "bin/mount", "sbin/init", "usr/bin/env"} <= set(applets)
    for applet in applets:
        if applet == "bin/busybox":
            continue
        link = rootfs / applet
        target = os.readlink(link)
        assert not target.startswith("/"), applet
        assert (link.parent / target).resolve() == (rootfs / "bin/busybox").resolve(), applet


def test_layout_and_files(rootfs: Path) -> None:
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "run",
              "var/log", "usr/bin", "usr/sbin"):
        assert (rootfs / d).is_dir(), d
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    passwd = (rootfs / "etc/passwd").read_text().splitlines()
    assert passwd[0].startswith("root:x:0:0:") and any(
        line.startswith("nobody:x:65534:65534:") for line in passwd)
    group = (rootfs / "etc/group").read_text()
    assert "root:x:0:" in group and "tty:x:5:" in group and "nogroup:x:65534:" in group
    assert "hutch" in (rootfs / "etc/os-release").read_text()
    assert (rootfs / "etc/hostname").read_text().strip()
    assert "localhost" in (rootfs / "etc/hosts").read_text()
    assert "::" in (rootfs / "etc/inittab").read_text()


def test_applets_run_through_their_links(rootfs: Path) -> None:
    # A static binary runs from the host too; awk sits two directories below busybox.
    out = subprocess.run([rootfs / "usr/bin/awk", "BEGIN { print 6 * 7 }"],
                         capture_output=True, text=True, check=True)
    assert out.stdout == "42\n"
    out = subprocess.run([rootfs / "bin/sh", "-c", "basename $0"], capture_output=True,
                         text=True, check=True)
    assert out.stdout == "sh\n"


def test_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    build_busybox_rootfs(str(tmp_path / "rootfs"))
    assert time.perf_counter() - start < 1.0


def test_into_an_existing_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    assert build_busybox_rootfs(str(tmp_path / "rootfs")) == str(tmp_path / "rootfs")
    assert (tmp_path / "rootfs/bin/sh").is_symlink()


def test_refuses_a_dynamically_linked_busybox(tmp_path: Path) -> None:
    with pytest.raises(Unsupported, match="busybox-static"):
        build_busybox_rootfs(str(tmp_path / "rootfs"), busybox=os.path.realpath(sys.executable))
    assert os.listdir(tmp_path) == []


def test_refuses_what_is_not_elf(tmp_path: Path) -> None:
    script = tmp_path / "busybox"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(InvalidArgument, match="not an ELF"):
        build_busybox_rootfs(str(tmp_path / "rootfs"), busybox=str(script))


def test_missing_busybox_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="busybox-static"):
        build_busybox_rootfs(str(tmp_path / "rootfs"), busybox=str(tmp_path / "nope"))


def test_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs/keep").write_text("mine")
    with pytest.raises(InvalidArgument, match="not an empty directory"):
        build_busybox_rootfs(str(tmp_path / "rootfs"))
    assert os.listdir(tmp_path / "rootfs") == ["keep"]
    assert sorted(os.listdir(tmp_path)) == ["rootfs"]  # no half-built tree beside it


def test_a_failure_half_way_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hutch.images.templates.busybox as bb

    def broken(busybox: str) -> list[str]:
        raise RuntimeError("applets exploded")
    monkeypatch.setattr(bb, "list_applets", broken)
    with pytest.raises(RuntimeError):
        build_busybox_rootfs(str(tmp_path / "rootfs"))
    assert os.listdir(tmp_path) == []
