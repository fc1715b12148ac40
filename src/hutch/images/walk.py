"""The descriptor graph of an image: index -> manifests -> config + layers.

``children`` reads one node from the content store and lists what it points
to; ``walk`` visits a whole graph once per blob; ``resolve`` goes from a tag's
descriptor (a manifest or an index) to the one manifest for a platform and
its parsed config.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hutch.common.digest import Digest
from hutch.errors import InvalidArgument, NotFound
from hutch.images.content import ContentStore
from hutch.oci.image_spec import (
    DEFAULT_PLATFORM,
    MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    check_manifest_against_config,
    is_index,
    is_manifest,
    parse_config,
    parse_index,
    parse_manifest,
)


def read_manifest(content: ContentStore, desc: Descriptor) -> Manifest:
    return parse_manifest(content.read(desc.digest, MAX_MANIFEST_SIZE), desc.media_type)


def read_index(content: ContentStore, desc: Descriptor) -> Index:
    return parse_index(content.read(desc.digest, MAX_MANIFEST_SIZE), desc.media_type)


def read_config(content: ContentStore, desc: Descriptor) -> ImageConfig:
    return parse_config(content.read(desc.digest, MAX_CONFIG_SIZE))


def children(content: ContentStore, desc: Descriptor) -> list[Descriptor]:
    """What ``desc`` points to: an index's manifests, a manifest's config and layers."""
    if is_index(desc.media_type):
        index = read_index(content, desc)
        return list(index.manifests) + ([index.subject] if index.subject else [])
    if is_manifest(desc.media_type):
        manifest = read_manifest(content, desc)
        return [manifest.config, *manifest.layers]
    return []


def walk(content: ContentStore, roots: list[Descriptor], *, missing_ok: bool = False,
         platform: Platform | None = None) -> Iterator[Descriptor]:
    """Every descriptor reachable from ``roots``, each digest once, parents before children.

    ``missing_ok``: a blob that is not in the store is yielded but not descended
    (an index may name platforms that were never pulled). ``platform``: only the
    manifests of an index that match it are followed.
    """
    seen: set[Digest] = set()
    stack = list(reversed(roots))
    while stack:
        desc = stack.pop()
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        yield desc
        if not (is_index(desc.media_type) or is_manifest(desc.media_type)):
            continue
        if not content.exists(desc.digest):
            if missing_ok:
                continue
            raise NotFound(f"blob {desc.digest} ({desc.media_type}) is not in the store")
        kids = children(content, desc)
        if platform is not None and is_index(desc.media_type):
            kids = [k for k in kids if k.platform is None or platform.matches(k.platform)
                    or not is_manifest(k.media_type)]
        stack.extend(reversed(kids))


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """The manifest of one platform of an image, with its config."""

    target: Descriptor  # what the name points to (manifest or index)
    manifest_descriptor: Descriptor
    manifest: Manifest
    config: ImageConfig

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.manifest.layers


def resolve(content: ContentStore, target: Descriptor,
            platform: Platform = DEFAULT_PLATFORM) -> ResolvedImage:
    """From a name's descriptor to the manifest for ``platform`` and its config."""
    desc = target
    for _ in range(8):  # indexes of indexes, bounded
        if is_manifest(desc.media_type):
            manifest = read_manifest(content, desc)
            config = read_config(content, manifest.config)
            check_manifest_against_config(manifest, config)
            if not platform.matches(config.platform) and target is not desc:
                raise InvalidArgument(f"manifest {desc.digest} is for {config.platform}, "
                                      f"not {platform}")
            return ResolvedImage(target, desc, manifest, config)
        if is_index(desc.media_type):
            index = read_index(content, desc)
            chosen = [d for d in index.select(platform) if content.exists(d.digest)]
            if not chosen:
                have = sorted({str(m.platform) for m in index.manifests if m.platform})
                raise NotFound(f"image index {desc.digest} has no manifest for {platform} "
                               f"in the store (it lists: {', '.join(have) or 'none'})")
            desc = chosen[0]
            continue
        raise InvalidArgument(f"{desc.digest} has media type {desc.media_type!r}, "
                              "which is neither an image manifest nor an index")
    raise InvalidArgument(f"image {target.digest}: indexes nested too deep")
