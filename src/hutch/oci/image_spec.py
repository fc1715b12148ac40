"""OCI image-spec (and Docker schema 2) documents: descriptors, manifests, indexes, configs.

Pure data and JSON. Each ``parse_*`` takes the raw JSON (bytes, str or an
already decoded dict) and returns a frozen model, or raises one InvalidArgument
that lists every problem found, one line each, as ``field.path: what is wrong``
(``manifest.layers[2].digest: ...``). Unknown properties are allowed (the spec
says so); the models keep the decoded document in ``raw``.

Docker's schema 2 media types are accepted beside OCI's; schema 1 is refused.
Platform matching picks the manifest of an index for an OS/architecture
(linux/amd64 unless asked otherwise).
"""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from hutch.common.digest import Digest
from hutch.errors import InvalidArgument, Unsupported

# --- media types ----------------------------------------------------------------------------

OCI_LAYOUT = "application/vnd.oci.layout.header.v1+json"
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})

# layer media type -> compression ("none", "gzip", "zstd")
LAYER_TYPES: dict[str, str] = {
    OCI_LAYER: "none", OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_ND: "none", OCI_LAYER_ND_GZIP: "gzip", OCI_LAYER_ND_ZSTD: "zstd",
    DOCKER_LAYER: "none", DOCKER_LAYER_GZIP: "gzip", DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_FOREIGN_LAYER: "gzip",
}
NONDISTRIBUTABLE = frozenset({OCI_LAYER_ND, OCI_LAYER_ND_GZIP, OCI_LAYER_ND_ZSTD,
                              DOCKER_FOREIGN_LAYER})

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"  # the full name, as containerd/podman write it

LAYOUT_VERSION = "1.0.0"

# Limits on documents we are asked to parse: a manifest is small.
MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 8 << 20


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFEST_TYPES


def is_index(media_type: str) -> bool:
    return media_type in INDEX_TYPES


def is_layer(media_type: str) -> bool:
    return media_type in LAYER_TYPES


def layer_compression(media_type: str) -> str:
    """"none", "gzip" or "zstd" for a layer media type; InvalidArgument for others."""
    try:
        return LAYER_TYPES[media_type]
    except KeyError:
        raise InvalidArgument(f"media type {media_type!r} is not a layer") from None


# --- platforms ------------------------------------------------------------------------------

_ARCH_ALIASES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None), "x86-64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", None), "arm64": ("arm64", None),
    "armhf": ("arm", "v7"), "armel": ("arm", "v6"), "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"), "i386": ("386", None), "i686": ("386", None), "386": ("386", None),
}


@dataclass(frozen=True, slots=True)
class Platform:
    """``os/architecture[/variant]``, normalized (x86_64 -> amd64, aarch64 -> arm64)."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``"linux/arm64/v8"``, ``"linux/amd64"`` or just ``"arm64"`` (os linux)."""
        parts = text.strip().split("/")
        if not all(parts) or len(parts) > 3:
            raise InvalidArgument(f"platform {text!r}: expected os/architecture[/variant]")
        if len(parts) == 1:
            parts = ["linux", parts[0]]
        return cls(parts[0].lower(), parts[1].lower(),
                   parts[2].lower() if len(parts) == 3 else None).normalized()

    @classmethod
    def host(cls) -> Platform:
        """This machine's platform (``linux/amd64`` on x86_64)."""
        return cls("linux", _platform.machine().lower()).normalized()

    def normalized(self) -> Platform:
        arch, variant = _ARCH_ALIASES.get(self.architecture, (self.architecture, None))
        variant = self.variant or variant
        if arch == "arm64" and variant == "v8":
            variant = None  # arm64's only variant is the default
        if arch == "amd64" and variant == "v1":
            variant = None
        return Platform(self.os, arch, variant, self.os_version, self.os_features)

    def matches(self, other: Platform) -> bool:
        """Does ``other`` (an image's platform) run where ``self`` (the wanted one) is asked?

        The OS and architecture must be the same; a wanted variant must be equal,
        while no wanted variant accepts any.
        """
        want, have = self.normalized(), other.normalized()
        if want.os != have.os or want.architecture != have.architecture:
            return False
        return want.variant is None or want.variant == have.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        if self.os_version:
            d["os.version"] = self.os_version
        if self.os_features:
            d["os.features"] = list(self.os_features)
        return d


