"""Which images may be used: a per-registry trust policy (rkt's trust, containers-policy's spirit).

The policy is a JSON file (``<root>/policy.json``, or ``--policy FILE``)::

    {
      "default": "insecureAcceptAnything",
      "registries": {
        "example.org": {"keys": ["trusted.pub"]},
        "example.org/untrusted": "reject",
        "docker.io/library": "insecureAcceptAnything"
      }
    }

Each key of ``registries`` is a registry, or a registry and a repository prefix,
matched on whole path components against the normalized reference
(``docker.io/library/busybox``); the longest match wins, ``default`` applies
otherwise. A requirement is ``"insecureAcceptAnything"`` (any image),
``"reject"`` (none), or ``{"keys": [...]}``: at least one signature of the
image's manifest digest by one of these ed25519 public keys (PEM files, relative
to the policy file's directory, or inline PEM text). With no policy file every
image is accepted.

``check(reference, manifest_digest, signatures, policy)`` raises PolicyDenied
naming the reference, the rule and what would satisfy it. Stdlib only (key
checks go through ``signing``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hutch.common.digest import Digest
from hutch.errors import HutchError, InvalidArgument
from hutch.images.registry.reference import parse_reference
from hutch.images.signing import Signature

ACCEPT = "insecureAcceptAnything"
REJECT = "reject"
SIGNED = "signedBy"
POLICY_FILE = "policy.json"


class PolicyDenied(HutchError):
    """The trust policy refuses the image."""

    http_status = 403


@dataclass(frozen=True)
class Requirement:
    kind: str  # ACCEPT, REJECT or SIGNED
    keys: tuple[bytes, ...] = ()  # raw ed25519 public keys, for SIGNED
    scope: str = "default"  # the policy entry it came from


@dataclass
class Policy:
    default: Requirement = field(default_factory=lambda: Requirement(ACCEPT))
    scopes: dict[str, Requirement] = field(default_factory=dict)
    path: str | None = None

    @classmethod
    def load(cls, path: str | None) -> Policy:
        """The policy in ``path``; a missing file is the accept-everything policy."""
        if path is None or not os.path.exists(path):
            return cls(path=path)
        try:
            with open(path, "rb") as f:
                obj = json.loads(f.read(1 << 20))
        except ValueError as e:
            raise InvalidArgument(f"policy {path} is not valid JSON: {e}") from None
        return cls.parse(obj, path)

    @classmethod
    def parse(cls, obj: Any, path: str | None = None) -> Policy:
        where = f"policy {path}" if path else "policy"
        if not isinstance(obj, dict):
            raise InvalidArgument(f"{where}: must be a JSON object")
        unknown = set(obj) - {"default", "registries"}
        if unknown:
            raise InvalidArgument(f"{where}: unknown fields {', '.join(sorted(unknown))} "
                                  "(known: default, registries)")
        base = os.path.dirname(os.path.abspath(path)) if path else None
        default = _requirement(obj.get("default", ACCEPT), f"{where}: default", "default", base)
        registries = obj.get("registries") or {}
        if not isinstance(registries, dict):
            raise InvalidArgument(f"{where}: registries must be an object")
        scopes = {}
        for scope, value in registries.items():
            if not isinstance(scope, str) or not scope or scope != scope.strip("/"):
                raise InvalidArgument(f"{where}: registries key {scope!r} must be a "
                                      "registry or registry/repository prefix")
            scopes[scope] = _requirement(value, f"{where}: registries[{scope!r}]", scope, base)
        return cls(default, scopes, path)

    def requirement(self, reference: str) -> Requirement:
        """The rule for ``reference`` (longest registry/repository prefix match)."""
        name = parse_reference(reference).name
        best, best_len = self.default, -1
        for scope, req in self.scopes.items():
            if (name == scope or name.startswith(scope + "/")) and len(scope) > best_len:
                best, best_len = req, len(scope)
        return best

    def polices(self, reference: str) -> bool:
        """Does the policy ask anything of this reference (a rule other than accept)?"""
        return self.requirement(reference).kind != ACCEPT

    def check(self, reference: str, manifest_digest: Digest | str,
              signatures: list[Signature]) -> Requirement:
        """Raise PolicyDenied unless the policy accepts ``reference`` at that digest."""
        from hutch.images import signing
        req = self.requirement(reference)
        rule = f"the policy{' ' + self.path if self.path else ''} ({req.scope!r})"
        if req.kind == ACCEPT:
            return req
        if req.kind == REJECT:
            raise PolicyDenied(f"image {reference} is refused by {rule}: it rejects every "
                               "image from there")
        digest = Digest.parse(manifest_digest)
        for sig in signatures:
            for key in req.keys:
                if signing.verify(sig, digest, key):
                    return req
        wanted = ", ".join(sorted({signing.key_id(k) for k in req.keys}))
        if not signatures:
            raise PolicyDenied(f"image {reference} ({digest}) is not signed, and {rule} "
                               f"requires a signature by a trusted key (key id(s) {wanted}); "
                               "sign it (hutch image sign, then push it with its "
                               "signatures) or import its .sig")
        raise PolicyDenied(f"image {reference} ({digest}) has {len(signatures)} signature(s), "
                           f"but none is a valid one by a key that {rule} trusts "
                           f"(required: key id(s) {wanted}; found: key id(s) "
                           f"{', '.join(sorted({s.key_id for s in signatures}))})")


def _requirement(value: Any, where: str, scope: str, base: str | None) -> Requirement:
    if value == ACCEPT or value == "accept":
        return Requirement(ACCEPT, scope=scope)
    if value == REJECT:
        return Requirement(REJECT, scope=scope)
    if isinstance(value, dict):
        kind = value.get("type", SIGNED)
        keys = value.get("keys")
        if kind != SIGNED or not isinstance(keys, list) or not keys \
                or not all(isinstance(k, str) for k in keys):
            raise InvalidArgument(f"{where}: expected {{\"keys\": [PUBLIC KEY FILES]}} "
                                  f"(type {SIGNED})")
        from hutch.images import signing
        return Requirement(SIGNED, tuple(signing.public_key_bytes(k, base) for k in keys),
                           scope)
    raise InvalidArgument(f"{where}: {value!r} is not a requirement; use "
                          f"{ACCEPT!r}, {REJECT!r} or {{\"keys\": [PUBLIC KEY FILES]}}")


def check(reference: str, manifest_digest: Digest | str, signatures: list[Signature],
          policy: Policy | str | None = None) -> Requirement:
    """``Policy.check`` for a policy object or file path (None: accept everything)."""
    if not isinstance(policy, Policy):
        policy = Policy.load(policy)
    return policy.check(reference, manifest_digest, signatures)


def enforce(reference: str, manifest_digest: Digest | str, *, policy_path: str,
            signatures_dir: str) -> Requirement:
    """For a pull: check ``reference`` at ``manifest_digest`` against the instance's policy
    file with the signatures stored for it (``<root>/policy.json``, ``<root>/signatures``),
    before the name is written. Raises PolicyDenied."""
    from hutch.images.signing import SignatureStore
    policy = Policy.load(policy_path)
    if not policy.polices(reference):
        return policy.requirement(reference)
    return policy.check(reference, manifest_digest,
                        SignatureStore(signatures_dir).list(manifest_digest))


def verifier(policy_path: str | None, signatures_dir: str) -> Callable[[Any, Digest], None]:
    """``enforce`` as the registry pull's ``verify`` hook: the policy is read now (a
    broken policy file fails before anything is fetched), the signatures at the check."""
    from hutch.images.signing import SignatureStore
    policy = Policy.load(policy_path)
    store = SignatureStore(signatures_dir)

    def verify(reference: Any, digest: Digest) -> None:
        name = str(reference)
        if policy.polices(name):
            policy.check(name, digest, store.list(digest))
    return verify


def default_path(root: str) -> str:
    return os.path.join(root, POLICY_FILE)
