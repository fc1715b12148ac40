"""Signed images across a real registry, the trust policy at pull, and `hutch run` pulling.

Debian's docker-registry runs on 127.0.0.1 for the module. One hutch instance
(``--root``) publishes: it builds images, signs them and pushes them with their
signatures (the artifact tagged ``sha256-<hex>.sig``). Fresh instances pull
them under a trust policy, or run them and let ``hutch run`` pull. Each
instance has its own network namespace playing the host (HUTCH_HOST_NETNS), so
the containers' bridge never touches the machine's network; the registry is
reached from the test's own namespace on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hutch.common.digest import Digest
from hutch.images import signing
from hutch.images.content import ContentStore
from hutch.images.metadata import MetadataStore
from hutch.images.policy import PolicyDenied, verifier
from hutch.images.registry.client import RegistryClient
from hutch.images.registry.pull import pull
from hutch.images.registry.push import push
from hutch.images.registry.signatures import SIGNATURE_TYPE, build_artifact, signature_tag
from hutch.images.signing import SignatureStore
from hutch.images.templates import build_busybox_rootfs
from hutch.oci.image_spec import OCI_MANIFEST
from hutch.testing.hostnet import SimulatedHost
from hutch.testing.registry import LocalRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "images"))

from layertools import TarBuilder, add_image  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.nft]

HUTCH = os.path.join(os.path.dirname(sys.executable), "hutch")


class Hutch:
    """``hutch --root ROOT`` with its own namespace playing the host's network."""

    def __init__(self, prefix: str) -> None:
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.hostnet = SimulatedHost()

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([HUTCH, "--root", self.root, *args], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env=self.hostnet.env())
        if check and r.returncode != 0:
            raise AssertionError(f"hutch {' '.join(args)} -> {r.returncode}\n{r.stderr}")
        return r

    def names(self) -> set[str]:
        return {r["name"] for r in json.loads(self("image", "ls", "--format", "json").stdout)}

    def policy(self, obj: dict) -> None:
        Path(self.root, "policy.json").write_text(json.dumps(obj))

    def close(self) -> None:
        left: list[str] = []
        try:
            ids = self("ps", "-a", "-q", check=False).stdout.split()
            for cid in ids:
                self("rm", "-f", cid, check=False)
            left = self("ps", "-a", "-q", check=False).stdout.split()
        finally:
            self.hostnet.close()
            mounts = [line for line in open("/proc/self/mountinfo") if self.root in line]
            for line in mounts:
                subprocess.run(["umount", "-l", line.split()[4]], check=False)
            shutil.rmtree(self.root, ignore_errors=True)
        assert not left, f"containers left: {left}"
        assert not mounts, f"mounts left: {mounts}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(str(tmp_path_factory.mktemp("trust-registry"))) as reg:
        yield reg


class Publisher:
    """The instance that makes, signs and pushes the images; its keys."""

    def __init__(self, h: Hutch, registry: LocalRegistry, keys: Path) -> None:
        self.h = h
        self.registry = registry
        self.key, self.pub = str(keys / "trusted.pem"), str(keys / "trusted.pem.pub")
        self.other_pub = str(keys / "other.pem.pub")
        h("image", "keygen", "--out", self.key)
        h("image", "keygen", "--out", str(keys / "other.pem"))
        self.key_id = signing.key_id(signing.public_key_bytes(self.pub))
        self.other_id = signing.key_id(signing.public_key_bytes(self.other_pub))
        self.work = keys

    def ref(self, name: str) -> str:
        return f"{self.registry.host}/{name}"

    def image(self, name: str, marker: str) -> str:
        """A busybox root with /marker, imported as ``<registry>/name``; its digest."""
        rootfs = Path(tempfile.mkdtemp(dir=self.work)) / "rootfs"
        build_busybox_rootfs(str(rootfs))
        (rootfs / "marker").write_text(marker + "\n")
        self.h("image", "import", "--name", self.ref(name), "--cmd", "cat /marker",
               str(rootfs))
        return self.digest(name)

    def digest(self, name: str) -> str:
        return json.loads(self.h("image", "inspect", self.ref(name)).stdout)[0]["Digest"]


