"""hutch.oci.image_spec: parsing with field-named errors, media types, platforms."""

from __future__ import annotations

import json

import pytest

from hutch.common.digest import Digest
from hutch.errors import InvalidArgument, Unsupported
from hutch.oci import image_spec as S

D1 = str(Digest.from_bytes(b"1"))
D2 = str(Digest.from_bytes(b"2"))
D3 = str(Digest.from_bytes(b"3"))


def manifest(**over: object) -> dict:
    m = {"schemaVersion": 2, "mediaType": S.OCI_MANIFEST,
         "config": {"mediaType": S.OCI_CONFIG, "digest": D1, "size": 10},
         "layers": [{"mediaType": S.OCI_LAYER_GZIP, "digest": D2, "size": 20}]}
    m.update(over)
    return m


def test_manifest_parses_and_serializes() -> None:
    m = S.parse_manifest(json.dumps(manifest(annotations={"a": "b"})).encode())
    assert m.config.digest == Digest.parse(D1) and m.config.size == 10
    assert [layer.media_type for layer in m.layers] == [S.OCI_LAYER_GZIP]
    assert m.annotations == {"a": "b"}
    again = S.parse_manifest(m.to_json())
    assert again == m


def test_manifest_errors_name_every_field() -> None:
    bad = manifest(schemaVersion=1, config={"mediaType": S.OCI_CONFIG, "digest": "sha256:xyz"},
                   layers=[{"mediaType": S.OCI_LAYER, "digest": D2, "size": -1}, "nope"])
    with pytest.raises(InvalidArgument) as info:
        S.parse_manifest(bad)
    text = str(info.value)
    for where in ("manifest.schemaVersion", "manifest.config.digest", "manifest.config.size",
                  "manifest.layers[0].size", "manifest.layers[1]"):
        assert where in text, where


def test_manifest_media_type_must_agree() -> None:
    with pytest.raises(InvalidArgument, match="manifest.mediaType"):
        S.parse_manifest(manifest(mediaType=S.OCI_INDEX))
    with pytest.raises(InvalidArgument, match="the descriptor says"):
        S.parse_manifest(manifest(), media_type=S.DOCKER_MANIFEST)
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        S.parse_manifest(b"{")


def test_docker_schema2_and_schema1() -> None:
    m = S.parse_manifest(manifest(mediaType=S.DOCKER_MANIFEST, config={
        "mediaType": S.DOCKER_CONFIG, "digest": D1, "size": 1}))
    assert m.media_type == S.DOCKER_MANIFEST
    with pytest.raises(Unsupported, match="schema 1"):
        S.parse_manifest_or_index({"schemaVersion": 1, "mediaType": S.DOCKER_SCHEMA1[0]})
    assert S.layer_compression(S.DOCKER_LAYER_GZIP) == "gzip"
    assert S.layer_compression(S.OCI_LAYER_ZSTD) == "zstd"
    assert S.layer_compression(S.OCI_LAYER) == "none"
    with pytest.raises(InvalidArgument):
        S.layer_compression(S.OCI_CONFIG)


def index(*platforms: dict | None) -> dict:
    entries = []
    for i, p in enumerate(platforms):
        e = {"mediaType": S.OCI_MANIFEST, "digest": str(Digest.from_bytes(str(i).encode())),
             "size": 1}
        if p is not None:
            e["platform"] = p
        entries.append(e)
    return {"schemaVersion": 2, "mediaType": S.OCI_INDEX, "manifests": entries}


def test_index_platform_selection() -> None:
    idx = S.parse_index(index({"os": "linux", "architecture": "arm64", "variant": "v8"},
                              {"os": "linux", "architecture": "amd64"},
                              None,
                              {"os": "linux", "architecture": "arm", "variant": "v7"},
                              {"os": "windows", "architecture": "amd64"}))
    amd = idx.select()
    assert len(amd) == 1 and amd[0].platform == S.Platform("linux", "amd64")
    arm64 = idx.select(S.Platform.parse("linux/aarch64"))
    assert [d.platform.architecture for d in arm64] == ["arm64"]
    assert [d.platform.variant for d in idx.select(S.Platform.parse("linux/arm/v7"))] == ["v7"]
    assert idx.select(S.Platform.parse("linux/arm/v6")) == []
    assert idx.select(S.Platform.parse("linux/s390x")) == []
    assert S.parse_manifest_or_index(index()).manifests == ()


def test_platform_parse_and_normalize() -> None:
    assert S.Platform.parse("linux/x86_64") == S.Platform("linux", "amd64")
    assert str(S.Platform.parse("linux/arm64/v8")) == "linux/arm64"
    assert S.Platform.parse("armhf") == S.Platform("linux", "arm", "v7")
    assert S.Platform.host().os == "linux"
    with pytest.raises(InvalidArgument, match="os/architecture"):
        S.Platform.parse("linux//")


def test_index_errors_name_fields() -> None:
    bad = index({"os": "linux"})
    with pytest.raises(InvalidArgument, match=r"index.manifests\[0\].platform.architecture"):
        S.parse_index(bad)


def config(**over: object) -> dict:
    c = {"architecture": "amd64", "os": "linux",
         "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
         "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
         "history": [{"created_by": "a"}, {"created_by": "b", "empty_layer": True},
                     {"created_by": "c"}]}
    c.update(over)
    return c


def test_config_parses() -> None:
    c = S.parse_config(config())
    assert c.diff_ids == (Digest.parse(D1), Digest.parse(D2))
    assert c.platform == S.Platform("linux", "amd64")
    assert c.config["Cmd"] == ["sh"]
    assert S.parse_config(c.to_json()).diff_ids == c.diff_ids


def test_config_errors_name_fields() -> None:
    bad = config(rootfs={"type": "tar", "diff_ids": ["sha256:1"]},
                 config={"Env": ["NOVALUE"], "Cmd": "sh", "Labels": []}, os=3)
    with pytest.raises(InvalidArgument) as info:
        S.parse_config(bad)
    text = str(info.value)
    for where in ("config.os", "config.rootfs.type", "config.rootfs.diff_ids[0]",
                  "config.config.Env[0]", "config.config.Cmd", "config.config.Labels"):
        assert where in text, where
    with pytest.raises(InvalidArgument, match="config.history"):
        S.parse_config(config(history=[{"created_by": "only one"}]))


def test_chain_ids() -> None:
    a, b, c = (Digest.parse(d) for d in (D1, D2, D3))
    chain = S.chain_ids([a, b, c])
    assert chain[0] == a
    assert chain[1] == Digest.from_bytes(f"{a} {b}".encode())
    assert chain[2] == Digest.from_bytes(f"{chain[1]} {c}".encode())


def test_manifest_against_config() -> None:
    m = S.parse_manifest(manifest())
    with pytest.raises(InvalidArgument, match="has 1 layers but"):
        S.check_manifest_against_config(m, S.parse_config(config()))
