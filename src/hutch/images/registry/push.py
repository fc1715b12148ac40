"""Push an image from the content store to a registry.

Blobs first (each config and layer that the registry does not have: a HEAD
tells; small ones in one PUT, large ones in chunks), then the manifests by
digest, then what the name points at (a manifest, or an index after its
manifests) by tag. The registry checks that everything a manifest names is
there, so this order is the one that works. Last, the image's signatures (when
given) as an artifact tagged ``sha256-<hex>.sig`` beside it (registry/signatures.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hutch.common.digest import CHUNK, Digest
from hutch.errors import InvalidArgument, NotFound
from hutch.images.content import ContentStore
from hutch.images.metadata import Image, MetadataStore
from hutch.images.registry.auth import AuthConfig
from hutch.images.registry.client import RegistryClient, client_for
from hutch.images.registry.progress import NullProgress, Progress
from hutch.images.registry.reference import Reference, parse_reference
from hutch.images.walk import read_index, read_manifest
from hutch.oci.image_spec import (
    MAX_MANIFEST_SIZE,
    NONDISTRIBUTABLE,
    Descriptor,
    is_index,
    is_manifest,
)

if TYPE_CHECKING:
    from hutch.images.signing import Signature

DEFAULT_CHUNK = 8 << 20  # bytes per PATCH of a chunked upload
MONOLITHIC_MAX = 16 << 20  # blobs up to this size go in one PUT
DEFAULT_WORKERS = 3


@dataclass
class PushResult:
    reference: Reference
    digest: Digest  # of what the tag now points at
    uploaded: list[Digest] = field(default_factory=list)
    existing: list[Digest] = field(default_factory=list)  # the registry had them already
    manifests: list[Digest] = field(default_factory=list)
    signatures: int = 0  # how many signatures the registry holds for it now (0: none sent)


def find_image(meta: MetadataStore, source: str) -> Image:
    """The stored image named ``source``, as typed or normalized (``busybox`` finds
    ``docker.io/library/busybox:latest``)."""
    try:
        return meta.get(source)
    except NotFound:
        pass
    try:
        full = str(parse_reference(source))
    except InvalidArgument:
        full = None
    if full is not None and full != source:
        try:
            return meta.get(full)
        except NotFound:
            pass
    raise NotFound(f"no image named {source} in the store (see `hutch image ls`)")


def push(source: str, content: ContentStore, meta: MetadataStore,
         destination: str | Reference | None = None, *,
         insecure_registries: Iterable[str] = (), auth: AuthConfig | None = None,
         progress: Progress | None = None, chunk_size: int = DEFAULT_CHUNK,
         monolithic_max: int = MONOLITHIC_MAX, workers: int = DEFAULT_WORKERS,
         client: RegistryClient | None = None,
         signatures: Sequence[Signature] = ()) -> PushResult:
    """Push the stored image ``source`` to ``destination`` (default: its own name).

    A destination without tag takes the source's tag (or ``latest``); one with
    a digest must be the digest of the source's manifest or index. ``signatures``
    (of that digest) go beside it, merged with those the registry has.
    """
    if chunk_size < 1 or monolithic_max < 0:
        raise InvalidArgument("chunk size must be positive and the monolithic limit not "
                              "negative")
    image = find_image(meta, source)
    if isinstance(destination, Reference):
        dest = destination
    else:
        dest = parse_reference(destination or image.name, default_tag=None)
        if dest.tag is None and dest.digest is None:
            try:
                own_tag = parse_reference(image.name).tag
            except InvalidArgument:
                own_tag = None
            dest = Reference(dest.registry, dest.repository, own_tag or "latest")
    if dest.digest is not None and dest.digest != image.target.digest:
        raise InvalidArgument(f"cannot push {image.name} to {dest}: its digest is "
                              f"{image.target.digest}")
    plan = _plan(content, image)
    progress = progress or NullProgress()
    if client is None:
        with client_for(dest, insecure_registries=insecure_registries, auth=auth) as own:
            return _push(own, dest, content, image, plan, progress, chunk_size,
                         monolithic_max, workers, signatures)
    return _push(client, dest, content, image, plan, progress, chunk_size, monolithic_max,
                 workers, signatures)


@dataclass
class _Plan:
    blobs: list[Descriptor]  # configs and layers, each once
    manifests: list[Descriptor]  # an index's manifests (pushed by digest), in order


def _plan(content: ContentStore, image: Image) -> _Plan:
    top = image.target
    if not content.exists(top.digest):
        raise NotFound(f"image {image.name}: its {top.media_type} {top.digest} is not in the "
                       "content store")
    manifests: list[Descriptor] = []
    if is_index(top.media_type):
        index = read_index(content, top)
        for child in index.manifests:
            if not (is_manifest(child.media_type) or is_index(child.media_type)):
                continue
            if not content.exists(child.digest):
                what = f" for {child.platform}" if child.platform else ""
                raise NotFound(f"cannot push {image.name}: its index names a manifest{what} "
                               f"({child.digest}) that is not in the store (only some "
                               "platforms were pulled); pull all of them first")
            if is_index(child.media_type):
                raise InvalidArgument(f"cannot push {image.name}: nested indexes are not "
                                      "supported")
            manifests.append(child)
        leaves = manifests
    elif is_manifest(top.media_type):
        leaves = [top]
    else:
        raise InvalidArgument(f"image {image.name} points at {top.media_type!r}, neither a "
                              "manifest nor an index")
    blobs: dict[Digest, Descriptor] = {}
    for leaf in leaves:
        manifest = read_manifest(content, leaf)
        for desc in (manifest.config, *manifest.layers):
            if desc.media_type in NONDISTRIBUTABLE:
                continue
            if not content.exists(desc.digest):
                raise NotFound(f"cannot push {image.name}: blob {desc.digest} "
                               f"({desc.media_type}) is not in the content store")
            size = content.info(desc.digest).size
            if size != desc.size:
                raise InvalidArgument(f"cannot push {image.name}: blob {desc.digest} has "
                                      f"{size} bytes in the store, the manifest says "
                                      f"{desc.size}")
            blobs.setdefault(desc.digest, desc)
    return _Plan(list(blobs.values()), manifests)


def _push(client: RegistryClient, dest: Reference, content: ContentStore, image: Image,
          plan: _Plan, progress: Progress, chunk_size: int, monolithic_max: int,
          workers: int, signatures: Sequence[Signature] = ()) -> PushResult:
    repo = dest.repository
    result = PushResult(dest, image.target.digest)

    def one(desc: Descriptor) -> bool:
        key = str(desc.digest)
        progress.add(key, f"blob {desc.digest.short()}", desc.size)
        if client.blob_size(repo, desc.digest, push=True) == desc.size:
            progress.finish(key, "already there")
            return False
        chunked = desc.size > monolithic_max
        client.upload_blob(repo, desc.digest, desc.size,
                           _chunks(content, desc.digest, chunk_size if chunked else desc.size,
                                   progress, key), chunked=chunked)
        progress.finish(key, "pushed")
        return True

    if plan.blobs:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(plan.blobs))),
                                thread_name_prefix="hutch-push") as pool:
            outcomes = list(pool.map(one, plan.blobs))
        for desc, uploaded in zip(plan.blobs, outcomes):
            (result.uploaded if uploaded else result.existing).append(desc.digest)
    for child in plan.manifests:
        data = content.read(child.digest, MAX_MANIFEST_SIZE)
        client.put_manifest(repo, child.digest, data, child.media_type)
        result.manifests.append(child.digest)
    data = content.read(image.target.digest, MAX_MANIFEST_SIZE)
    client.put_manifest(repo, dest.tag or image.target.digest, data, image.target.media_type)
    result.manifests.append(image.target.digest)
    if signatures:
        from hutch.images.registry import signatures as remote
        result.signatures = remote.push(client, repo, image.target, signatures)
    return result


def _chunks(content: ContentStore, digest: Digest, size: int, progress: Progress,
            key: str) -> Iterator[bytes]:
    """The blob in pieces of ``size`` bytes (read in CHUNK steps)."""
    with content.open(digest) as f:
        while True:
            parts = []
            left = max(size, 1)
            while left > 0 and (part := f.read(min(CHUNK, left))):
                parts.append(part)
                left -= len(part)
            if not parts:
                return
            piece = b"".join(parts)
            progress.advance(key, len(piece))
            yield piece
