"""Build layer tars (and whole images in a content store) for the image tests.

Shared by tests/unit/images, tests/integration/images and tests/conformance
(their conftest puts this directory on sys.path).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile

from hutch.common.digest import Digest
from hutch.images.content import ContentStore
from hutch.oci.image_spec import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    Platform,
    canonical_json,
)

MTIME = 1_600_000_000
AMD64 = Platform("linux", "amd64")


class TarBuilder:
    """Members in the order added; ``data()`` is the tar, ``layer(compression)`` the blob."""

    def __init__(self, fmt: int = tarfile.PAX_FORMAT) -> None:
        self.members: list[tuple[tarfile.TarInfo, bytes | None]] = []
        self.fmt = fmt

    def _info(self, name: str, type_: bytes, mode: int, uid: int, gid: int,
              mtime: int, xattrs: dict[str, bytes] | None) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = type_
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.mtime = mtime
        if xattrs:
            ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                              for k, v in xattrs.items()}
        return ti

    def dir(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0,
            mtime: int = MTIME, xattrs: dict[str, bytes] | None = None) -> TarBuilder:
        self.members.append((self._info(name, tarfile.DIRTYPE, mode, uid, gid, mtime, xattrs),
                             None))
        return self

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0,
             mtime: int = MTIME, xattrs: dict[str, bytes] | None = None) -> TarBuilder:
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid, mtime, xattrs)
        ti.size = len(data)
        self.members.append((ti, data))
        return self

    def symlink(self, name: str, target: str, uid: int = 0, gid: int = 0) -> TarBuilder:
        ti = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid, MTIME, None)
        ti.linkname = target
        self.members.append((ti, None))
        return self

    def hardlink(self, name: str, target: str) -> TarBuilder:
        ti = self._info(name, tarfile.LNKTYPE, 0o644, 0, 0, MTIME, None)
        ti.linkname = target
        self.members.append((ti, None))
        return self

    def device(self, name: str, kind: str = "c", major: int = 1, minor: int = 3) -> TarBuilder:
        ti = self._info(name, tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE, 0o666, 0, 0,
                        MTIME, None)
        ti.devmajor, ti.devminor = major, minor
        self.members.append((ti, None))
        return self

    def fifo(self, name: str) -> TarBuilder:
        self.members.append((self._info(name, tarfile.FIFOTYPE, 0o644, 0, 0, MTIME, None), None))
        return self

    def whiteout(self, path: str) -> TarBuilder:
        head, _, base = path.rpartition("/")
        return self.file(f"{head}/.wh.{base}" if head else f".wh.{base}")

    def opaque(self, directory: str) -> TarBuilder:
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq")

    def data(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=self.fmt) as tf:
            for ti, data in self.members:
                tf.addfile(ti, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()

    def layer(self, compression: str = "none") -> bytes:
        return compress(self.data(), compression)

    def stream(self, compression: str = "none") -> io.BytesIO:
        return io.BytesIO(self.layer(compression))

    def diff_id(self) -> Digest:
        return Digest.from_bytes(self.data())


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    return data


LAYER_TYPES = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


def add_image(content: ContentStore, layers: list[TarBuilder], compression: str = "gzip",
              platform: Platform = AMD64,
              config_extra: dict | None = None) -> Descriptor:
    """Put an image (layers, config, manifest) in ``content``; returns the manifest's descriptor."""
    layer_descs = []
    diff_ids = []
    for builder in layers:
        blob = builder.layer(compression)
        info = content.ingest_bytes(blob)
        layer_descs.append(Descriptor(LAYER_TYPES[compression], info.digest, info.size))
        diff_ids.append(str(builder.diff_id()))
    config = {"architecture": platform.architecture, "os": platform.os,
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}, **(config_extra or {})}
    if platform.variant:
        config["variant"] = platform.variant
    cinfo = content.ingest_bytes(canonical_json(config))
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": str(cinfo.digest),
                           "size": cinfo.size},
                "layers": [d.to_dict() for d in layer_descs]}
    minfo = content.ingest_bytes(canonical_json(manifest))
    return Descriptor(OCI_MANIFEST, minfo.digest, minfo.size, platform=platform)


def add_index(content: ContentStore, manifests: list[Descriptor]) -> Descriptor:
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [m.to_dict() for m in manifests]}
    info = content.ingest_bytes(json.dumps(index).encode())
    return Descriptor(OCI_INDEX, info.digest, info.size)
