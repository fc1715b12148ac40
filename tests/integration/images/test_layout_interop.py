"""Interoperability of hutch's OCI layouts and Docker archives with skopeo and umoci,
both ways (Debian's packages; local files only, no registry)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from layertools import TarBuilder, add_image

from hutch.images.content import ContentStore
from hutch.images.layout import export_docker, export_oci, import_archive
from hutch.images.metadata import MetadataStore
from hutch.images.unpack import unpack_image
from hutch.images.walk import resolve
from hutch.storage import drivers
from hutch.storage.mount import mounted


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found: apt-get install {name}")
    return path


def run(*argv: str) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         timeout=120, check=False)
    assert res.returncode == 0, f"{' '.join(argv)}: {res.stderr}"
    return res.stdout


@pytest.fixture
def store(tmp_path: Path):
    content = ContentStore(str(tmp_path / "content"))
    meta = MetadataStore(str(tmp_path / "meta.db"))
    base = TarBuilder().dir("etc").file("etc/os-release", b"ID=interop\n").dir("tmp", 0o1777)
    top = TarBuilder().file("hello", b"hello from hutch\n", 0o755).whiteout("etc/os-release")
    meta.put("example.org/interop:1", add_image(content, [base, top]))
    yield content, meta
    meta.close()


def diff_ids(content: ContentStore, meta: MetadataStore, name: str) -> tuple:
    return resolve(content, meta.get(name).target).config.diff_ids


def test_skopeo_reads_our_layout_and_we_read_its_archive(store, tmp_path: Path) -> None:
    skopeo = tool("skopeo")
    content, meta = store
    layout = tmp_path / "layout"
    export_oci(str(layout), content, meta, ["example.org/interop:1"], as_dir=True)
    info = json.loads(run(skopeo, "inspect", f"oci:{layout}:1"))
    assert len(info["Layers"]) == 2
    archive = tmp_path / "from-skopeo.tar"
    run(skopeo, "--insecure-policy", "copy", "--quiet", f"oci:{layout}:1",
        f"docker-archive:{archive}:example.org/interop:copied")
    content2 = ContentStore(str(tmp_path / "content2"))
    with MetadataStore(str(tmp_path / "meta2.db")) as meta2:
        imported = import_archive(str(archive), content2, meta2)
        assert [i.name for i in imported] == ["example.org/interop:copied"]
        assert diff_ids(content2, meta2, "example.org/interop:copied") == \
            diff_ids(content, meta, "example.org/interop:1")


def test_skopeo_reads_our_docker_archive_and_we_read_its_layout(store, tmp_path: Path) -> None:
    skopeo = tool("skopeo")
    content, meta = store
    archive = tmp_path / "ours.tar"
    export_docker(str(archive), content, meta, ["example.org/interop:1"])
    info = json.loads(run(skopeo, "inspect", f"docker-archive:{archive}"))
    assert info["RepoTags"] == [] or len(info["Layers"]) == 2
    layout = tmp_path / "skopeo-layout"
    run(skopeo, "--insecure-policy", "copy", "--quiet", f"docker-archive:{archive}",
        f"oci:{layout}:v2")
    content2 = ContentStore(str(tmp_path / "content2"))
    with MetadataStore(str(tmp_path / "meta2.db")) as meta2:
        imported = import_archive(str(layout), content2, meta2, repository="example.org/back")
        assert [i.name for i in imported] == ["example.org/back:v2"]
        assert diff_ids(content2, meta2, "example.org/back:v2") == \
            diff_ids(content, meta, "example.org/interop:1")


def test_umoci_unpacks_our_layout(store, tmp_path: Path) -> None:
    umoci = tool("umoci")
    content, meta = store
    layout = tmp_path / "layout"
    export_oci(str(layout), content, meta, ["example.org/interop:1"], as_dir=True)
    bundle = tmp_path / "bundle"
    run(umoci, "unpack", "--image", f"{layout}:1", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "hello").read_bytes() == b"hello from hutch\n"
    assert not (rootfs / "etc/os-release").exists()  # the whiteout was applied
    assert oct((rootfs / "tmp").stat().st_mode & 0o7777) == oct(0o1777)


def test_we_unpack_an_image_umoci_made(tmp_path: Path) -> None:
    umoci = tool("umoci")
    layout, bundle = tmp_path / "umoci-layout", tmp_path / "bundle"
    run(umoci, "init", "--layout", str(layout))
    run(umoci, "new", "--image", f"{layout}:made")
    run(umoci, "unpack", "--image", f"{layout}:made", str(bundle))
    (bundle / "rootfs/made-by").write_text("umoci\n")
    os.makedirs(bundle / "rootfs/dir/sub")
    run(umoci, "repack", "--image", f"{layout}:made", str(bundle))
    shutil.rmtree(bundle)
    run(umoci, "unpack", "--image", f"{layout}:made", str(bundle))
    (bundle / "rootfs/made-by").unlink()
    run(umoci, "repack", "--image", f"{layout}:made", str(bundle))  # a whiteout layer

    content = ContentStore(str(tmp_path / "content"))
    with MetadataStore(str(tmp_path / "meta.db")) as meta, \
            drivers.load("copy", str(tmp_path / "storage")) as snaps:
        [image] = import_archive(str(layout), content, meta, repository="local/umoci")
        assert image.name == "local/umoci:made"
        resolved = resolve(content, meta.get(image.name).target)
        unpacked = unpack_image(content, snaps, resolved)
        assert unpacked.applied == len(resolved.layers) == 2
        root = tmp_path / "root"
        root.mkdir()
        with mounted(snaps.view("look", unpacked.top), str(root)):
            assert (root / "dir/sub").is_dir() and not (root / "made-by").exists()
        snaps.remove("look")
        for chain in reversed(unpacked.chain_ids):
            snaps.remove(str(chain))