DEFAULT_PLATFORM = Platform("linux", "amd64")


# --- models ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Descriptor:
    """What points at a blob: its media type, digest and size (and optional extras)."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    platform: Platform | None = None
    artifact_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest),
                             "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        return d

    def with_annotations(self, **extra: str) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size, self.urls,
                          {**self.annotations, **extra}, self.platform, self.artifact_type)

    @property
    def ref_name(self) -> str | None:
        return self.annotations.get(ANNOTATION_REF_NAME)


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest: a config and an ordered list of layers (base first)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = OCI_MANIFEST
    schema_version: int = 2
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schemaVersion": self.schema_version, "mediaType": self.media_type}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        d["config"] = self.config.to_dict()
        d["layers"] = [layer.to_dict() for layer in self.layers]
        if self.subject is not None:
            d["subject"] = self.subject.to_dict()
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())


@dataclass(frozen=True, slots=True)
class Index:
    """An image index (manifest list): manifests, usually one per platform."""

    manifests: tuple[Descriptor, ...]
    media_type: str = OCI_INDEX
    schema_version: int = 2
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schemaVersion": self.schema_version, "mediaType": self.media_type}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        d["manifests"] = [m.to_dict() for m in self.manifests]
        if self.subject is not None:
            d["subject"] = self.subject.to_dict()
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    def select(self, wanted: Platform = DEFAULT_PLATFORM) -> list[Descriptor]:
        """The manifests of this index that run on ``wanted``, best first.

        An exact variant match comes before an entry without a variant; entries
        without a platform are not selected (they are attestations or artifacts).
        """
        return select_platform(self.manifests, wanted)


@dataclass(frozen=True, slots=True)
class RootFS:
    type: str
    diff_ids: tuple[Digest, ...]


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The image configuration: platform, run defaults (``config``), rootfs diff_ids, history."""

    architecture: str
    os: str
    rootfs: RootFS
    config: dict[str, Any] = field(default_factory=dict, compare=False)
    variant: str | None = None
    created: str | None = None
    author: str | None = None
    history: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return self.rootfs.diff_ids

    def chain_ids(self) -> list[Digest]:
        return chain_ids(self.rootfs.diff_ids)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.raw)
        d.update({"architecture": self.architecture, "os": self.os,
                  "rootfs": {"type": self.rootfs.type,
                             "diff_ids": [str(x) for x in self.rootfs.diff_ids]}})
        if self.variant:
            d["variant"] = self.variant
        if self.created:
            d["created"] = self.created
        if self.author:
            d["author"] = self.author
        if self.config:
            d["config"] = self.config
        if self.history:
            d["history"] = list(self.history)
        return d

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())


def chain_ids(diff_ids: tuple[Digest, ...] | list[Digest]) -> list[Digest]:
    """The ChainID of each layer stack: ChainID(L0) = DiffID(L0),
    ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)) (image-spec config.md)."""
    out: list[Digest] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append(Digest.from_bytes(f"{out[-1]} {diff_id}".encode()))
    return out


