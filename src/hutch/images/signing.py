"""Signatures of images: an ed25519 signature over an image's manifest digest.

What is signed is ``PAYLOAD_PREFIX + "sha256:<hex>"`` (the manifest digest, with a
fixed context string, so a signature made for hutch images means nothing
elsewhere). A manifest names its config and every layer by digest, so the
signature covers the whole image. A signature is a small JSON document::

    {"schema": "hutch.signature.v1", "manifest": "sha256:...",
     "key_id": "<first 16 hex of sha256(raw public key)>",
     "public_key": "<base64 raw 32 bytes>", "signature": "<base64 64 bytes>",
     "created": "2024-01-01T00:00:00Z"}

Keys are PEM files: the private key PKCS#8 (``hutch image keygen --out KEY``
writes KEY, mode 0600, and KEY.pub), the public key SubjectPublicKeyInfo.

``SignatureStore`` keeps them below the instance root, one JSON list per
manifest digest (``<root>/signatures/sha256/<hex>.json``); a detached ``.sig``
file carries the same list beside an exported archive.

The ``cryptography`` package is imported here only, and only when a key is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from hutch.common.atomicfile import write_atomic
from hutch.common.digest import Digest
from hutch.errors import InvalidArgument, NotFound

SCHEMA = "hutch.signature.v1"
PAYLOAD_PREFIX = b"hutch image signature v1\nmanifest "
MAX_SIG_FILE = 1 << 20


@dataclass(frozen=True, slots=True)
class Signature:
    manifest: Digest
    key_id: str
    public_key: bytes  # raw 32 bytes
    signature: bytes  # raw 64 bytes
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "manifest": str(self.manifest), "key_id": self.key_id,
                "public_key": base64.b64encode(self.public_key).decode(),
                "signature": base64.b64encode(self.signature).decode(),
                "created": self.created}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "signature") -> Signature:
        if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
            raise InvalidArgument(f"{where}: not a hutch signature (schema must be {SCHEMA!r})")
        try:
            public_key = base64.b64decode(obj["public_key"], validate=True)
            signature = base64.b64decode(obj["signature"], validate=True)
            manifest = Digest.parse(obj["manifest"])
        except (KeyError, TypeError, binascii.Error) as e:
            raise InvalidArgument(f"{where}: missing or malformed field ({e})") from None
        if len(public_key) != 32 or len(signature) != 64:
            raise InvalidArgument(f"{where}: an ed25519 public key is 32 bytes and a "
                                  "signature 64")
        return cls(manifest, key_id(public_key), public_key, signature,
                   str(obj.get("created") or ""))


def payload(manifest: Digest | str) -> bytes:
    return PAYLOAD_PREFIX + str(Digest.parse(manifest)).encode()


def key_id(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


# --- keys -----------------------------------------------------------------------------------

def _crypto():  # type: ignore[no-untyped-def]
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover
        raise NotFound("signing needs the Python package cryptography "
                       "(pip install cryptography)") from None
    return serialization, ed25519


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(64 << 10)
    except FileNotFoundError:
        raise NotFound(f"{what} {path} does not exist") from None
    except OSError as e:
        raise InvalidArgument(f"cannot read {what} {path}: {e.strerror}") from None


def generate_key(out: str) -> tuple[str, str]:
    """Write a new key pair: ``out`` (private, 0600) and ``out.pub``; returns both paths."""
    serialization, ed25519 = _crypto()
    pub_path = out + ".pub"
    for p in (out, pub_path):
        if os.path.exists(p):
            raise InvalidArgument(f"{p} exists already: choose another --out or remove it")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    with open(pub_path, "wb") as f:
        f.write(public)
    return out, pub_path


def load_private_key(path: str) -> Any:
    serialization, ed25519 = _crypto()
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise InvalidArgument(f"private key {path}: not an unencrypted PEM private key "
                              f"({e})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InvalidArgument(f"private key {path}: an ed25519 key is needed, "
                              f"not {type(key).__name__}")
    return key


def public_key_bytes(text_or_path: str, base: str | None = None) -> bytes:
    """The raw 32 bytes of an ed25519 public key given as PEM text or a PEM file path
    (relative to ``base``)."""
    serialization, ed25519 = _crypto()
    if "-----BEGIN" in text_or_path:
        data, what = text_or_path.encode(), "an inline public key"
    else:
        path = text_or_path if os.path.isabs(text_or_path) or base is None \
            else os.path.join(base, text_or_path)
        data, what = _read(path, "public key"), f"public key {path}"
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise InvalidArgument(f"{what}: not a PEM public key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise InvalidArgument(f"{what}: an ed25519 key is needed, not {type(key).__name__}")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- sign and verify ------------------------------------------------------------------------

def sign(manifest: Digest | str, private_key_path: str) -> Signature:
    serialization, _ = _crypto()
    key = load_private_key(private_key_path)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    d = Digest.parse(manifest)
    return Signature(d, key_id(raw), raw, key.sign(payload(d)),
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def verify(sig: Signature, manifest: Digest | str, public_key: bytes | None = None) -> bool:
    """Is ``sig`` a valid signature of ``manifest`` (by ``public_key``, when given)?"""
    from cryptography.exceptions import InvalidSignature
    _, ed25519 = _crypto()
    if sig.manifest != Digest.parse(manifest):
        return False
    if public_key is not None and public_key != sig.public_key:
        return False
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(sig.public_key).verify(
            sig.signature, payload(manifest))
    except (InvalidSignature, ValueError):
        return False
    return True


# --- files and the store --------------------------------------------------------------------

def dumps(sigs: list[Signature]) -> bytes:
    return json.dumps([s.to_dict() for s in sigs], indent=1).encode() + b"\n"


def loads(data: bytes, where: str) -> list[Signature]:
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise InvalidArgument(f"{where} is not valid JSON: {e}") from None
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list):
        raise InvalidArgument(f"{where}: expected a list of signatures")
    return [Signature.from_dict(o, f"{where}[{i}]") for i, o in enumerate(obj)]


def read_file(path: str) -> list[Signature]:
    data = _read(path, "signature file")
    if len(data) > MAX_SIG_FILE:
        raise InvalidArgument(f"signature file {path} is larger than {MAX_SIG_FILE} bytes")
    return loads(data, f"signature file {path}")


class SignatureStore:
    """Signatures by manifest digest, below ``root`` (``<root>/sha256/<hex>.json``)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def _path(self, manifest: Digest | str) -> str:
        d = Digest.parse(manifest)
        return os.path.join(self.root, d.algorithm, d.hex + ".json")

    def list(self, manifest: Digest | str) -> list[Signature]:
        path = self._path(manifest)
        if not os.path.exists(path):
            return []
        return read_file(path)

    def add(self, sigs: list[Signature]) -> int:
        """Keep ``sigs`` (each under its own manifest); returns how many were new."""
        import fcntl
        os.makedirs(self.root, mode=0o755, exist_ok=True)
        with open(os.path.join(self.root, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two signers at once lose nothing
            return self._add(sigs)

    def _add(self, sigs: list[Signature]) -> int:
        added = 0
        for manifest in {s.manifest for s in sigs}:
            have = self.list(manifest)
            known = {(s.public_key, s.signature) for s in have}
            new = []
            for s in sigs:
                if s.manifest == manifest and (s.public_key, s.signature) not in known:
                    known.add((s.public_key, s.signature))
                    new.append(s)
            if not new:
                continue
            path = self._path(manifest)
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            write_atomic(path, dumps(have + new))
            added += len(new)
        return added

    def remove(self, manifest: Digest | str) -> None:
        try:
            os.unlink(self._path(manifest))
        except FileNotFoundError:
            pass

    def digests(self) -> set[Digest]:
        out: set[Digest] = set()
        if not os.path.isdir(self.root):
            return out
        for alg in os.listdir(self.root):
            if not os.path.isdir(os.path.join(self.root, alg)):
                continue
            for name in os.listdir(os.path.join(self.root, alg)):
                if name.endswith(".json"):
                    try:
                        out.add(Digest(alg, name[:-5]))
                    except InvalidArgument:
                        continue
        return out
