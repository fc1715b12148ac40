"""Image signatures in a registry, beside the image they sign (cosign's tag scheme).

The signatures of an image (hutch.images.signing: ed25519 over the digest of the
manifest or index its name points at) travel as a small OCI artifact in the
image's own repository, tagged after that digest::

    <registry>/<repository>:sha256-<hex>.sig

The artifact is an OCI image manifest (image-spec 1.1's artifact form)::

    {"schemaVersion": 2,
     "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "artifactType": "application/vnd.hutch.signature.v1+json",
     "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:44136fa3...", "size": 2},          (the blob "{}")
     "layers": [{"mediaType": "application/vnd.hutch.signature.v1+json",
                 "digest": "sha256:...", "size": N}],
     "subject": {<the signed manifest's or index's descriptor>},
     "annotations": {"io.hutch.signature.manifest": "sha256:<hex>"}}

Media types:

- ``application/vnd.hutch.signature.v1+json`` (SIGNATURE_TYPE): the artifact's
  ``artifactType`` and its one layer's media type. The layer is the signature
  document: a JSON list of signatures, each ``{"schema": "hutch.signature.v1",
  "manifest", "key_id", "public_key", "signature", "created"}`` (signing.dumps,
  the same list a detached ``.sig`` file holds).
- ``application/vnd.oci.empty.v1+json``: the config, the empty JSON object, as
  the image spec asks of an artifact that has no config of its own.
- ``subject`` points at the signed image (OCI 1.1 referrers), for registries that
  index it; the tag is what hutch looks for, so registries without the referrers
  API (distribution 2.x) work too.

A push merges with what the registry already holds (two signers one after the
other both keep theirs). A pull treats a 404 for the tag as "unsigned"; each
signature fetched must claim the digest it is filed under and verify with its
own embedded key, else it is dropped and reported, never stored. Whether a
key is *trusted* is the policy's question (images/policy.py), not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hutch.common.digest import Digest
from hutch.errors import InvalidArgument, NotFound
from hutch.images import signing
from hutch.images.registry.client import RegistryClient
from hutch.oci.image_spec import (
    OCI_EMPTY,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    parse_manifest,
)

SIGNATURE_TYPE = "application/vnd.hutch.signature.v1+json"
EMPTY_CONFIG = b"{}"
ANNOTATION_SIGNED = "io.hutch.signature.manifest"
MAX_DOCUMENT = signing.MAX_SIG_FILE


def signature_tag(digest: Digest | str) -> str:
    """``sha256-<hex>.sig``: the tag of the signatures of ``digest``."""
    d = Digest.parse(digest)
    return f"{d.algorithm}-{d.hex}.sig"


@dataclass
class FetchedSignatures:
    digest: Digest  # what they sign
    valid: list[signing.Signature] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why each dropped one was dropped
    found: bool = False  # the registry has the tag
    error: str | None = None  # fetching them failed (the pull goes on without them)

    def notes(self, repository: str) -> list[str]:
        """What a refusal should say about them."""
        out = []
        if self.error:
            out.append(f"fetching its signatures failed: {self.error}")
        elif not self.found:
            out.append(f"the registry has no signatures for it (no tag "
                       f"{repository}:{signature_tag(self.digest)})")
        else:
            ids = sorted({s.key_id for s in self.valid})
            out.append(f"the registry has {len(self.valid)} valid signature(s) for it"
                       + (f", by key id(s) {', '.join(ids)}" if ids else ""))
        out += [f"dropped an invalid signature: {r}" for r in self.rejected]
        return out


def build_artifact(signed: Descriptor, sigs: Sequence[signing.Signature]
                   ) -> tuple[bytes, bytes]:
    """(manifest, document): the artifact carrying ``sigs`` of the image ``signed``."""
    wrong = [s for s in sigs if s.manifest != signed.digest]
    if wrong:
        raise InvalidArgument(f"a signature of {wrong[0].manifest} cannot be filed under "
                              f"{signed.digest}")
    document = signing.dumps(list(sigs))
    config = Descriptor(OCI_EMPTY, Digest.from_bytes(EMPTY_CONFIG), len(EMPTY_CONFIG))
    layer = Descriptor(SIGNATURE_TYPE, Digest.from_bytes(document), len(document))
    subject = Descriptor(signed.media_type, signed.digest, signed.size)
    manifest = Manifest(config, (layer,), OCI_MANIFEST, artifact_type=SIGNATURE_TYPE,
                        subject=subject,
                        annotations={ANNOTATION_SIGNED: str(signed.digest)})
    return manifest.to_json(), document


def parse_artifact(data: bytes, media_type: str, where: str) -> Descriptor:
    """The signature document's descriptor in an artifact manifest; InvalidArgument
    when it is not a hutch signature artifact."""
    manifest = parse_manifest(data, media_type)
    kind = manifest.artifact_type or manifest.config.media_type
    if kind != SIGNATURE_TYPE:
        raise InvalidArgument(f"{where} is not a hutch signature artifact (artifactType "
                              f"{kind!r}, expected {SIGNATURE_TYPE!r})")
    docs = [layer for layer in manifest.layers if layer.media_type == SIGNATURE_TYPE]
    if len(docs) != 1:
        raise InvalidArgument(f"{where}: expected one layer of type {SIGNATURE_TYPE}, found "
                              f"{len(docs)}")
    if docs[0].size > MAX_DOCUMENT:
        raise InvalidArgument(f"{where}: the signature document has {docs[0].size} bytes, "
                              f"more than {MAX_DOCUMENT}")
    return docs[0]


def check(digest: Digest, sigs: Sequence[signing.Signature],
          result: FetchedSignatures) -> None:
    """Sort ``sigs`` into ``result``: valid (claim ``digest``, verify with their own key)
    or rejected (with the reason)."""
    seen = {(s.public_key, s.signature) for s in result.valid}
    for s in sigs:
        if s.manifest != digest:
            result.rejected.append(f"key {s.key_id}: signs {s.manifest}, not {digest}")
        elif not signing.verify(s, digest):
            result.rejected.append(f"key {s.key_id}: the signature does not verify")
        elif (s.public_key, s.signature) not in seen:
            seen.add((s.public_key, s.signature))
            result.valid.append(s)


def fetch(client: RegistryClient, repository: str, digest: Digest) -> FetchedSignatures:
    """The signatures the registry holds for ``digest`` in ``repository`` (none: a 404)."""
    tag = signature_tag(digest)
    where = f"signatures {repository}:{tag}"
    result = FetchedSignatures(digest)
    try:
        fetched = client.get_manifest(repository, tag)
    except NotFound:
        return result
    result.found = True
    doc = parse_artifact(fetched.data, fetched.media_type, where)
    data = client.read_blob(repository, doc, MAX_DOCUMENT)
    check(digest, signing.loads(data, where), result)
    return result


def push(client: RegistryClient, repository: str, signed: Descriptor,
         sigs: Sequence[signing.Signature]) -> int:
    """Put ``sigs`` of image ``signed`` beside it in ``repository``, with those already
    there (valid ones); returns how many the registry now holds."""
    have = fetch(client, repository, signed.digest)
    merged = FetchedSignatures(signed.digest, list(have.valid))
    check(signed.digest, sigs, merged)
    if merged.rejected:
        raise InvalidArgument(f"cannot push the signatures of {signed.digest}: "
                              + "; ".join(merged.rejected))
    if have.found and len(merged.valid) == len(have.valid) and not have.rejected:
        return len(merged.valid)  # nothing new
    manifest, document = build_artifact(signed, merged.valid)
    for blob in (EMPTY_CONFIG, document):
        d = Digest.from_bytes(blob)
        if client.blob_size(repository, d, push=True) != len(blob):
            client.upload_blob(repository, d, len(blob), [blob], chunked=False)
    client.put_manifest(repository, signature_tag(signed.digest), manifest, OCI_MANIFEST)
    return len(merged.valid)


__all__ = ["SIGNATURE_TYPE", "FetchedSignatures", "build_artifact", "fetch", "parse_artifact",
           "push", "signature_tag"]
