"""The registry client against a real registry: Debian's docker-registry on 127.0.0.1.

One plain registry and one wanting bearer tokens (from a token server of the
test's own, whose certificate the registry trusts) run for the session. skopeo
is the peer: it pulls what hutch pushed, and pushes what hutch then pulls. A
recording proxy in front of the registry counts requests and breaks or
corrupts chosen responses (resume, digest checks). Images are made by the
tests from files; nothing comes from the internet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "images"))

from layertools import TarBuilder, add_image, add_index  # noqa: E402

from hutch.cli.image_registry import image_store_paths, pull_main, push_main  # noqa: E402
from hutch.common.digest import Digest, DigestMismatch  # noqa: E402
from hutch.errors import InvalidArgument, NotFound  # noqa: E402
from hutch.images.content import ContentStore  # noqa: E402
from hutch.images.metadata import MetadataStore  # noqa: E402
from hutch.images.registry.auth import AuthConfig, Credential  # noqa: E402
from hutch.images.registry.client import RegistryClient  # noqa: E402
from hutch.images.registry.errors import AuthError, InterruptedTransfer  # noqa: E402
from hutch.images.registry.pull import pull  # noqa: E402
from hutch.images.registry.push import push  # noqa: E402
from hutch.images.unpack import unpack_image  # noqa: E402
from hutch.images.walk import resolve  # noqa: E402
from hutch.oci.image_spec import OCI_INDEX, Platform  # noqa: E402
from hutch.storage import drivers  # noqa: E402
from hutch.storage.mount import mounted  # noqa: E402
from hutch.testing.registry import (  # noqa: E402
    Fault,
    LocalRegistry,
    RecordingProxy,
    TokenServer,
)

pytestmark = pytest.mark.slow

USERS = {"alice": "wonderland"}


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(str(tmp_path_factory.mktemp("registry"))) as reg:
        yield reg


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[LocalRegistry, TokenServer]]:
    work = str(tmp_path_factory.mktemp("token-registry"))
    with TokenServer(work, USERS) as tokens, LocalRegistry(work, token=tokens.auth()) as reg:
        yield reg, tokens


@pytest.fixture
def proxy(registry: LocalRegistry) -> Iterator[RecordingProxy]:
    with RecordingProxy(registry.host) as p:
        yield p


class Store:
    """A content store and image names in a directory (one hutch instance's images)."""

    def __init__(self, root: Path) -> None:
        content, names = image_store_paths(str(root))
        self.root = str(root)
        self.content = ContentStore(content)
        self.meta = MetadataStore(names)

    def close(self) -> None:
        self.meta.close()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[list[Store]]:
    """Two independent stores: one to push from, one to pull into."""
    made = [Store(tmp_path / "a"), Store(tmp_path / "b")]
    yield made
    for s in made:
        s.close()


def random_layers(sizes: list[int]) -> list[TarBuilder]:
    return [TarBuilder().dir("data").file(f"data/blob{i}", os.urandom(n))
            .file(f"layer{i}", f"layer {i}\n".encode()) for i, n in enumerate(sizes)]


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, f"skopeo {' '.join(args)}: {out.stderr}"
    return out


def blob_gets(proxy: RecordingProxy, digest: Digest) -> list:
    return proxy.gets(f"/blobs/{digest}")


# --- push with hutch, pull with skopeo -------------------------------------------------------

def test_hutch_pushes_and_skopeo_pulls(registry: LocalRegistry, stores: list[Store],
                                       tmp_path: Path) -> None:
    src = stores[0]
    target = add_image(src.content, random_layers([300_000, 40_000, 10]))
    src.meta.put("example/app:1", target)
    # Small chunks and a low monolithic limit: the big layer goes up in PATCHes.
    result = push("example/app:1", src.content, src.meta, f"{registry.host}/app/one:v1",
                  chunk_size=64 << 10, monolithic_max=100_000)
    assert result.digest == target.digest
    assert len(result.uploaded) == 4 and result.existing == []  # 3 layers + config

    oci = tmp_path / "skopeo-oci"
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/app/one:v1",
           f"oci:{oci}:v1")
    index = json.loads((oci / "index.json").read_text())
    assert index["manifests"][0]["digest"] == str(target.digest)
    manifest = json.loads((oci / "blobs/sha256" / target.digest.hex).read_bytes())
    for desc in [manifest["config"], *manifest["layers"]]:
        digest = Digest.parse(desc["digest"])
        assert (oci / "blobs/sha256" / digest.hex).read_bytes() == \
            src.content.read(digest), digest

    # Pushing again sends no blob: every HEAD finds it.
    again = push("example/app:1", src.content, src.meta, f"{registry.host}/app/one:v2")
    assert again.uploaded == [] and len(again.existing) == 4