@pytest.fixture(scope="module")
def publisher(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Publisher]:
    h = Hutch("hutch-e2e-pub-")
    try:
        p = Publisher(h, registry, tmp_path_factory.mktemp("keys"))
        p.image("trust/signed:1", "signed")
        h("image", "sign", "--key", p.key, p.ref("trust/signed:1"))
        out = h("image", "push", p.ref("trust/signed:1")).stdout
        assert "1 signature(s) beside it" in out, out
        p.image("trust/unsigned:1", "unsigned")
        h("image", "push", p.ref("trust/unsigned:1"))
        yield p
    finally:
        h.close()


@pytest.fixture
def puller() -> Iterator[Hutch]:
    h = Hutch("hutch-e2e-pull-")
    yield h
    h.close()


# --- signatures travel with the image ------------------------------------------------------

def test_the_signatures_are_an_artifact_tagged_after_the_digest(publisher: Publisher) -> None:
    digest = Digest.parse(publisher.digest("trust/signed:1"))
    with RegistryClient(publisher.registry.host) as client:
        assert signature_tag(digest) in client.tags("trust/signed")
        assert not any(t.endswith(".sig") for t in client.tags("trust/unsigned"))
        art = client.get_manifest("trust/signed", signature_tag(digest))
    manifest = json.loads(art.data)
    assert art.media_type == OCI_MANIFEST
    assert manifest["artifactType"] == SIGNATURE_TYPE
    assert manifest["subject"]["digest"] == str(digest)
    assert [layer["mediaType"] for layer in manifest["layers"]] == [SIGNATURE_TYPE]


def test_a_signed_image_is_pulled_with_its_signature_when_the_policy_trusts_the_key(
        publisher: Publisher, puller: Hutch) -> None:
    puller.policy({"default": "reject",
                   "registries": {publisher.registry.host: {"keys": [publisher.pub]}}})
    ref = publisher.ref("trust/signed:1")
    r = puller("image", "pull", ref)
    assert f"by key id(s) {publisher.key_id}" in r.stderr
    assert ref in puller.names()
    info = json.loads(puller("image", "inspect", ref).stdout)[0]
    assert info["Digest"] == publisher.digest("trust/signed:1")
    assert [s["key_id"] for s in info["Signatures"]] == [publisher.key_id]
    assert "accepted by the policy" in puller("image", "verify", ref).stdout
    # the policy holds at run as well, with the signature kept locally
    assert puller("run", "--rm", ref).stdout == "signed\n"


def test_a_policy_requiring_another_key_refuses_the_pull_and_names_nothing(
        publisher: Publisher, puller: Hutch) -> None:
    puller.policy({"registries": {f"{publisher.registry.host}/trust":
                                  {"keys": [publisher.other_pub]}}})
    ref = publisher.ref("trust/signed:1")
    r = puller("image", "pull", ref, check=False)
    assert r.returncode != 0
    assert f"required: key id(s) {publisher.other_id}" in r.stderr, r.stderr
    assert f"found: key id(s) {publisher.key_id}" in r.stderr
    assert ref not in puller.names()
    # `hutch run` pulls through the same check, and makes no container
    r = puller("run", "--rm", ref, check=False)
    assert r.returncode == 125 and "none is a valid one by a key" in r.stderr, r.stderr
    assert ref not in puller.names()
    assert puller("ps", "-a", "-q").stdout == ""


def test_an_unsigned_image_is_refused_when_the_policy_requires_a_signature(
        publisher: Publisher, puller: Hutch) -> None:
    puller.policy({"default": {"keys": [publisher.pub]}})
    ref = publisher.ref("trust/unsigned:1")
    r = puller("image", "pull", ref, check=False)
    assert r.returncode != 0 and "is not signed" in r.stderr, r.stderr
    assert f"key id(s) {publisher.key_id}" in r.stderr
    assert "the registry has no signatures for it" in r.stderr
    assert puller.names() == set()
    # without a policy the same image is fine
    os.unlink(os.path.join(puller.root, "policy.json"))
    puller("image", "pull", "-q", ref)
    assert ref in puller.names()


