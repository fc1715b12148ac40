"""``hutch image validate``: an image checked against the image spec, every problem listed.

As rkt's actool did for ACIs: the source is an OCI image layout (a directory
or a tar), a Docker archive, or an image in the store. Checked, without
stopping at the first problem:

- the layout: ``oci-layout`` and its version, ``index.json``;
- every descriptor: media type known for its place, digest well formed, the
  blob present, its size and its digest what the descriptor says;
- manifests and indexes: their fields (``oci.image_spec``'s parsers, which list
  every problem), a config of a config media type, layers of layer media types;
- the config: its fields, one diff_id per layer, each layer's uncompressed
  digest equal to its diff_id;
- every layer's safety: the unpacker's checks run without writing anything
  (``unpack.LayerScanner``): absolute names, '..', writing through symlinks
  that leave the root, hard links outside, device nodes, limits.

``validate_*`` return a Report; ``ok`` is whether it found nothing. Nothing is
extracted to disk and nothing is written to a store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from hutch.common.digest import Digest
from hutch.errors import HutchError
from hutch.oci.image_spec import (
    CONFIG_TYPES,
    INDEX_TYPES,
    LAYOUT_VERSION,
    MANIFEST_TYPES,
    MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
    NONDISTRIBUTABLE,
    Descriptor,
    is_index,
    is_layer,
    is_manifest,
    parse_config,
    parse_index,
    parse_manifest,
)


@dataclass
class Report:
    source: str
    problems: list[str] = field(default_factory=list)
    images: int = 0
    manifests: int = 0
    layers: int = 0
    blobs: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def to_dict(self) -> dict:
        return {"source": self.source, "ok": self.ok, "problems": self.problems,
                "images": self.images, "manifests": self.manifests, "layers": self.layers,
                "blobs": self.blobs}


class Blobs(Protocol):
    """Where the blobs come from: a layout (dir or tar) or the content store."""

    def open_blob(self, digest: Digest) -> BinaryIO | None: ...


class _LayoutBlobs:
    def __init__(self, src) -> None:  # type: ignore[no-untyped-def]
        self.src = src

    def open_blob(self, digest: Digest) -> BinaryIO | None:
        rel = f"blobs/{digest.algorithm}/{digest.hex}"
        return self.src.open(rel)  # type: ignore[no-any-return]


class _StoreBlobs:
    def __init__(self, content) -> None:  # type: ignore[no-untyped-def]
        self.content = content

    def open_blob(self, digest: Digest) -> BinaryIO | None:
        if not self.content.exists(digest):
            return None
        return self.content.open(digest)  # type: ignore[no-any-return]


class _Validator:
    def __init__(self, blobs: Blobs, report: Report) -> None:
        self.blobs = blobs
        self.report = report
        # digest -> (the blob was good, its real size when it was there)
        self.checked: dict[Digest, tuple[bool, int | None]] = {}

    # -- blobs -----------------------------------------------------------------------

    def _blob_ok(self, desc: Descriptor, where: str) -> bool:
        """Present, with the size and digest the descriptor says (each blob read once)."""
        if desc.digest in self.checked:
            ok, size = self.checked[desc.digest]
            if size is not None and size != desc.size:
                self.report.add(where, f"blob {desc.digest} has {size} bytes, the descriptor "
                                       f"says {desc.size}")
                return False
            return ok
        self.report.blobs += 1
        f = self.blobs.open_blob(desc.digest)
        ok, size = False, None
        if f is None:
            if desc.media_type in NONDISTRIBUTABLE or desc.urls:
                self.checked[desc.digest] = (False, None)
                return False  # a foreign layer: allowed to be absent
            self.report.add(where, f"blob {desc.digest} is missing")
        else:
            with f:
                d, size = Digest.from_stream(f, desc.digest.algorithm)
            if size != desc.size:
                self.report.add(where, f"blob {desc.digest} has {size} bytes, the descriptor "
                                       f"says {desc.size}")
            elif d != desc.digest:
                self.report.add(where, f"blob content has digest {d}, the descriptor says "
                                       f"{desc.digest}")
            else:
                ok = True
        self.checked[desc.digest] = (ok, size)
        return ok

    def _read(self, desc: Descriptor, where: str, limit: int) -> bytes | None:
        if desc.size > limit:
            self.report.add(where, f"{desc.size} bytes is more than the {limit} allowed here")
            return None
        if not self._blob_ok(desc, where):
            return None
        f = self.blobs.open_blob(desc.digest)
        assert f is not None
        with f:
            return f.read(limit + 1)

    def _parse(self, parser, data: bytes, media_type: str | None,  # type: ignore[no-untyped-def]
               where: str):
        try:
            return parser(data, media_type) if media_type is not None else parser(data)
        except HutchError as e:
            for line in _lines(e):
                self.report.add(where, line)
            return None

    # -- the graph -------------------------------------------------------------------

    def node(self, desc: Descriptor, where: str, depth: int = 0) -> None:
        if depth > 8:
            self.report.add(where, "indexes nested too deep")
            return
        if is_index(desc.media_type):
            data = self._read(desc, where, MAX_MANIFEST_SIZE)
            if data is None:
                return
            index = self._parse(parse_index, data, desc.media_type, where)
            if index is None:
                return
            for i, child in enumerate(index.manifests):
                self.node(child, f"{where} -> manifests[{i}]", depth + 1)
            return
        if is_manifest(desc.media_type):
            self.manifest(desc, where)
            return
        self.report.add(f"{where}.mediaType", f"{desc.media_type!r} is neither a manifest "
                                              f"({', '.join(sorted(MANIFEST_TYPES))}) nor an "
                                              f"index ({', '.join(sorted(INDEX_TYPES))})")

    def manifest(self, desc: Descriptor, where: str) -> None:
        self.report.manifests += 1
        data = self._read(desc, where, MAX_MANIFEST_SIZE)
        if data is None:
            return
        manifest = self._parse(parse_manifest, data, desc.media_type, where)
        if manifest is None:
            return
        self.report.images += 1
        cwhere = f"{where} -> config"
        config = None
        if manifest.config.media_type not in CONFIG_TYPES:
            self.report.add(f"{cwhere}.mediaType", f"{manifest.config.media_type!r} is not "
                                                   "an image config media type")
        else:
            raw = self._read(manifest.config, cwhere, MAX_CONFIG_SIZE)
            if raw is not None:
                config = self._parse(parse_config, raw, None, cwhere)
        if config is not None and len(config.diff_ids) != len(manifest.layers):
            self.report.add(where, f"{len(manifest.layers)} layers but the config's "
                                   f"rootfs.diff_ids has {len(config.diff_ids)}")
        from hutch.images.unpack import LayerScanner
        scanner = LayerScanner()
        for i, layer in enumerate(manifest.layers):
            lwhere = f"{where} -> layers[{i}]"
            self.report.layers += 1
            if not is_layer(layer.media_type):
                self.report.add(f"{lwhere}.mediaType", f"{layer.media_type!r} is not a layer "
                                                       "media type")
                continue
            if not self._blob_ok(layer, lwhere):
                continue
            diff_id = config.diff_ids[i] if config is not None and \
                i < len(config.diff_ids) else None
            f = self.blobs.open_blob(layer.digest)
            assert f is not None
            with f:
                result = scanner.scan(f, diff_id)
            for p in result.problems:
                self.report.add(lwhere, p)


def validate_source(path: str) -> Report:
    """An OCI image layout (directory or tar) or a Docker archive."""
    from hutch.images.layout import _has, _open_source
    report = Report(path)
    try:
        with _open_source(path) as src:
            if _has(src, "oci-layout") or _has(src, "index.json"):
                _validate_layout(src, report)
            elif _has(src, "manifest.json"):
                _validate_docker(src, report)
            else:
                report.add(path, "neither an OCI image layout (oci-layout, index.json) nor a "
                                 "Docker archive (manifest.json)")
    except HutchError as e:
        report.add(path, str(e))
    return report


def _lines(e: BaseException) -> list[str]:
    """The problems of a parser's error: one a line, without its "invalid X:" heading."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    if len(lines) > 1 and lines[0].startswith("invalid ") and lines[0].endswith(":"):
        lines = lines[1:]
    return lines