# --- push with skopeo, pull with hutch (the CLI) and unpack ----------------------------------

def write_oci_layout(path: Path, layers: list[TarBuilder], tag: str) -> Digest:
    """An OCI image layout made by hand (not by hutch), for skopeo to push."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layer_descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    **put(b.layer("gzip"))} for b in layers]
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [str(b.diff_id()) for b in layers]},
              "config": {"Cmd": ["/bin/sh"]}}
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **put(json.dumps(config).encode())}
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": config_desc, "layers": layer_descs}).encode()
    mdesc = put(manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **mdesc,
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return Digest.parse(mdesc["digest"])


def test_skopeo_pushes_and_hutch_pulls_and_unpacks(registry: LocalRegistry, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = TarBuilder().dir("etc").file("etc/os-release", b"ID=made-by-test\n") \
        .dir("bin").file("bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
    app = TarBuilder().dir("app").file("app/data", os.urandom(50_000)).whiteout("bin/tool")
    layout = tmp_path / "layout"
    digest = write_oci_layout(layout, [base, app], "1.0")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:1.0",
           f"docker://{registry.host}/made/by-skopeo:1.0")

    root = tmp_path / "hutch-root"
    assert pull_main(["--quiet", f"{registry.host}/made/by-skopeo:1.0"], str(root)) == 0
    name = f"{registry.host}/made/by-skopeo:1.0"
    assert capsys.readouterr().out.strip() == name
    store = Store(root)
    try:
        image = store.meta.get(name)
        assert image.target.digest == digest
        resolved = resolve(store.content, image.target)
        snapshotter = drivers.load("copy", str(tmp_path / "storage"))
        try:
            unpacked = unpack_image(store.content, snapshotter, resolved)
            assert unpacked.applied == 2
            view = tmp_path / "view"
            view.mkdir()
            with mounted(snapshotter.view("check", unpacked.top), str(view)):
                assert (view / "etc/os-release").read_bytes() == b"ID=made-by-test\n"
                assert len((view / "app/data").read_bytes()) == 50_000
                assert os.listdir(view / "bin") == []  # the whiteout hid the base's tool
            snapshotter.remove("check")
        finally:
            for info in sorted(snapshotter.walk(), key=lambda i: i.parent is not None,
                               reverse=True):
                snapshotter.remove(info.name)
            snapshotter.close()
    finally:
        store.close()


# --- a multi-platform index ------------------------------------------------------------------

def test_multi_platform_index(registry: LocalRegistry, stores: list[Store],
                              capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = stores
    amd = add_image(src.content, [TarBuilder().file("arch", b"amd64\n")],
                    platform=Platform("linux", "amd64"))
    arm = add_image(src.content, [TarBuilder().file("arch", b"arm64\n")],
                    platform=Platform("linux", "arm64", "v8"))
    index = add_index(src.content, [amd, arm])
    src.meta.put("multi:1", index)
    ref = f"{registry.host}/multi/arch:1"
    assert push_main(["-q", "multi:1", ref], None) != 0  # another root: no such image
    assert "no image named multi:1" in capsys.readouterr().err
    push("multi:1", src.content, src.meta, ref)

    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)
    assert raw["mediaType"] == OCI_INDEX and len(raw["manifests"]) == 2

    default = pull(ref, dst.content, dst.meta)
    assert default.target.digest == index.digest
    assert default.image.manifest_descriptor.digest == amd.digest
    assert default.image.config.platform == Platform("linux", "amd64")
    arm_layer = resolve(src.content, arm).layers[0].digest
    assert not dst.content.exists(arm_layer)  # the other platform was not fetched

    assert pull_main(["--platform", "linux/arm64", "-q", ref], dst.root) == 0
    other = resolve(dst.content, dst.meta.get(ref).target, Platform.parse("linux/arm64"))
    assert other.manifest_descriptor.digest == arm.digest
    assert dst.content.exists(arm_layer)

    with pytest.raises(NotFound, match=r"no manifest for linux/s390x.*linux/amd64, "
                                       r"linux/arm64"):
        pull(ref, dst.content, dst.meta, platform="linux/s390x")
    # One platform's manifest by digest, with another platform asked: refused.
    with pytest.raises(InvalidArgument, match="is an image for linux/amd64, not linux/arm64"):
        pull(f"{registry.host}/multi/arch@{amd.digest}", dst.content, dst.meta,
             platform="linux/arm64")


# --- resume ----------------------------------------------------------------------------------

def test_interrupted_pull_resumes_without_fetching_finished_blobs(
        registry: LocalRegistry, proxy: RecordingProxy, stores: list[Store]) -> None:
    src, dst = stores
    target = add_image(src.content, random_layers([400_000, 200_000, 100_000]))
    src.meta.put("resume:1", target)
    push("resume:1", src.content, src.meta, f"{registry.host}/resume/me:1")
    layers = resolve(src.content, target).layers
    big = layers[0].digest
    proxy.faults.append(Fault(f"/blobs/{big}", cut_after=150_000))

    ref = f"{proxy.host}/resume/me:1"
    with pytest.raises(InterruptedTransfer, match="interrupted after .*pull again to resume"):
        pull(ref, dst.content, dst.meta, retries=0)
    with pytest.raises(NotFound):
        dst.meta.get(ref)  # no name for half an image
    [partial] = dst.content.ingests()
    assert 0 < partial.offset < layers[0].size
    finished = [d.digest for d in layers[1:]]
    assert all(dst.content.exists(d) for d in finished)

    proxy.clear()
    result = pull(ref, dst.content, dst.meta)
    assert result.image.manifest_descriptor.digest == target.digest
    for d in finished:
        assert blob_gets(proxy, d) == [], f"{d} was fetched again"
    [again] = blob_gets(proxy, big)
    assert again.range == f"bytes={partial.offset}-" and again.status == 206
    [fetch] = [b for b in result.blobs if b.digest == big]
    assert fetch.resumed_from == partial.offset
    assert fetch.downloaded == layers[0].size - partial.offset
    assert dst.content.ingests() == []
    assert dst.content.read(big) == src.content.read(big)


def test_a_broken_download_is_resumed_within_the_pull(
        registry: LocalRegistry, proxy: RecordingProxy, stores: list[Store]) -> None:
    src, dst = stores
    target = add_image(src.content, random_layers([300_000]))
    src.meta.put("retry:1", target)
    push("retry:1", src.content, src.meta, f"{registry.host}/retry/me:1")
    layer = resolve(src.content, target).layers[0]
    proxy.faults.append(Fault(f"/blobs/{layer.digest}", cut_after=100_000))

    result = pull(f"{proxy.host}/retry/me:1", dst.content, dst.meta)
    first, second = blob_gets(proxy, layer.digest)
    assert first.range is None and second.range is not None
    start = int(second.range.removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 100_000 and second.status == 206
    [fetch] = [b for b in result.blobs if b.digest == layer.digest]
    assert fetch.attempts == 2 and fetch.downloaded == layer.size


def test_pull_starts_the_largest_blobs_first_on_kept_alive_connections(
        registry: LocalRegistry, proxy: RecordingProxy, stores: list[Store]) -> None:
    src, dst = stores
    target = add_image(src.content, random_layers([20_000, 300_000, 100_000]))
    src.meta.put("order:1", target)
    push("order:1", src.content, src.meta, f"{registry.host}/order/me:1")
    image = resolve(src.content, target)
    blobs = [image.manifest.config, *image.layers]

    result = pull(f"{proxy.host}/order/me:1", dst.content, dst.meta, workers=1)
    gets = [h.path.rsplit("/", 1)[1] for h in proxy.hits if "/blobs/" in h.path]
    assert gets == [str(d.digest) for d in sorted(blobs, key=lambda d: d.size, reverse=True)]
    assert len({h.client_port for h in proxy.hits}) == 1  # one connection, kept alive
    # The result lists the blobs as the manifest does, each verified into the store.
    assert [b.digest for b in result.blobs] == [d.digest for d in blobs]
    for d in blobs:
        assert dst.content.read(d.digest) == src.content.read(d.digest)


# --- digests ---------------------------------------------------------------------------------

def test_wrong_digests_are_refused(registry: LocalRegistry, proxy: RecordingProxy,
                                   stores: list[Store]) -> None:
    src, dst = stores
    target = add_image(src.content, random_layers([50_000, 20_000]))
    src.meta.put("digests:1", target)
    push("digests:1", src.content, src.meta, f"{registry.host}/digest/check:1")
    layer = resolve(src.content, target).layers[1].digest
    ref = f"{proxy.host}/digest/check:1"

    proxy.faults.append(Fault(f"/blobs/{layer}", corrupt=True))
    with pytest.raises(DigestMismatch, match=f"expected {layer}"):
        pull(ref, dst.content, dst.meta)
    assert not dst.content.exists(layer)
    assert dst.content.ingests() == []  # the bad bytes are gone, not kept for a resume
    with pytest.raises(NotFound):
        dst.meta.get(ref)

    # A manifest asked for by digest, or by tag with the registry's digest header.
    proxy.faults.append(Fault(f"/manifests/{target.digest}", corrupt=True))
    with pytest.raises(DigestMismatch, match=f"expected {target.digest}"):
        pull(f"{proxy.host}/digest/check@{target.digest}", dst.content, dst.meta)
    proxy.faults.append(Fault("/manifests/1", corrupt=True))
    with pytest.raises(DigestMismatch, match=f"expected {target.digest}"):
        pull(ref, dst.content, dst.meta)
    with pytest.raises(NotFound):
        dst.meta.get(ref)

    # Untouched, the same pull works (the good layer of before is not fetched again).
    proxy.clear()
    pull(ref, dst.content, dst.meta)
    assert len(blob_gets(proxy, layer)) == 1


# --- bearer tokens ---------------------------------------------------------------------------

def _auth_file(path: Path, registry: str, user: str, password: str) -> str:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry: {"auth": encoded}}}))
    return str(path)


def test_bearer_token_auth(token_registry: tuple[LocalRegistry, TokenServer],
                           stores: list[Store], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    reg, tokens = token_registry
    src, dst = stores
    target = add_image(src.content, random_layers([30_000, 20_000, 10_000]))
    src.meta.put("secret:1", target)
    ref = f"{reg.host}/private/app:1"

    # No credentials, then wrong ones: clear errors, nothing stored.
    monkeypatch.setenv("HUTCH_AUTH_FILE", str(tmp_path / "none.json"))
    assert push_main(["-q", "secret:1", ref], src.root) == 1
    assert f"no credentials for {reg.host}" in capsys.readouterr().err
    bad = _auth_file(tmp_path / "bad.json", reg.host, "alice", "looking-glass")
    assert push_main(["-q", "--auth-file", bad, "secret:1", ref], src.root) == 1
    err = capsys.readouterr().err
    assert "refused the credentials of 'alice'" in err and bad in err

    good = _auth_file(tmp_path / "good.json", reg.host, "alice", USERS["alice"])
    monkeypatch.setenv("HUTCH_AUTH_FILE", good)
    assert push_main(["-q", "secret:1", ref], src.root) == 0
    assert capsys.readouterr().out.strip() == str(target.digest)

    before = len(tokens.requests)
    auth = AuthConfig.load(good)
    with RegistryClient(reg.host, auth=auth) as client:
        result = pull(ref, dst.content, dst.meta, client=client)
        assert client.auth.token_requests == 1  # one token for the scope, cached for all
    assert result.image.manifest_descriptor.digest == target.digest
    asked = tokens.requests[before:]
    assert [r["scope"] for r in asked] == [["repository:private/app:pull"]]
    assert asked[0]["user"] == "alice" and asked[0]["ok"]

    with pytest.raises(AuthError, match="refused the credentials of 'alice'"):
        pull(ref, dst.content, dst.meta,
             auth=AuthConfig({reg.host: Credential("alice", "wrong")}, "test"))
    skopeo("inspect", "--tls-verify=false", "--creds", f"alice:{USERS['alice']}",
           f"docker://{ref}")  # the peer agrees the image is there
