"""hutch image validate: layouts, archives and stored images checked against the image spec;
every problem listed, nothing written."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from layertools import TarBuilder, add_image

from hutch.common.digest import Digest
from hutch.images.content import ContentStore
from hutch.images.metadata import MetadataStore
from hutch.images.unpack import LayerScanner, scan_layer
from hutch.images.validate import validate_source, validate_stored
from hutch.oci.image_spec import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical_json


def _blob(layout: Path, data: bytes) -> dict:
    d = Digest.from_bytes(data)
    path = layout / "blobs" / "sha256" / d.hex
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": str(d), "size": len(data)}


def make_layout(layout: Path, layers: list[bytes], *, diff_ids: list[str] | None = None,
                config_media_type: str = OCI_CONFIG, layer_media_type: str = OCI_LAYER) -> dict:
    """An OCI layout of one image with these (uncompressed) layers; returns its parts."""
    descs = [{"mediaType": layer_media_type, **_blob(layout, data)} for data in layers]
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers",
                         "diff_ids": diff_ids or [d["digest"] for d in descs]},
              "config": {"Cmd": ["/bin/sh"]}}
    cdesc = {"mediaType": config_media_type, **_blob(layout, canonical_json(config))}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": descs}
    mdesc = {"mediaType": OCI_MANIFEST, **_blob(layout, canonical_json(manifest)),
             "annotations": {"org.opencontainers.image.ref.name": "v1"}}
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))
    return {"layers": descs, "config": cdesc, "manifest": mdesc}


SAFE = TarBuilder().dir("etc").file("etc/hello", b"hi\n").symlink("link", "etc/hello")


def test_a_good_layout_is_ok_as_a_directory_and_as_a_tar(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    make_layout(layout, [SAFE.data(), TarBuilder().file("two", b"2").data()])
    report = validate_source(str(layout))
    assert report.ok, report.problems
    assert (report.images, report.layers) == (1, 2)
    archive = tmp_path / "layout.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(layout, arcname=".")
    assert validate_source(str(archive)).ok


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    hostile = TarBuilder().file("../escape", b"x").symlink("out", "/etc") \
        .file("out/passwd", b"owned").device("dev/sda", "b", 8, 0)
    corrupt = TarBuilder().file("c", b"corrupt me").data()
    missing = TarBuilder().file("m", b"i will be deleted").data()
    parts = make_layout(layout, [SAFE.data(), hostile.data(), corrupt, missing],
                        diff_ids=[str(SAFE.diff_id()), str(hostile.diff_id()),
                                  str(Digest.from_bytes(corrupt)),
                                  str(Digest.from_bytes(b"not the layer"))])
    corrupt_path = layout / "blobs/sha256" / parts["layers"][2]["digest"].split(":")[1]
    corrupt_path.write_bytes(corrupt[:-1] + b"!")  # same size, other digest
    os.unlink(layout / "blobs/sha256" / parts["layers"][3]["digest"].split(":")[1])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    report = validate_source(str(layout))
    text = "\n".join(report.problems)
    assert not report.ok
    assert "'../escape'" in text and "'..'" in text
    assert "out/passwd" in text and "symlink out -> /etc" in text
    assert "device node (8, 0) refused" in text
    assert "layers[2]" in text and "blob content has digest" in text
    assert "layers[3]" in text and "is missing" in text
    assert len(report.problems) == 5, report.problems
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_bad_media_types_sizes_and_diff_ids(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    make_layout(layout, [SAFE.data()], config_media_type="application/x-config",
                layer_media_type="text/plain")
    text = "\n".join(validate_source(str(layout)).problems)
    assert "'application/x-config' is not an image config media type" in text
    assert "'text/plain' is not a layer media type" in text

    other = tmp_path / "other"
    parts = make_layout(other, [SAFE.data()], diff_ids=[str(Digest.from_bytes(b"x"))])
    index = json.loads((other / "index.json").read_text())
    index["manifests"].append({**parts["manifest"], "size": parts["manifest"]["size"] + 1})
    (other / "index.json").write_text(json.dumps(index))
    problems = validate_source(str(other)).problems
    text = "\n".join(problems)
    assert "diff_id" in text and "but the image config says" in text
    assert f"has {parts['manifest']['size']} bytes, the descriptor says" in text


def test_a_broken_layout_says_what_is_missing(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "2.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": [{"digest": 1}]}')
    text = "\n".join(validate_source(str(layout)).problems)
    assert "imageLayoutVersion must be '1.0.0'" in text
    assert "mediaType: is required" in text and "size: is required" in text
    assert not validate_source(str(tmp_path / "nothing-here")).ok


def test_a_stored_image_is_validated_from_its_name(tmp_path: Path) -> None:
    content = ContentStore(str(tmp_path / "content"))
    with MetadataStore(str(tmp_path / "meta.db")) as meta:
        target = add_image(content, [SAFE, TarBuilder().file("x", b"1")])
        meta.put("example.org/ok:1", target)
        assert validate_stored(content, meta, "example.org/ok:1").ok
        bad = add_image(content, [TarBuilder().symlink("s", "../../..").file("s/x", b"")])
        meta.put("example.org/bad:1", bad)
        report = validate_stored(content, meta, "example.org/bad:1")
        assert len(report.problems) == 1 and "points outside" in report.problems[0]


def test_the_scanner_follows_symlinks_of_lower_layers_and_whiteouts() -> None:
    scanner = LayerScanner()
    lower = TarBuilder().dir("a").symlink("a/up", "../..").symlink("ok", "a")
    assert scanner.scan(io.BytesIO(lower.data())).problems == []
    upper = TarBuilder().file("ok/fine", b"").file("a/up/x", b"")
    problems = scanner.scan(io.BytesIO(upper.data())).problems
    assert len(problems) == 1 and "a/up/x" in problems[0]
    # after a whiteout of the symlink, the same name is an ordinary directory again
    third = TarBuilder().whiteout("a/up").file("a/up/x", b"")
    assert scanner.scan(io.BytesIO(third.data())).problems == []


def test_the_scanner_refuses_what_the_applier_refuses() -> None:
    cases = {
        "absolute": TarBuilder().file("/abs", b""),
        "hard link outside": TarBuilder().hardlink("h", "../../etc/shadow"),
        "hard link to nothing": TarBuilder().hardlink("h", "nothing"),
        "long name": TarBuilder().file("x" * 300, b""),
        "whiteout of nothing": TarBuilder().file(".wh.", b""),
    }
    for what, builder in cases.items():
        result = scan_layer(io.BytesIO(builder.data()))
        assert len(result.problems) == 1, (what, result.problems)
    result = scan_layer(io.BytesIO(b"not a tar at all" * 100))
    assert result.problems and "not a valid tar stream" in result.problems[0]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_layers_are_scanned_and_their_diff_id_checked(compression: str) -> None:
    result = scan_layer(io.BytesIO(SAFE.layer(compression)), SAFE.diff_id())
    assert result.problems == [] and result.compression == compression
    assert result.diff_id == SAFE.diff_id()
