"""hutch.images.layout: OCI layouts and Docker archives, in and out, verified."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from layertools import TarBuilder, add_image, add_index

from hutch.common.digest import DigestMismatch
from hutch.errors import InvalidArgument, NotFound
from hutch.images.content import ContentStore
from hutch.images.layout import export_docker, export_oci, import_archive
from hutch.images.metadata import MetadataStore
from hutch.images.walk import resolve, walk
from hutch.oci.image_spec import ANNOTATION_REF_NAME, OCI_LAYER, Platform


class Stores:
    def __init__(self, root: Path) -> None:
        self.content = ContentStore(str(root / "content"))
        self.meta = MetadataStore(str(root / "meta.db"))

    def blobs(self) -> set:
        return {i.digest for i in self.content.walk()}


@pytest.fixture
def src(tmp_path: Path) -> Stores:
    s = Stores(tmp_path / "src")
    base = TarBuilder().dir("etc").file("etc/os-release", b"ID=layout\n")
    top = TarBuilder().file("app", b"#!/bin/sh\n", 0o755).whiteout("etc/os-release")
    s.meta.put("example.org/app:1.0", add_image(s.content, [base, top]))
    amd = add_image(s.content, [base, TarBuilder().file("amd", b"1")], "zstd")
    arm = add_image(s.content, [base, TarBuilder().file("arm", b"2")],
                    platform=Platform("linux", "arm64"))
    s.meta.put("example.org/multi:latest", add_index(s.content, [amd, arm]))
    yield s
    s.meta.close()


@pytest.fixture
def dst(tmp_path: Path) -> Stores:
    s = Stores(tmp_path / "dst")
    yield s
    s.meta.close()


NAMES = ["example.org/app:1.0", "example.org/multi:latest"]


@pytest.mark.parametrize("as_dir", [True, False])
def test_oci_layout_round_trip(src: Stores, dst: Stores, tmp_path: Path, as_dir: bool) -> None:
    out = str(tmp_path / ("layout" if as_dir else "layout.tar"))
    export_oci(out, src.content, src.meta, NAMES, as_dir=as_dir)
    if as_dir:
        assert json.loads(Path(out, "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads(Path(out, "index.json").read_text())
        assert [m["annotations"][ANNOTATION_REF_NAME] for m in index["manifests"]] == \
            ["1.0", "latest"]
    imported = import_archive(out, dst.content, dst.meta)
    assert sorted(i.name for i in imported) == NAMES
    for name in NAMES:
        assert dst.meta.get(name).target.digest == src.meta.get(name).target.digest
    assert dst.blobs() == src.blobs()
    assert dst.meta.leases() == []


def test_docker_archive_round_trip(src: Stores, dst: Stores, tmp_path: Path) -> None:
    out = str(tmp_path / "docker.tar")
    export_docker(out, src.content, src.meta, NAMES)
    with tarfile.open(out) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))
        repositories = json.load(tf.extractfile("repositories"))
    assert [m["RepoTags"] for m in manifest] == [[NAMES[0]], [NAMES[1]]]
    assert set(repositories) == {"example.org/app", "example.org/multi"}
    assert all(layer.endswith("/layer.tar") for m in manifest for layer in m["Layers"])
    assert all(n in names for m in manifest for n in m["Layers"] + [m["Config"]])

    imported = import_archive(out, dst.content, dst.meta)
    assert sorted(i.name for i in imported) == NAMES
    for name in NAMES:  # new manifests, same configs, hence the same layers' diff_ids
        ours = resolve(dst.content, dst.meta.get(name).target)
        theirs = resolve(src.content, src.meta.get(name).target)
        assert ours.manifest.config.digest == theirs.manifest.config.digest
        assert ours.config.diff_ids == theirs.config.diff_ids
        assert all(layer.media_type == OCI_LAYER for layer in ours.layers)


def test_a_tampered_blob_is_refused_and_nothing_named(src: Stores, dst: Stores,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "layout"
    export_oci(str(out), src.content, src.meta, NAMES[:1], as_dir=True)
    layer = resolve(src.content, src.meta.get(NAMES[0]).target).layers[0]
    blob = out / "blobs" / "sha256" / layer.digest.hex
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(DigestMismatch, match=str(layer.digest)):
        import_archive(str(out), dst.content, dst.meta)
    assert dst.meta.list() == [] and not dst.content.exists(layer.digest)
    os.unlink(blob)
    with pytest.raises(NotFound, match="missing from the archive"):
        import_archive(str(out), dst.content, dst.meta)


def test_a_docker_layer_must_match_its_diff_id(src: Stores, dst: Stores, tmp_path: Path) -> None:
    out = tmp_path / "docker.tar"
    export_docker(str(out), src.content, src.meta, NAMES[:1])
    with tarfile.open(out) as tf:
        members = {m.name: (m, tf.extractfile(m).read() if m.isfile() else None)
                   for m in tf.getmembers()}
    manifest = json.loads(members["manifest.json"][1])
    victim = manifest[0]["Layers"][1]
    other = TarBuilder().file("evil", b"swapped").data()
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        for name, (ti, data) in members.items():
            if name == victim:
                data = other
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    with pytest.raises(DigestMismatch, match="diff_id"):
        import_archive(str(bad), dst.content, dst.meta)
    assert dst.meta.list() == []


def test_names_for_unnamed_or_bare_tags(src: Stores, dst: Stores, tmp_path: Path) -> None:
    out = tmp_path / "layout"
    export_oci(str(out), src.content, src.meta, NAMES[:1], as_dir=True)
    index = json.loads((out / "index.json").read_text())
    for m in index["manifests"]:
        m["annotations"] = {ANNOTATION_REF_NAME: "v1"}
    (out / "index.json").write_text(json.dumps(index))
    imported = import_archive(str(out), dst.content, dst.meta, repository="local/app")
    assert [i.name for i in imported] == ["local/app:v1"]
    imported = import_archive(str(out), dst.content, dst.meta, name="renamed:2")
    assert [i.name for i in imported] == ["renamed:2"]
    assert sorted(i.name for i in dst.meta.list()) == ["local/app:v1", "renamed:2"]


def test_not_an_archive(dst: Stores, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match="neither an OCI image layout"):
        import_archive(str(tmp_path / "empty"), dst.content, dst.meta)
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InvalidArgument, match="cannot read the archive"):
        import_archive(str(tmp_path / "junk.tar"), dst.content, dst.meta)


def test_only_pulled_platforms_are_exported(src: Stores, dst: Stores, tmp_path: Path) -> None:
    index = src.meta.get(NAMES[1]).target
    arm = resolve(src.content, index, Platform("linux", "arm64")).manifest_descriptor
    src.content.delete(arm.digest)  # as if only amd64 had been pulled
    out = str(tmp_path / "partial.tar")
    export_oci(out, src.content, src.meta, NAMES[1:])
    import_archive(out, dst.content, dst.meta)
    assert resolve(dst.content, dst.meta.get(NAMES[1]).target).config.platform == \
        Platform("linux", "amd64")
    assert {d.digest for d in walk(dst.content, [index], missing_ok=True)
            if dst.content.exists(d.digest)} == dst.blobs()