def _json(data: bytes | None, where: str, report: Report) -> object:
    if data is None:
        report.add(where, "is missing")
        return None
    try:
        return json.loads(data)
    except ValueError as e:
        report.add(where, f"not valid JSON: {e}")
        return None


def _validate_layout(src, report: Report) -> None:  # type: ignore[no-untyped-def]
    from hutch.images.layout import _read_small
    layout = _json(_read_small(src, "oci-layout", "OCI layout", required=False), "oci-layout",
                   report)
    if layout is not None and (not isinstance(layout, dict)
                               or layout.get("imageLayoutVersion") != LAYOUT_VERSION):
        report.add("oci-layout", f"imageLayoutVersion must be {LAYOUT_VERSION!r}")
    raw = _read_small(src, "index.json", "OCI layout", required=False)
    obj = _json(raw, "index.json", report)
    if obj is None:
        return
    v = _Validator(_LayoutBlobs(src), report)
    try:
        index = parse_index(raw or b"")
    except HutchError as e:
        for line in _lines(e):
            report.add("index.json", line)
        return
    if not index.manifests:
        report.add("index.json", "lists no manifests")
    for i, desc in enumerate(index.manifests):
        v.node(desc, f"index.json manifests[{i}]")


def _validate_docker(src, report: Report) -> None:  # type: ignore[no-untyped-def]
    from hutch.images.layout import _read_small
    from hutch.images.unpack import LayerScanner
    entries = _json(_read_small(src, "manifest.json", "Docker archive", required=False),
                    "manifest.json", report)
    if not isinstance(entries, list) or not entries:
        if entries is not None:
            report.add("manifest.json", "must be a non-empty list")
        return
    for i, entry in enumerate(entries):
        where = f"manifest.json[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            report.add(where, "needs Config (a file name) and Layers (a list)")
            continue
        report.images += 1
        raw = _read_small(src, entry["Config"], where, required=False)
        config = None
        if raw is None:
            report.add(where, f"config {entry['Config']} is missing")
        else:
            try:
                config = parse_config(raw)
            except HutchError as e:
                for line in _lines(e):
                    report.add(f"{where} -> config", line)
        if config is not None and len(config.diff_ids) != len(entry["Layers"]):
            report.add(where, f"{len(entry['Layers'])} layers but the config's "
                              f"rootfs.diff_ids has {len(config.diff_ids)}")
        scanner = LayerScanner()
        for j, rel in enumerate(entry["Layers"]):
            report.layers += 1
            f = src.open(rel) if isinstance(rel, str) else None
            if f is None:
                report.add(f"{where}.Layers[{j}]", f"{rel} is missing")
                continue
            diff_id = config.diff_ids[j] if config is not None and \
                j < len(config.diff_ids) else None
            with f:
                result = scanner.scan(f, diff_id)
            for p in result.problems:
                report.add(f"{where}.Layers[{j}]", p)


def validate_stored(content, meta, name: str) -> Report:  # type: ignore[no-untyped-def]
    """An image of the store, from the descriptor its name points at."""
    image = meta.get(name)
    report = Report(name)
    _Validator(_StoreBlobs(content), report).node(image.target, name)
    return report