def test_sign_push_puts_a_signature_beside_an_image_pushed_before(publisher: Publisher,
                                                                 puller: Hutch) -> None:
    ref = publisher.ref("trust/later:1")
    publisher.image("trust/later:1", "later")
    publisher.h("image", "push", ref)
    puller.policy({"default": {"keys": [publisher.pub]}})
    assert "is not signed" in puller("image", "pull", ref, check=False).stderr
    out = publisher.h("image", "sign", "--key", publisher.key, "--push", ref).stdout
    assert f"{ref}: the registry holds 1 signature(s) for it" in out
    puller("image", "pull", ref)
    assert ref in puller.names()


# --- hutch run pulls what the store lacks --------------------------------------------------

def test_run_pulls_a_missing_image_and_pull_never_does_not(publisher: Publisher,
                                                           puller: Hutch) -> None:
    ref = publisher.ref("trust/unsigned:1")
    r = puller("run", "--rm", "--pull", "never", ref, check=False)
    assert r.returncode == 125 and f"no such image: {ref}" in r.stderr
    assert "--pull never" in r.stderr and f"hutch image pull {ref}" in r.stderr
    assert puller.names() == set()
    r = puller("run", "--rm", ref, "sh", "-c", "echo pulled; cat /marker")
    assert r.stdout == "pulled\nunsigned\n" and r.stderr == "", r.stderr  # quiet: no tty
    assert ref in puller.names()
    # a registry that is not there: the error names the image and what to do
    gone = "127.0.0.1:1/nothing/here:1"
    r = puller("run", "--rm", gone, "true", check=False)
    assert r.returncode == 125 and "cannot reach 127.0.0.1:1" in r.stderr, r.stderr
    assert f"image {gone} could not be pulled" in r.stderr
    # a name without a registry host is looked up in the store only
    r = puller("run", "--rm", "nothing-here", "true", check=False)
    assert r.returncode == 125 and "no such image" in r.stderr
    assert "docker.io/library/nothing-here:latest" in r.stderr


def test_pull_always_fetches_a_newer_image_under_the_same_tag(publisher: Publisher,
                                                              puller: Hutch) -> None:
    ref = publisher.ref("trust/moving:1")
    first = publisher.image("trust/moving:1", "one")
    publisher.h("image", "push", ref)
    assert puller("run", "--rm", ref).stdout == "one\n"
    second = publisher.image("trust/moving:1", "two")
    assert second != first
    publisher.h("image", "push", ref)
    assert puller("run", "--rm", ref).stdout == "one\n"  # missing: the store has it
    assert puller("create", "--pull", "always", ref).returncode == 0
    info = json.loads(puller("image", "inspect", ref).stdout)[0]
    assert info["Digest"] == second
    assert puller("run", "--rm", "--pull", "never", ref).stdout == "two\n"


# --- the library: merging signers, dropping forged signatures ------------------------------

class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.content = ContentStore(str(root / "content"))
        self.meta = MetadataStore(str(root / "images.db"))
        self.signatures = SignatureStore(str(root / "signatures"))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[list[Store]]:
    made = [Store(tmp_path / "a"), Store(tmp_path / "b")]
    yield made
    for s in made:
        s.meta.close()


def test_two_signers_pushing_in_turn_both_keep_their_signature(
        registry: LocalRegistry, publisher: Publisher, stores: list[Store]) -> None:
    src, dst = stores
    target = add_image(src.content, [TarBuilder().file("two-signers", b"x\n")])
    src.meta.put("local/two:1", target)
    ref = f"{registry.host}/trust/two:1"
    a = signing.sign(target.digest, publisher.key)
    assert push("local/two:1", src.content, src.meta, ref, signatures=[a]).signatures == 1
    other_key = publisher.other_pub.removesuffix(".pub")
    b = signing.sign(target.digest, other_key)
    assert push("local/two:1", src.content, src.meta, ref, signatures=[b]).signatures == 2
    result = pull(ref, dst.content, dst.meta, signatures=dst.signatures)
    assert result.signatures is not None and result.signatures.rejected == []
    assert {s.key_id for s in dst.signatures.list(target.digest)} == \
        {publisher.key_id, publisher.other_id}