def canonical_json(obj: Any) -> bytes:
    """Compact JSON with sorted keys: what hutch writes for the documents it makes."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


# --- parsing --------------------------------------------------------------------------------

class _Problems(list[str]):
    def add(self, where: str, what: str) -> None:
        self.append(f"{where}: {what}")

    def raise_if_any(self, kind: str) -> None:
        if self:
            raise InvalidArgument(f"invalid {kind}:\n  " + "\n  ".join(self))


def _decode(data: bytes | str | dict[str, Any], kind: str, limit: int) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    if isinstance(data, (bytes, bytearray)) and len(data) > limit:
        raise InvalidArgument(f"{kind} is {len(data)} bytes, more than the {limit} allowed")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{kind} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{kind} must be a JSON object, not {type(obj).__name__}")
    return obj


def _str(obj: dict[str, Any], key: str, where: str, problems: _Problems,
         required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            problems.add(f"{where}.{key}", "is required")
        return None
    if not isinstance(value, str):
        problems.add(f"{where}.{key}", f"must be a string, not {type(value).__name__}")
        return None
    return value


def _annotations(obj: dict[str, Any], where: str, problems: _Problems) -> dict[str, str]:
    value = obj.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        problems.add(f"{where}.annotations", "must be an object of strings")
        return {}
    return dict(value)


def _parse_platform(obj: Any, where: str, problems: _Problems) -> Platform | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        problems.add(where, "must be an object")
        return None
    os_ = _str(obj, "os", where, problems)
    arch = _str(obj, "architecture", where, problems)
    variant = _str(obj, "variant", where, problems, required=False)
    os_version = _str(obj, "os.version", where, problems, required=False)
    features = obj.get("os.features") or []
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        problems.add(f"{where}.os.features", "must be a list of strings")
        features = []
    if os_ is None or arch is None:
        return None
    return Platform(os_, arch, variant, os_version, tuple(features))


def _parse_descriptor(obj: Any, where: str, problems: _Problems) -> Descriptor | None:
    if not isinstance(obj, dict):
        problems.add(where, f"must be an object, not {type(obj).__name__}")
        return None
    before = len(problems)
    media_type = _str(obj, "mediaType", where, problems)
    digest: Digest | None = None
    raw_digest = _str(obj, "digest", where, problems)
    if raw_digest is not None:
        try:
            digest = Digest.parse(raw_digest)
        except InvalidArgument as e:
            problems.add(f"{where}.digest", str(e))
    size = obj.get("size")
    if size is None:
        problems.add(f"{where}.size", "is required")
    elif not isinstance(size, int) or isinstance(size, bool) or size < 0:
        problems.add(f"{where}.size", f"must be a non-negative integer, not {size!r}")
    urls = obj.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        problems.add(f"{where}.urls", "must be a list of strings")
        urls = []
    annotations = _annotations(obj, where, problems)
    platform = _parse_platform(obj.get("platform"), f"{where}.platform", problems)
    artifact_type = _str(obj, "artifactType", where, problems, required=False)
    if len(problems) > before or media_type is None or digest is None \
            or not isinstance(size, int):
        return None
    return Descriptor(media_type, digest, size, tuple(urls), annotations, platform, artifact_type)


def parse_descriptor(data: bytes | str | dict[str, Any], where: str = "descriptor") -> Descriptor:
    problems = _Problems()
    desc = _parse_descriptor(_decode(data, where, MAX_MANIFEST_SIZE), where, problems)
    problems.raise_if_any(where)
    assert desc is not None
    return desc


def _schema_version(obj: dict[str, Any], where: str, problems: _Problems) -> int:
    version = obj.get("schemaVersion")
    if version != 2:
        problems.add(f"{where}.schemaVersion", f"must be 2, not {version!r}")
    return 2


def _check_media_type(obj: dict[str, Any], expected: frozenset[str], given: str | None,
                      where: str, problems: _Problems, default: str) -> str:
    media_type = obj.get("mediaType")
    if media_type in DOCKER_SCHEMA1 or given in DOCKER_SCHEMA1:
        raise Unsupported(f"{where}: Docker image manifest schema 1 is not supported; "
                          "push the image again with a current client")
    if media_type is not None and media_type not in expected:
        problems.add(f"{where}.mediaType", f"is {media_type!r}, expected one of "
                                          f"{', '.join(sorted(expected))}")
    if given is not None and media_type is not None and given != media_type:
        problems.add(f"{where}.mediaType", f"is {media_type!r} but the descriptor says {given!r}")
    result = media_type or given or default
    return result if isinstance(result, str) else default


def parse_manifest(data: bytes | str | dict[str, Any], media_type: str | None = None) -> Manifest:
    """An image manifest (OCI or Docker schema 2). ``media_type``: what its descriptor said."""
    where = "manifest"
    obj = _decode(data, where, MAX_MANIFEST_SIZE)
    problems = _Problems()
    _schema_version(obj, where, problems)
    mt = _check_media_type(obj, frozenset(MANIFEST_TYPES), media_type, where, problems,
                           OCI_MANIFEST)
    if "manifests" in obj:
        problems.add(f"{where}.manifests", "is set: this is an index, not a manifest")
    config = _parse_descriptor(obj.get("config"), f"{where}.config", problems) \
        if obj.get("config") is not None else None
    if obj.get("config") is None:
        problems.add(f"{where}.config", "is required")
    raw_layers = obj.get("layers")
    layers: list[Descriptor] = []
    if not isinstance(raw_layers, list):
        problems.add(f"{where}.layers", "must be a list" if raw_layers is not None else
                     "is required")
    else:
        for i, raw in enumerate(raw_layers):
            desc = _parse_descriptor(raw, f"{where}.layers[{i}]", problems)
            if desc is not None:
                layers.append(desc)
    subject = _parse_descriptor(obj["subject"], f"{where}.subject", problems) \
        if obj.get("subject") is not None else None
    annotations = _annotations(obj, where, problems)
    artifact_type = _str(obj, "artifactType", where, problems, required=False)
    if mt == DOCKER_MANIFEST and config is not None and config.media_type not in CONFIG_TYPES:
        problems.add(f"{where}.config.mediaType", f"{config.media_type!r} is not an image config")
    problems.raise_if_any(where)
    assert config is not None
    return Manifest(config, tuple(layers), mt, 2, annotations, subject, artifact_type, obj)


def parse_index(data: bytes | str | dict[str, Any], media_type: str | None = None) -> Index:
    """An image index (OCI) or manifest list (Docker)."""
    where = "index"
    obj = _decode(data, where, MAX_MANIFEST_SIZE)
    problems = _Problems()
    _schema_version(obj, where, problems)
    mt = _check_media_type(obj, frozenset(INDEX_TYPES), media_type, where, problems, OCI_INDEX)
    raw = obj.get("manifests")
    manifests: list[Descriptor] = []
    if not isinstance(raw, list):
        problems.add(f"{where}.manifests", "must be a list" if raw is not None else "is required")
    else:
        for i, item in enumerate(raw):
            desc = _parse_descriptor(item, f"{where}.manifests[{i}]", problems)
            if desc is not None:
                manifests.append(desc)
    subject = _parse_descriptor(obj["subject"], f"{where}.subject", problems) \
        if obj.get("subject") is not None else None
    annotations = _annotations(obj, where, problems)
    artifact_type = _str(obj, "artifactType", where, problems, required=False)
    problems.raise_if_any(where)
    return Index(tuple(manifests), mt, 2, annotations, subject, artifact_type, obj)


def parse_manifest_or_index(data: bytes | str | dict[str, Any],
                            media_type: str | None = None) -> Manifest | Index:
    """Whichever of the two ``data`` is: by ``media_type``, its own mediaType, or its fields."""
    obj = _decode(data, "manifest", MAX_MANIFEST_SIZE)
    mt = media_type or obj.get("mediaType")
    if mt in INDEX_TYPES or (mt is None and "manifests" in obj):
        return parse_index(obj, media_type)
    if mt in MANIFEST_TYPES or mt is None or mt in DOCKER_SCHEMA1:
        return parse_manifest(obj, media_type)
    raise InvalidArgument(f"media type {mt!r} is neither an image manifest nor an index")


_CONFIG_STRING_LISTS = ("Env", "Cmd", "Entrypoint", "OnBuild")
_CONFIG_STRINGS = ("User", "WorkingDir", "StopSignal")
_CONFIG_OBJECTS = ("ExposedPorts", "Volumes", "Labels")


def parse_config(data: bytes | str | dict[str, Any]) -> ImageConfig:
    """An image configuration (OCI or Docker's container.image.v1)."""
    where = "config"
    obj = _decode(data, where, MAX_CONFIG_SIZE)
    problems = _Problems()
    arch = _str(obj, "architecture", where, problems)
    os_ = _str(obj, "os", where, problems)
    variant = _str(obj, "variant", where, problems, required=False)
    created = _str(obj, "created", where, problems, required=False)
    author = _str(obj, "author", where, problems, required=False)
    rootfs = obj.get("rootfs")
    diff_ids: list[Digest] = []
    rootfs_type = "layers"
    if not isinstance(rootfs, dict):
        problems.add(f"{where}.rootfs", "is required" if rootfs is None else "must be an object")
    else:
        rootfs_type = rootfs.get("type")  # type: ignore[assignment]
        if rootfs_type != "layers":
            problems.add(f"{where}.rootfs.type", f"must be 'layers', not {rootfs_type!r}")
        raw_ids = rootfs.get("diff_ids")
        if not isinstance(raw_ids, list):
            problems.add(f"{where}.rootfs.diff_ids", "must be a list")
        else:
            for i, raw in enumerate(raw_ids):
                try:
                    diff_ids.append(Digest.parse(raw))
                except InvalidArgument as e:
                    problems.add(f"{where}.rootfs.diff_ids[{i}]", str(e))
    run = obj.get("config") or {}
    if not isinstance(run, dict):
        problems.add(f"{where}.config", "must be an object")
        run = {}
    for key in _CONFIG_STRING_LISTS:
        value = run.get(key)
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(v, str) for v in value)):
            problems.add(f"{where}.config.{key}", "must be a list of strings")
    for key in _CONFIG_STRINGS:
        value = run.get(key)
        if value is not None and not isinstance(value, str):
            problems.add(f"{where}.config.{key}", "must be a string")
    for key in _CONFIG_OBJECTS:
        value = run.get(key)
        if value is not None and not isinstance(value, dict):
            problems.add(f"{where}.config.{key}", "must be an object")
    for i, item in enumerate(run.get("Env") or []):
        if isinstance(item, str) and "=" not in item:
            problems.add(f"{where}.config.Env[{i}]", f"{item!r} is not NAME=value")
    history = obj.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        problems.add(f"{where}.history", "must be a list of objects")
        history = []
    else:
        non_empty = sum(1 for h in history if not h.get("empty_layer"))
        if history and diff_ids and non_empty != len(diff_ids):
            problems.add(f"{where}.history", f"has {non_empty} entries with a layer but "
                                             f"rootfs.diff_ids has {len(diff_ids)}")
    problems.raise_if_any(where)
    assert arch is not None and os_ is not None
    return ImageConfig(arch, os_, RootFS(rootfs_type, tuple(diff_ids)), run, variant, created,
                       author, tuple(history), obj)


