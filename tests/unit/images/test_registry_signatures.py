"""The signature artifact (registry/signatures.py) and the reference helpers pull uses."""

from __future__ import annotations

import json

import pytest

from hutch.common.digest import Digest
from hutch.errors import InvalidArgument
from hutch.images import signing
from hutch.images.registry.reference import (
    INSECURE_ENV,
    insecure_registries,
    names_registry,
)
from hutch.images.registry.signatures import (
    SIGNATURE_TYPE,
    FetchedSignatures,
    build_artifact,
    check,
    parse_artifact,
    signature_tag,
)
from hutch.oci.image_spec import OCI_EMPTY, OCI_MANIFEST, Descriptor

IMAGE = Descriptor(OCI_MANIFEST, Digest.from_bytes(b"an image manifest"), 17)
OTHER = Digest.from_bytes(b"another manifest")


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> str:
    private, _ = signing.generate_key(str(tmp_path_factory.mktemp("k") / "k.pem"))
    return private


def test_the_tag_is_named_after_the_digest() -> None:
    assert signature_tag(IMAGE.digest) == f"sha256-{IMAGE.digest.hex}.sig"


def test_the_artifact_round_trips_and_says_what_it_is(key: str) -> None:
    sig = signing.sign(IMAGE.digest, key)
    manifest, document = build_artifact(IMAGE, [sig])
    obj = json.loads(manifest)
    assert obj["artifactType"] == SIGNATURE_TYPE and obj["mediaType"] == OCI_MANIFEST
    assert obj["config"]["mediaType"] == OCI_EMPTY and obj["config"]["size"] == 2
    assert obj["subject"]["digest"] == str(IMAGE.digest)
    layer = parse_artifact(manifest, OCI_MANIFEST, "test")
    assert layer.digest == Digest.from_bytes(document) and layer.size == len(document)
    assert signing.loads(document, "doc") == [sig]


def test_a_signature_of_another_digest_cannot_be_filed_under_this_one(key: str) -> None:
    with pytest.raises(InvalidArgument, match="cannot be filed under"):
        build_artifact(IMAGE, [signing.sign(OTHER, key)])


def test_an_artifact_of_another_kind_is_refused(key: str) -> None:
    manifest, _ = build_artifact(IMAGE, [signing.sign(IMAGE.digest, key)])
    obj = json.loads(manifest)
    obj["artifactType"] = "application/vnd.dev.cosign.artifact.sig.v1+json"
    with pytest.raises(InvalidArgument, match="not a hutch signature artifact"):
        parse_artifact(json.dumps(obj).encode(), OCI_MANIFEST, "x")
    obj["artifactType"] = SIGNATURE_TYPE
    obj["layers"] = obj["layers"] * 2
    with pytest.raises(InvalidArgument, match="expected one layer"):
        parse_artifact(json.dumps(obj).encode(), OCI_MANIFEST, "x")
    obj["layers"] = [{**obj["layers"][0], "size": signing.MAX_SIG_FILE + 1}]
    with pytest.raises(InvalidArgument, match="more than"):
        parse_artifact(json.dumps(obj).encode(), OCI_MANIFEST, "x")


def test_check_keeps_valid_signatures_once_and_says_why_others_go(key: str) -> None:
    good = signing.sign(IMAGE.digest, key)
    elsewhere = signing.sign(OTHER, key)
    forged = signing.Signature(IMAGE.digest, good.key_id, good.public_key, bytes(64))
    result = FetchedSignatures(IMAGE.digest, found=True)
    check(IMAGE.digest, [good, good, elsewhere, forged], result)
    assert result.valid == [good]
    assert result.rejected == [f"key {good.key_id}: signs {OTHER}, not {IMAGE.digest}",
                               f"key {good.key_id}: the signature does not verify"]
    notes = result.notes("r/x")
    assert notes[0] == f"the registry has 1 valid signature(s) for it, by key id(s) " \
                       f"{good.key_id}"
    assert FetchedSignatures(IMAGE.digest).notes("r/x") == [
        f"the registry has no signatures for it (no tag r/x:{signature_tag(IMAGE.digest)})"]


@pytest.mark.parametrize("text, named", [
    ("127.0.0.1:5000/app:1", True), ("localhost/app", True), ("example.org/a/b", True),
    ("docker.io/library/busybox", True), ("busybox", False), ("user/app:1", False),
    ("app@sha256:" + "a" * 64, False),
])
def test_names_registry(text: str, named: bool) -> None:
    assert names_registry(text) is named


def test_insecure_registries_from_the_flag_and_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSECURE_ENV, raising=False)
    assert insecure_registries(["a:5000"]) == ["a:5000"]
    monkeypatch.setenv(INSECURE_ENV, "b.example:443, c.example")
    assert insecure_registries(["a:5000"]) == ["a:5000", "b.example:443", "c.example"]


def test_the_oci_template_takes_a_reference_and_asks_the_store_for_it() -> None:
    from hutch.engine import templates
    o = templates.parse_options("oci", ["--url", "docker://r.example/app:1"])
    assert o == {"url": "docker://r.example/app:1", "pull": "missing", "init": "/sbin/init",
                 "stop_signal": "SIGPWR"}
    with pytest.raises(InvalidArgument, match="required: --url"):
        templates.parse_options("oci", [])

    class Images:
        asked: list[tuple[str, str]] = []

        def ensure(self, ref: str, pull: str) -> str:
            self.asked.append((ref, pull))
            return "r.example/app:1"

    images = Images()
    t = templates.get("oci")
    assert templates.image_for(t, {**o, "pull": "always"}, images) == "r.example/app:1"
    assert images.asked == [("r.example/app:1", "always")]
    with pytest.raises(InvalidArgument, match="hutch image import"):
        templates.image_for(t, {**o, "url": "oci-archive:/x.tar"}, images)
    assert len(images.asked) == 1