def test_a_forged_signature_in_the_registry_is_dropped_and_never_stored(
        registry: LocalRegistry, publisher: Publisher, stores: list[Store]) -> None:
    src, dst = stores
    target = add_image(src.content, [TarBuilder().file("forged", b"y\n")])
    src.meta.put("local/forged:1", target)
    ref = f"{registry.host}/trust/forged:1"
    push("local/forged:1", src.content, src.meta, ref)
    # by the trusted key: a signature of another image filed under this one, and one
    # of this image whose bytes were changed
    elsewhere = signing.sign(Digest.from_bytes(b"another image"), publisher.key)
    good = signing.sign(target.digest, publisher.key)
    forged = signing.Signature(target.digest, good.key_id, good.public_key,
                               bytes(64), good.created)
    manifest, _ = build_artifact(target, [forged])
    document = signing.dumps([forged, elsewhere])
    obj = json.loads(manifest)
    obj["layers"][0].update(digest=str(Digest.from_bytes(document)), size=len(document))
    manifest = json.dumps(obj).encode()
    with RegistryClient(registry.host) as client:
        for blob in (b"{}", document):
            client.upload_blob("trust/forged", Digest.from_bytes(blob), len(blob), [blob],
                               chunked=False)
        client.put_manifest("trust/forged", signature_tag(target.digest), manifest,
                            OCI_MANIFEST)
    policy = dst.root / "policy.json"
    policy.write_text(json.dumps({"default": {"keys": [publisher.pub]}}))
    with pytest.raises(PolicyDenied, match="is not signed") as caught:
        pull(ref, dst.content, dst.meta, signatures=dst.signatures,
             verify=verifier(str(policy), str(dst.root / "signatures")))
    notes = "\n".join(caught.value.__notes__)
    assert notes.count("dropped an invalid signature") == 2, notes
    assert "does not verify" in notes and f"signs {elsewhere.manifest}, not" in notes
    assert dst.signatures.list(target.digest) == []
    assert dst.meta.list() == []


# --- the oci template: a registry's image as an OS container -------------------------------

def test_the_oci_template_boots_a_pulled_image_as_an_os_container(publisher: Publisher,
                                                                   puller: Hutch) -> None:
    ref = publisher.ref("trust/signed:1")
    puller.policy({"default": {"keys": [publisher.other_pub]}})
    r = puller("create", "-t", "oci", "-n", "o1", "--", "--url", f"docker://{ref}",
               check=False)
    assert r.returncode == 125 and "none is a valid one by a key" in r.stderr, r.stderr
    puller.policy({"default": {"keys": [publisher.pub]}})
    r = puller("create", "-t", "oci", "-n", "o1", "--", "--url", f"docker://{ref}",
               "--stop-signal", "SIGUSR2", check=False)
    assert r.returncode == 0, r.stderr
    assert ref in puller.names()
    puller("start", "-d", "o1")
    deadline = time.monotonic() + 20
    while "init" not in puller("attach", "o1", "--", "cat", "/proc/1/cmdline",
                               check=False).stdout:
        assert time.monotonic() < deadline, "init did not come up"
        time.sleep(0.1)
    assert puller("attach", "o1", "--", "cat", "/marker").stdout == "signed\n"
    assert puller("attach", "o1", "--", "hostname").stdout.strip() == "o1"
    puller("stop", "-t", "10", "o1")
    state = json.loads(puller("inspect", "o1").stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    puller("destroy", "o1")
    r = puller("create", "-t", "oci", "-n", "o2", "--", "--url", "oci:/some/layout",
               check=False)
    assert r.returncode == 125 and "--url oci:/some/layout" in r.stderr, r.stderr
