"""An image from the content store unpacked into snapshots, shared between images,
and a container's root prepared on top of it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from layertools import TarBuilder, add_image

from hutch.common.digest import Digest, DigestMismatch
from hutch.images.content import ContentStore
from hutch.images.unpack import unpack_image
from hutch.images.walk import resolve
from hutch.storage import drivers
from hutch.storage.mount import mounted
from hutch.storage.snapshotter import Kind
from hutch.testing.cleanup import mounts_below


@pytest.fixture(params=[pytest.param("overlay", marks=pytest.mark.overlay), "copy"])
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path):
    s = drivers.load(request.param, str(tmp_path / "storage"))
    yield s
    leaked = mounts_below([tmp_path])
    for p in sorted(leaked, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", p], check=False)
    while s.walk():
        parents = {i.parent for i in s.walk()}
        for info in s.walk():
            if info.name not in parents:
                s.remove(info.name)
    s.close()
    assert not leaked, leaked


def test_unpack_share_and_run(snapshotter, tmp_path: Path) -> None:
    content = ContentStore(str(tmp_path / "content"))
    base = TarBuilder().dir("etc").file("etc/os-release", b"ID=base\n").dir("bin") \
        .file("bin/tool", b"#!/bin/sh\n", 0o755).dir("cache").file("cache/x", b"x")
    app = TarBuilder().file("app", b"app 1").whiteout("cache").whiteout("bin/tool")
    other = TarBuilder().file("other", b"other")
    img1 = resolve(content, add_image(content, [base, app]))
    img2 = resolve(content, add_image(content, [base, other], "zstd"))

    first = unpack_image(content, snapshotter, img1)
    assert first.applied == 2 and first.chain_ids == img1.config.chain_ids()
    second = unpack_image(content, snapshotter, img2)
    assert second.applied == 1  # the base layer's snapshot is shared
    assert unpack_image(content, snapshotter, img1).applied == 0
    committed = {i.name for i in snapshotter.walk([Kind.COMMITTED])}
    assert committed == {str(c) for c in first.chain_ids + second.chain_ids}
    assert snapshotter.walk([Kind.ACTIVE]) == []

    root = tmp_path / "rootfs"
    root.mkdir()
    with mounted(snapshotter.prepare("container-1", first.top), str(root)):
        assert sorted(os.listdir(root)) == ["app", "bin", "etc"]
        assert os.listdir(root / "bin") == []
        (root / "etc/os-release").write_bytes(b"changed in the container\n")
    with mounted(snapshotter.view("check", second.top), str(root)):
        assert (root / "etc/os-release").read_bytes() == b"ID=base\n"
        assert sorted(os.listdir(root)) == ["bin", "cache", "etc", "other"]


def test_a_layer_with_the_wrong_diff_id_leaves_no_snapshot(snapshotter, tmp_path: Path) -> None:
    content = ContentStore(str(tmp_path / "content"))
    image = resolve(content, add_image(content, [TarBuilder().file("a", b"a")]))
    forged = image.config.__class__(**{**{f: getattr(image.config, f) for f in (
        "architecture", "os", "config", "variant", "created", "author", "history", "raw")},
        "rootfs": image.config.rootfs.__class__("layers", (Digest.from_bytes(b"forged"),))})
    bad = image.__class__(image.target, image.manifest_descriptor, image.manifest, forged)
    with pytest.raises(DigestMismatch, match="diff_id"):
        unpack_image(content, snapshotter, bad)
    assert snapshotter.walk() == []
