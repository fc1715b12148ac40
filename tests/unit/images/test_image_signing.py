"""ed25519 signatures of manifest digests, the signature store, and the trust policy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hutch.common.digest import Digest
from hutch.errors import InvalidArgument, NotFound
from hutch.images import signing
from hutch.images.policy import PolicyDenied, Policy, check

D1 = Digest.from_bytes(b"manifest one")
D2 = Digest.from_bytes(b"manifest two")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("keys")
    a, a_pub = signing.generate_key(str(d / "a.pem"))
    b, b_pub = signing.generate_key(str(d / "b.pem"))
    return {"a": a, "a.pub": a_pub, "b": b, "b.pub": b_pub, "dir": str(d)}


def test_keygen_writes_a_private_key_only_its_owner_reads(keys: dict[str, str]) -> None:
    assert os.stat(keys["a"]).st_mode & 0o777 == 0o600
    assert open(keys["a.pub"]).read().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(InvalidArgument, match="exists already"):
        signing.generate_key(keys["a"])


def test_a_signature_verifies_for_its_digest_and_key_only(keys: dict[str, str]) -> None:
    sig = signing.sign(D1, keys["a"])
    a_pub = signing.public_key_bytes(keys["a.pub"])
    b_pub = signing.public_key_bytes(keys["b.pub"])
    assert signing.verify(sig, D1, a_pub)
    assert not signing.verify(sig, D2, a_pub)
    assert not signing.verify(sig, D1, b_pub)
    forged = signing.Signature(D2, sig.key_id, sig.public_key, sig.signature)
    assert not signing.verify(forged, D2)  # the signature is over D1
    tampered = signing.Signature(D1, sig.key_id, sig.public_key,
                                 bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    assert not signing.verify(tampered, D1, a_pub)


def test_signatures_round_trip_through_files_and_the_store(keys: dict[str, str],
                                                           tmp_path: Path) -> None:
    sig = signing.sign(D1, keys["a"])
    path = tmp_path / "image.sig"
    path.write_bytes(signing.dumps([sig]))
    [back] = signing.read_file(str(path))
    assert back == sig
    store = signing.SignatureStore(str(tmp_path / "sigs"))
    assert store.list(D1) == []
    assert store.add([sig, back, signing.sign(D1, keys["b"])]) == 2
    assert store.add([sig]) == 0
    assert {s.key_id for s in store.list(D1)} == {sig.key_id,
                                                  signing.key_id(signing.public_key_bytes(
                                                      keys["b.pub"]))}
    assert store.digests() == {D1}
    store.remove(D1)
    assert store.list(D1) == []


def test_bad_keys_and_signature_files_are_refused_clearly(keys: dict[str, str],
                                                          tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        signing.sign(D1, str(tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(InvalidArgument, match="not an unencrypted PEM private key"):
        signing.sign(D1, str(tmp_path / "junk.pem"))
    with pytest.raises(InvalidArgument, match="not a PEM public key"):
        signing.public_key_bytes(str(tmp_path / "junk.pem"))
    (tmp_path / "bad.sig").write_text(json.dumps([{"schema": "other"}]))
    with pytest.raises(InvalidArgument, match="not a hutch signature"):
        signing.read_file(str(tmp_path / "bad.sig"))


def _policy(tmp_path: Path, keys: dict[str, str], obj: dict) -> str:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(obj))
    return str(path)


def test_the_policy_picks_the_longest_matching_scope(keys: dict[str, str],
                                                     tmp_path: Path) -> None:
    path = _policy(tmp_path, keys, {
        "default": "reject",
        "registries": {"example.org": {"keys": [keys["a.pub"]]},
                       "example.org/open": "insecureAcceptAnything",
                       "docker.io/library": "insecureAcceptAnything"}})
    p = Policy.load(path)
    assert p.requirement("busybox").kind == "insecureAcceptAnything"
    assert p.requirement("example.org/app:1").kind == "signedBy"
    assert p.requirement("example.org/open/app").kind == "insecureAcceptAnything"
    assert p.requirement("example.org/opener/app").kind == "signedBy"  # whole components
    assert p.requirement("quay.io/x/y").kind == "reject"


def test_policy_check_accepts_signed_and_refuses_the_rest(keys: dict[str, str],
                                                          tmp_path: Path) -> None:
    path = _policy(tmp_path, keys, {"registries": {
        "example.org": {"keys": [keys["a.pub"]]}, "evil.example": "reject"}})
    good = signing.sign(D1, keys["a"])
    other_key = signing.sign(D1, keys["b"])
    assert check("example.org/app:1", D1, [other_key, good], path).kind == "signedBy"
    with pytest.raises(PolicyDenied, match="is not signed"):
        check("example.org/app:1", D1, [], path)
    with pytest.raises(PolicyDenied, match="none is a valid one by a key"):
        check("example.org/app:1", D1, [other_key], path)
    with pytest.raises(PolicyDenied, match="none is a valid one"):
        check("example.org/app:1", D2, [good], path)  # signed, but another manifest
    with pytest.raises(PolicyDenied, match="rejects every image"):
        check("evil.example/app", D1, [good], path)
    assert check("docker.io/library/busybox", D1, [], path).kind == "insecureAcceptAnything"
    assert check("anything", D1, [], None).kind == "insecureAcceptAnything"  # no policy


def test_policy_keys_may_be_relative_to_the_policy_or_inline(keys: dict[str, str]) -> None:
    inline = open(keys["b.pub"]).read()
    path = os.path.join(keys["dir"], "policy.json")
    with open(path, "w") as f:
        json.dump({"registries": {"example.org": {"keys": ["a.pem.pub", inline]}}}, f)
    req = Policy.load(path).requirement("example.org/x")
    assert len(req.keys) == 2
    os.unlink(path)


@pytest.mark.parametrize("bad, message", [
    ({"default": "maybe"}, "is not a requirement"),
    ({"registries": {"example.org": {"keys": []}}}, "expected"),
    ({"registries": {"/example.org/": "reject"}}, "registry or registry/repository"),
    ({"trust": {}}, "unknown fields trust"),
    ([], "must be a JSON object"),
])
def test_a_malformed_policy_is_refused(bad: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Policy.parse(bad, "policy.json")