def check_manifest_against_config(manifest: Manifest, config: ImageConfig) -> None:
    """The manifest has one layer per diff_id of the config, and every layer is a layer."""
    problems = _Problems()
    if len(manifest.layers) != len(config.diff_ids):
        problems.add("manifest.layers", f"has {len(manifest.layers)} layers but the config's "
                                        f"rootfs.diff_ids has {len(config.diff_ids)}")
    for i, layer in enumerate(manifest.layers):
        if not is_layer(layer.media_type):
            problems.add(f"manifest.layers[{i}].mediaType",
                         f"{layer.media_type!r} is not a layer media type")
    problems.raise_if_any("image")


def select_platform(manifests: tuple[Descriptor, ...] | list[Descriptor],
                    wanted: Platform = DEFAULT_PLATFORM) -> list[Descriptor]:
    """Descriptors whose platform runs on ``wanted``, best first (stable otherwise)."""
    wanted = wanted.normalized()
    scored: list[tuple[int, int, Descriptor]] = []
    for i, desc in enumerate(manifests):
        if desc.platform is None or not wanted.matches(desc.platform):
            continue
        have = desc.platform.normalized()
        score = 0 if have.variant == wanted.variant else 1
        scored.append((score, i, desc))
    return [d for _, _, d in sorted(scored, key=lambda t: (t[0], t[1]))]
