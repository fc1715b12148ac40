"""Images in and out of the store: OCI image layouts and Docker archives.

Import reads a directory or a tar (plain or compressed):

- an OCI image layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``),
  as skopeo, umoci, buildah and Docker >= 25 write it; each entry of
  ``index.json`` becomes an image named by its ``io.containerd.image.name`` or
  ``org.opencontainers.image.ref.name`` annotation;
- a Docker archive (``docker save``: ``manifest.json`` with Config, RepoTags and
  Layers, the layer tars, ``repositories``); each entry becomes an OCI manifest
  over the same config and layers, named by its RepoTags.

Every blob is verified (digest and size) on its way into the content store,
Docker layers against the config's diff_ids. Nothing is ever extracted to the
file system: members are read from the archive by name. A lease holds the
blobs until the names are written, so a concurrent gc cannot take them.

Export writes the same two formats, as a directory (OCI only) or a tar.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from hutch.common.digest import Digest, DigestMismatch
from hutch.errors import InvalidArgument, NotFound
from hutch.images.content import ContentStore
from hutch.images.gc import store_lock
from hutch.images.metadata import MetadataStore
from hutch.images.unpack import detect_compression, diff_id_of, open_layer
from hutch.images.walk import ResolvedImage, read_manifest, resolve, walk
from hutch.oci.image_spec import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    DEFAULT_PLATFORM,
    LAYOUT_VERSION,
    MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
    NONDISTRIBUTABLE,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    Platform,
    canonical_json,
    is_index,
    is_manifest,
    layer_compression,
    parse_config,
    parse_index,
)

MAX_SMALL_FILE = 8 << 20  # index.json, manifest.json, oci-layout, repositories
_COMPRESSED_LAYER = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


@dataclass(frozen=True, slots=True)
class ImportedImage:
    name: str | None  # None: the layout did not name it (its blobs are kept until gc)
    target: Descriptor


# --- sources: a directory or a tar, read by relative name -----------------------------------

class _Source(Protocol):
    def open(self, rel: str) -> BinaryIO | None: ...

    def close(self) -> None: ...


def _clean(rel: str) -> str | None:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or rel.startswith("/"):
        return None
    return "/".join(parts)


class _DirSource:
    def __init__(self, root: str) -> None:
        self.root = root

    def open(self, rel: str) -> BinaryIO | None:
        clean = _clean(rel)
        if clean is None:
            return None
        try:
            fd = os.open(os.path.join(self.root, clean), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return os.fdopen(fd, "rb")

    def close(self) -> None:
        pass


class _TarSource:
    def __init__(self, path_or_file: str | BinaryIO) -> None:
        try:
            if isinstance(path_or_file, str):
                self.tf = tarfile.open(path_or_file, "r:*")  # noqa: SIM115 (closed by close())
            else:
                self.tf = tarfile.open(fileobj=path_or_file, mode="r:*")  # noqa: SIM115
        except (tarfile.TarError, OSError, EOFError) as e:
            raise InvalidArgument(f"cannot read the archive {path_or_file}: {e}") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in self.tf.getmembers():
            clean = _clean(member.name)
            if clean is not None:
                self.members[clean] = member

    def open(self, rel: str) -> BinaryIO | None:
        clean = _clean(rel)
        member = self.members.get(clean) if clean else None
        if member is None or not (member.isfile() or member.issym() or member.islnk()):
            return None
        try:
            return self.tf.extractfile(member)  # type: ignore[return-value]
        except (KeyError, tarfile.TarError):
            return None

    def close(self) -> None:
        self.tf.close()


def _has(src: _Source, rel: str) -> bool:
    f = src.open(rel)
    if f is None:
        return False
    f.close()
    return True


def _read_small(src: _Source, rel: str, what: str, required: bool = True) -> bytes | None:
    f = src.open(rel)
    if f is None:
        if required:
            raise InvalidArgument(f"{what}: {rel} is missing")
        return None
    with f:
        data = f.read(MAX_SMALL_FILE + 1)
    if len(data) > MAX_SMALL_FILE:
        raise InvalidArgument(f"{what}: {rel} is larger than {MAX_SMALL_FILE} bytes")
    return data


def _json(data: bytes, what: str) -> object:
    try:
        return json.loads(data)
    except ValueError as e:
        raise InvalidArgument(f"{what} is not valid JSON: {e}") from None


@contextmanager
def _open_source(path: str | BinaryIO) -> Iterator[_Source]:
    src: _Source = _DirSource(path) if isinstance(path, str) and os.path.isdir(path) \
        else _TarSource(path)
    try:
        yield src
    finally:
        src.close()


# --- import ---------------------------------------------------------------------------------

def import_archive(path: str | BinaryIO, content: ContentStore, meta: MetadataStore, *,
                   name: str | None = None, repository: str | None = None) -> list[ImportedImage]:
    """Import an OCI layout or a Docker archive (directory or tar) into the store.

    ``name`` names the image when the archive holds exactly one; ``repository``
    completes bare tags (an OCI ``ref.name`` of ``latest`` becomes
    ``repository:latest``). Returns what was imported, named or not.
    """
    with _open_source(path) as src, ExitStack() as stack:
        stack.enter_context(store_lock(content, exclusive=False))
        lease = stack.enter_context(meta.lease())
        if _has(src, "oci-layout") and _has(src, "index.json"):
            images = _import_oci(src, content, meta, lease, repository)
        elif _has(src, "manifest.json"):
            images = _import_docker(src, content, meta, lease)
        else:
            raise InvalidArgument(f"{path} is neither an OCI image layout (oci-layout, "
                                  "index.json) nor a Docker archive (manifest.json)")
        if name is not None:
            if len({i.target.digest for i in images}) != 1:
                raise InvalidArgument(f"{path} holds {len(images)} images: a single name "
                                      "cannot be given to all of them")
            images = [ImportedImage(name, images[0].target)]
        for image in images:
            if image.name is not None:
                meta.put(image.name, image.target)
        return images


def _ingest_from(src: _Source, content: ContentStore, desc: Descriptor, what: str) -> bool:
    """Copy the blob of ``desc`` from the source, verified; False when it is missing."""
    if content.exists(desc.digest):
        info = content.info(desc.digest)
        if info.size != desc.size:
            raise DigestMismatch(f"{what}: blob {desc.digest} has {info.size} bytes in the "
                                 f"store but the descriptor says {desc.size}")
        return True
    f = src.open(f"blobs/{desc.digest.algorithm}/{desc.digest.hex}")
    if f is None:
        return False
    with f:
        try:
            content.ingest(f, desc.digest, desc.size)
        except DigestMismatch as e:
            raise DigestMismatch(f"{what}: {e}") from None
    return True


def _import_oci(src: _Source, content: ContentStore, meta: MetadataStore, lease: str,
                repository: str | None) -> list[ImportedImage]:
    layout = _json(_read_small(src, "oci-layout", "OCI layout") or b"", "oci-layout")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != LAYOUT_VERSION:
        raise InvalidArgument(f"oci-layout: imageLayoutVersion must be {LAYOUT_VERSION!r}, "
                              f"not {layout.get('imageLayoutVersion') if isinstance(layout, dict) else layout!r}")
    index = parse_index(_read_small(src, "index.json", "OCI layout") or b"")
    images = []
    for i, top in enumerate(index.manifests):
        _copy_graph(src, content, meta, lease, top, f"index.json manifests[{i}]")
        images.append(ImportedImage(_layout_name(top, repository), top))
    return images


def _copy_graph(src: _Source, content: ContentStore, meta: MetadataStore, lease: str,
                top: Descriptor, where: str) -> None:
    stack: list[tuple[Descriptor, str, bool]] = [(top, where, False)]
    seen: set[Digest] = set()
    while stack:
        desc, what, optional = stack.pop()
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        meta.add_to_lease(lease, desc.digest)
        if not _ingest_from(src, content, desc, what):
            if optional or desc.media_type in NONDISTRIBUTABLE:
                continue  # a platform of an index that was not copied, a foreign layer
            raise NotFound(f"{what}: blob {desc.digest} ({desc.media_type}) is missing "
                           "from the archive")
        if is_index(desc.media_type):
            idx = parse_index(content.read(desc.digest, MAX_MANIFEST_SIZE), desc.media_type)
            for j, child in enumerate(idx.manifests):
                stack.append((child, f"{what} -> manifests[{j}]", True))
        elif is_manifest(desc.media_type):
            manifest = read_manifest(content, desc)
            stack.append((manifest.config, f"{what} -> config", False))
            for j, layer in enumerate(manifest.layers):
                stack.append((layer, f"{what} -> layers[{j}]", False))


def _layout_name(desc: Descriptor, repository: str | None) -> str | None:
    full = desc.annotations.get(ANNOTATION_IMAGE_NAME)
    if full:
        return full
    ref = desc.annotations.get(ANNOTATION_REF_NAME)
    if not ref:
        return None
    if "/" in ref or ":" in ref or "@" in ref or repository is None:
        return ref
    return f"{repository}:{ref}"


def _import_docker(src: _Source, content: ContentStore, meta: MetadataStore,
                   lease: str) -> list[ImportedImage]:
    entries = _json(_read_small(src, "manifest.json", "Docker archive") or b"", "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument("manifest.json of a Docker archive must be a non-empty list")
    images = []
    for i, entry in enumerate(entries):
        where = f"manifest.json[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise InvalidArgument(f"{where}: needs Config (a file name) and Layers (a list)")
        config_bytes = _read_small(src, entry["Config"], where) or b""
        config = parse_config(config_bytes)
        if len(entry["Layers"]) != len(config.diff_ids):
            raise InvalidArgument(f"{where}: {len(entry['Layers'])} layers, but the config's "
                                  f"rootfs.diff_ids has {len(config.diff_ids)}")
        config_info = content.ingest_bytes(config_bytes)
        meta.add_to_lease(lease, config_info.digest)
        layers = []
        for j, (rel, diff_id) in enumerate(zip(entry["Layers"], config.diff_ids)):
            f = src.open(rel) if isinstance(rel, str) else None
            if f is None:
                raise NotFound(f"{where}.Layers[{j}]: {rel} is missing from the archive")
            with f:
                info = content.ingest(f)
            meta.add_to_lease(lease, info.digest)
            with content.open(info.digest) as blob:
                compression = detect_compression(blob.read(8))
            if compression == "none":
                actual = info.digest
            else:
                with content.open(info.digest) as blob:
                    actual, _, _ = diff_id_of(blob)
            if actual != diff_id:
                raise DigestMismatch(f"{where}.Layers[{j}]: {rel} has diff_id {actual}, but "
                                     f"the config says {diff_id}")
            layers.append(Descriptor(_COMPRESSED_LAYER[compression], info.digest, info.size))
        manifest = Manifest(Descriptor(OCI_CONFIG, config_info.digest, config_info.size),
                            tuple(layers), OCI_MANIFEST)
        data = manifest.to_json()
        minfo = content.ingest_bytes(data)
        meta.add_to_lease(lease, minfo.digest)
        target = Descriptor(OCI_MANIFEST, minfo.digest, minfo.size,
                            platform=Platform(config.os, config.architecture, config.variant))
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidArgument(f"{where}.RepoTags must be a list of names")
        if not tags:
            images.append(ImportedImage(None, target))
        images.extend(ImportedImage(tag, target) for tag in tags)
    return images


# --- export ---------------------------------------------------------------------------------

class _Sink:
    """Where an export goes: a directory, or a tar written in a fixed order."""

    def __init__(self, out: str | BinaryIO, as_dir: bool) -> None:
        self.as_dir = as_dir
        self.out = out
        self.tf: tarfile.TarFile | None = None
        self.dirs: set[str] = set()
        self.names: set[str] = set()
        if as_dir:
            assert isinstance(out, str)
            os.makedirs(out, exist_ok=True)
        elif isinstance(out, str):
            self.tf = tarfile.open(out, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        else:
            self.tf = tarfile.open(fileobj=out, mode="w",  # noqa: SIM115
                                   format=tarfile.PAX_FORMAT)

    def _info(self, rel: str, size: int, directory: bool = False) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(rel)
        ti.size = 0 if directory else size
        ti.mode = 0o755 if directory else 0o644
        ti.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        ti.mtime = 0
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    def _parents(self, rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                if self.tf is not None:
                    self.tf.addfile(self._info(d, 0, directory=True))
                else:
                    os.makedirs(os.path.join(str(self.out), d), exist_ok=True)

    def add_bytes(self, rel: str, data: bytes) -> None:
        self.add_stream(rel, io.BytesIO(data), len(data))

    def add_stream(self, rel: str, stream: BinaryIO, size: int) -> None:
        if rel in self.names:
            return
        self.names.add(rel)
        self._parents(rel)
        if self.tf is not None:
            self.tf.addfile(self._info(rel, size), stream)
            return
        path = os.path.join(str(self.out), rel)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            shutil.copyfileobj(stream, f, 1 << 20)
        os.replace(tmp, path)

    def close(self) -> None:
        if self.tf is not None:
            self.tf.close()


def _split_tag(name: str) -> tuple[str, str | None]:
    """``repo:tag`` -> (repo, tag); a name without a tag (or with a digest) -> (name, None)."""
    if "@" in name:
        return name, None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, None


def _export_blobs(content: ContentStore, target: Descriptor) -> list[Descriptor]:
    """The blobs of an image that are in the store; a missing config or layer is an error
    (a platform of an index that was never pulled is left out)."""
    out = []
    for desc in walk(content, [target], missing_ok=True):
        if content.exists(desc.digest):
            out.append(desc)
        elif not (is_manifest(desc.media_type) or is_index(desc.media_type)) \
                and desc.media_type not in NONDISTRIBUTABLE:
            raise NotFound(f"blob {desc.digest} ({desc.media_type}) of {target.digest} is not "
                           "in the store: pull the image again")
    return out


def export_oci(out: str | BinaryIO, content: ContentStore, meta: MetadataStore,
               names: Sequence[str], *, as_dir: bool | None = None) -> None:
    """Write the images ``names`` as an OCI image layout: a directory (``as_dir``, the
    default when ``out`` is an existing directory or ends with '/') or a tar."""
    if as_dir is None:
        as_dir = isinstance(out, str) and (os.path.isdir(out) or out.endswith("/"))
    images = [meta.get(n) for n in names]
    sink = _Sink(out, as_dir)
    try:
        sink.add_bytes("oci-layout", canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
        entries = []
        for image in images:
            for desc in _export_blobs(content, image.target):
                with content.open(desc.digest) as f:
                    sink.add_stream(f"blobs/{desc.digest.algorithm}/{desc.digest.hex}", f,
                                    desc.size)
            _, tag = _split_tag(image.name)
            entries.append(image.target.with_annotations(
                **{ANNOTATION_IMAGE_NAME: image.name, ANNOTATION_REF_NAME: tag or image.name}))
        sink.add_bytes("index.json", canonical_json(
            {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [e.to_dict() for e in entries]}))
    finally:
        sink.close()


def export_docker(out: str | BinaryIO, content: ContentStore, meta: MetadataStore,
                  names: Sequence[str], *, platform: Platform = DEFAULT_PLATFORM) -> None:
    """Write the images ``names`` as a Docker archive (``docker load`` reads it), a tar.

    Layers are written uncompressed (``<diff_id>/layer.tar``), as Docker does;
    compressed ones are decompressed (and their diff_id checked) on the way.
    """
    by_manifest: dict[Digest, tuple[ResolvedImage, list[str]]] = {}
    for n in names:
        image = meta.get(n)
        resolved = resolve(content, image.target, platform)
        key = resolved.manifest_descriptor.digest
        if key not in by_manifest:
            by_manifest[key] = (resolved, [])
        by_manifest[key][1].append(n)
    sink = _Sink(out, as_dir=False)
    manifest_json = []
    repositories: dict[str, dict[str, str]] = {}
    try:
        for resolved, tags in by_manifest.values():
            config_desc = resolved.manifest.config
            config_name = f"{config_desc.digest.hex}.json"
            sink.add_bytes(config_name, content.read(config_desc.digest, MAX_CONFIG_SIZE))
            layer_names = []
            parent = ""
            for layer, diff_id in zip(resolved.layers, resolved.config.diff_ids):
                layer_id = diff_id.hex
                rel = f"{layer_id}/layer.tar"
                layer_names.append(rel)
                if rel not in sink.names:
                    _add_uncompressed_layer(sink, content, layer, diff_id, rel)
                    sink.add_bytes(f"{layer_id}/VERSION", b"1.0")
                    sink.add_bytes(f"{layer_id}/json", canonical_json(
                        {"id": layer_id, **({"parent": parent} if parent else {})}))
                parent = layer_id
            manifest_json.append({"Config": config_name, "RepoTags": tags,
                                  "Layers": layer_names})
            for t in tags:
                repo, tag = _split_tag(t)
                if tag and parent:
                    repositories.setdefault(repo, {})[tag] = parent
        sink.add_bytes("manifest.json", json.dumps(manifest_json).encode())
        sink.add_bytes("repositories", json.dumps(repositories).encode())
    finally:
        sink.close()


def _add_uncompressed_layer(sink: _Sink, content: ContentStore, layer: Descriptor,
                            diff_id: Digest, rel: str) -> None:
    compression = layer_compression(layer.media_type) if layer.media_type else "none"
    with content.open(layer.digest) as blob:
        head = blob.read(8)
        compression = detect_compression(head) if head else compression
        blob.seek(0)
        if compression == "none":
            if layer.digest != diff_id:
                raise DigestMismatch(f"layer {layer.digest} is uncompressed but its diff_id "
                                     f"is {diff_id}")
            sink.add_stream(rel, blob, content.info(layer.digest).size)
            return
        with tempfile.TemporaryFile() as tmp:
            stream, _ = open_layer(blob)
            d = Digest.from_stream(_Tee(stream, tmp))[0]  # type: ignore[arg-type]
            if d != diff_id:
                raise DigestMismatch(f"layer {layer.digest} has diff_id {d}, but the config "
                                     f"says {diff_id}")
            size = tmp.tell()
            tmp.seek(0)
            sink.add_stream(rel, tmp, size)  # type: ignore[arg-type]


class _Tee:
    def __init__(self, src: BinaryIO, dst: BinaryIO) -> None:
        self.src, self.dst = src, dst

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        if data:
            self.dst.write(data)
        return data
