"""Fixtures of the snapshotter conformance suite: one snapshotter per driver, and a
loop-backed btrfs file system (made once per session, removed at its end)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hutch.storage import drivers
from hutch.storage.mount import unmount_all
from hutch.storage.snapshotter import Kind, Snapshotter
from hutch.testing.cleanup import mounts_below

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "images"))

DRIVERS = [
    pytest.param("overlay", marks=[pytest.mark.root, pytest.mark.overlay], id="overlay"),
    pytest.param("copy", marks=[pytest.mark.root], id="copy"),
    pytest.param("btrfs", marks=[pytest.mark.root, pytest.mark.btrfs], id="btrfs"),
]


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL).stdout.strip()


@pytest.fixture(scope="session")
def btrfs_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 256 MiB btrfs on a loop device, mounted; unmounted, detached and deleted after."""
    base = tmp_path_factory.mktemp("btrfs")
    image = base / "fs.img"
    mnt = base / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(256 << 20)  # sparse: costs nothing until written
    loop = None
    try:
        _run("mkfs.btrfs", "-q", str(image))
        loop = _run("losetup", "--find", "--show", str(image))
        _run("mount", "-t", "btrfs", loop, str(mnt))
        yield mnt
    finally:
        problems = []
        try:
            unmount_all(str(mnt))
        except OSError as e:
            problems.append(f"unmount {mnt}: {e}")
        if loop is not None:
            res = subprocess.run(["losetup", "-d", loop], capture_output=True, text=True,
                                 check=False)
            # "No such device or address": the kernel cleared it already (autoclear).
            if res.returncode != 0 and "No such device or address" not in res.stderr:
                problems.append(f"losetup -d {loop}: {res.stderr.strip()}")
        image.unlink(missing_ok=True)
        if problems:
            pytest.fail("btrfs teardown: " + "; ".join(problems), pytrace=False)


def remove_all(s: Snapshotter) -> None:
    """Remove every snapshot, children before parents."""
    while True:
        infos = s.walk()
        if not infos:
            return
        parents = {i.parent for i in infos if i.parent}
        for info in infos:
            if info.name not in parents:
                s.remove(info.name)


@pytest.fixture(params=DRIVERS)
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Snapshotter]:
    """A fresh snapshotter of each driver. At teardown, mounts left below the test's
    directory fail the test (after they are detached); every snapshot is removed."""
    name = request.param
    if name == "btrfs":
        base = request.getfixturevalue("btrfs_fs") / request.node.name.replace("/", "_")
    else:
        base = tmp_path / "storage"
    s = drivers.load(name, str(base))
    yield s
    leaked = mounts_below([tmp_path])
    for point in sorted(leaked, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    try:
        remove_all(s)
        leftovers = os.listdir(os.path.join(s.root, "snapshots")) + \
            os.listdir(os.path.join(s.root, "removing"))
    finally:
        s.close()
        if name == "btrfs":
            subprocess.run(["rm", "-rf", str(base)], check=False)
    if leaked:
        pytest.fail(f"mounts leaked: {leaked}", pytrace=False)
    assert leftovers == [], f"directories left after removing every snapshot: {leftovers}"


__all__ = ["Kind"]
