"""Make an OCI image in the store from a root file system: a directory or a tar.

One layer (the tree as a tar, or the given tar as it is), a config with the run
defaults, a manifest; all committed to the content store and named, under the
store's shared lock and a lease, so a concurrent gc cannot sweep the blobs
before the name holds them. Templates (busybox) and ``hutch image import
ROOTFS.tar|DIR`` use it. Stdlib only.
"""

from __future__ import annotations

import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hutch.common.digest import Digest
from hutch.errors import InvalidArgument, NotFound
from hutch.images.content import ContentStore
from hutch.images.gc import store_lock
from hutch.images.metadata import MetadataStore
from hutch.images.unpack import diff_id_of
from hutch.oci.image_spec import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    Platform,
    canonical_json,
)

_LAYER_TYPE = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


@dataclass(frozen=True, slots=True)
class Layer:
    descriptor: Descriptor
    diff_id: Digest


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def layer_from_dir(content: ContentStore, directory: str,
                   mtime: int | None = None) -> Layer:
    """The tree below ``directory`` as one uncompressed layer (sorted, so reproducible
    when ``mtime`` pins every time stamp). Owners are kept as numbers, names dropped."""
    if not os.path.isdir(directory):
        raise NotFound(f"{directory} is not a directory")

    def clean(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uname = ti.gname = ""
        if mtime is not None:
            ti.mtime = mtime
        return ti

    with content.writer() as w:
        tf = tarfile.open(fileobj=w, mode="w|",  # type: ignore[call-overload]
                          format=tarfile.PAX_FORMAT)
        with tf:
            for entry in sorted(os.listdir(directory)):
                tf.add(os.path.join(directory, entry), arcname=entry, recursive=True,
                       filter=clean)
        info = w.commit()
    return Layer(Descriptor(OCI_LAYER, info.digest, info.size), info.digest)


def layer_from_tar(content: ContentStore, path: str) -> Layer:
    """A root file system tar (plain, gzip or zstd) as a layer, byte for byte."""
    try:
        with open(path, "rb") as f:
            info = content.ingest(f)
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    with content.open(info.digest) as blob:
        diff_id, _, compression = diff_id_of(blob)
    return Layer(Descriptor(_LAYER_TYPE[compression], info.digest, info.size), diff_id)


def image_config(layers: list[Layer], run: dict[str, Any], *, created: float | None = None,
                 platform: Platform | None = None, history: str = "") -> dict[str, Any]:
    plat = platform or Platform.host()
    stamp = _rfc3339(created if created is not None else time.time())
    config: dict[str, Any] = {
        "architecture": plat.architecture, "os": plat.os, "created": stamp,
        "config": {k: v for k, v in run.items() if v not in (None, [], {})},
        "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id) for layer in layers]},
        "history": [{"created": stamp, "created_by": history or "hutch"}
                    for _ in layers],
    }
    if plat.variant:
        config["variant"] = plat.variant
    return config


def make_image(content: ContentStore, meta: MetadataStore, name: str,
               make_layers: Callable[[], list[Layer]], run: dict[str, Any], *,
               created: float | None = None, labels: dict[str, str] | None = None,
               history: str = "") -> Descriptor:
    """Build the layers, write config and manifest, and point ``name`` at the manifest."""
    with store_lock(content, exclusive=False), meta.lease() as lease:
        layers = make_layers()
        for layer in layers:
            meta.add_to_lease(lease, layer.descriptor.digest)
        config = canonical_json(image_config(layers, run, created=created, history=history))
        cinfo = content.ingest_bytes(config)
        meta.add_to_lease(lease, cinfo.digest)
        manifest = Manifest(Descriptor(OCI_CONFIG, cinfo.digest, cinfo.size),
                            tuple(layer.descriptor for layer in layers), OCI_MANIFEST)
        minfo = content.ingest_bytes(manifest.to_json())
        meta.add_to_lease(lease, minfo.digest)
        target = Descriptor(OCI_MANIFEST, minfo.digest, minfo.size)
        meta.put(name, target, labels)
    return target


def run_config_from_args(entrypoint: list[str] | None = None, cmd: list[str] | None = None,
                         env: list[str] | None = None, workdir: str | None = None,
                         user: str | None = None) -> dict[str, Any]:
    """The ``config`` section for ``image import --change``-like options."""
    for item in env or []:
        if "=" not in item:
            raise InvalidArgument(f"env {item!r}: expected NAME=VALUE")
    return {"Entrypoint": entrypoint, "Cmd": cmd, "Env": env, "WorkingDir": workdir,
            "User": user}
