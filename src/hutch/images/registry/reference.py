"""Image references, parsed and normalized as Docker does.

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*
    domain     := host [ ":" port ]      (or an IPv6 address in brackets)

The first component is a registry when it has a ``.`` or a ``:`` or is
``localhost`` (or has upper-case letters, which a repository cannot have);
otherwise the registry is docker.io, where a one-component name gets the
``library/`` prefix. A reference with neither tag nor digest means ``:latest``.
So ``busybox`` is ``docker.io/library/busybox:latest``. Stdlib only, so the
image store's name handling (hutch.images.reference) can defer to it cheaply.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hutch.common.digest import Digest
from hutch.errors import InvalidArgument

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
LEGACY_REGISTRIES = ("index.docker.io", "registry-1.docker.io")
DOCKER_HUB_API = "registry-1.docker.io"  # where docker.io's API answers
MAX_NAME = 255  # the repository name with its domain, as distribution/reference limits it
INSECURE_ENV = "HUTCH_INSECURE_REGISTRIES"  # more plain-http registries, comma separated

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9a-fA-F:.]+\])"
                     r"(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_HEX64 = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalized reference: ``registry/repository[:tag][@digest]``."""

    registry: str  # "docker.io", "localhost:5000", "[::1]:5000"
    repository: str  # "library/busybox"
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    @property
    def host(self) -> str:
        """The host[:port] where the registry's API answers (docker.io's is elsewhere)."""
        return DOCKER_HUB_API if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def hostname(self) -> str:
        """The host without its port (``[::1]`` keeps its brackets)."""
        if self.registry.startswith("["):
            return self.registry[:self.registry.index("]") + 1]
        return self.registry.rsplit(":", 1)[0]

    def with_tag(self, tag: str) -> Reference:
        return parse_reference(f"{self.name}:{tag}")

    def with_digest(self, digest: Digest | str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, Digest.parse(digest))

    @property
    def familiar(self) -> str:
        """The short form Docker shows: ``busybox:latest``, ``user/app:1``."""
        repo = self.repository
        if self.registry == DEFAULT_REGISTRY:
            repo = repo.removeprefix("library/") if repo.count("/") == 1 else repo
            base = repo
        else:
            base = self.name
        return base + self._suffix()

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def split_domain(name: str) -> tuple[str, str]:
    """``name`` (no tag or digest) -> (registry, repository), normalized as Docker does."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"
                  or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_REGISTRY, name
    if domain in LEGACY_REGISTRIES:
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def parse_reference(text: str, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse and normalize ``text``; InvalidArgument naming what is wrong.

    ``default_tag``: the tag given to a reference with neither tag nor digest
    (None: leave it without one, as for ``hutch push SRC DEST`` where DEST may
    take the source's tag).
    """
    if not isinstance(text, str) or not text:
        raise InvalidArgument("image reference is empty: expected NAME[:TAG][@DIGEST], "
                              "like busybox or registry.example:5000/app:1")
    if text != text.strip() or any(c.isspace() or not c.isprintable() for c in text):
        raise InvalidArgument(f"image reference {text!r} has spaces or control characters")
    where = f"image reference {text!r}"
    rest, at, digest_text = text.partition("@")
    digest: Digest | None = None
    if at:
        if not digest_text:
            raise InvalidArgument(f"{where}: nothing after '@' (expected a digest "
                                  "like sha256:<64 hex digits>)")
        try:
            digest = Digest.parse(digest_text)
        except InvalidArgument as e:
            raise InvalidArgument(f"{where}: {e}") from None
    # A tag is after the last ':' that comes after the last '/' (a port comes before it).
    tag: str | None = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidArgument(f"{where}: tag {tag!r} is not valid (1 to 128 letters, "
                                  "digits, '_', '.' or '-', not starting with '.' or '-')")
    if not rest:
        raise InvalidArgument(f"{where}: the repository name is missing")
    if _HEX64.fullmatch(rest):
        raise InvalidArgument(f"{where}: a repository name cannot be 64 hex digits "
                              "(to name an image by digest, write NAME@sha256:<digest>)")
    registry, repository = split_domain(rest)
    if not _DOMAIN.fullmatch(registry):
        raise InvalidArgument(f"{where}: registry {registry!r} is not a valid host[:port]")
    if repository.lower() != repository:
        raise InvalidArgument(f"{where}: the repository name {repository!r} must be lower "
                              "case")
    for part in repository.split("/"):
        if not part:
            raise InvalidArgument(f"{where}: the repository name {repository!r} has an "
                                  "empty component ('//' or a '/' at an end)")
        if not _COMPONENT.fullmatch(part):
            raise InvalidArgument(f"{where}: {part!r} in the repository name is not valid "
                                  "(lower-case letters and digits, separated by '.', '_', "
                                  "'__' or dashes)")
    if len(registry) + 1 + len(repository) > MAX_NAME:
        raise InvalidArgument(f"{where}: the name is longer than {MAX_NAME} characters")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry, repository, tag, digest)


def is_insecure_default(registry: str) -> bool:
    """Registries spoken to over plain http unless configured otherwise: this machine's."""
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") \
        else registry[:registry.index("]") + 1]
    return host in ("localhost", "[::1]") or host.startswith("127.")


def insecure_registries(extra: Iterable[str] = ()) -> list[str]:
    """Registries spoken to over plain http besides this machine's: ``extra``
    (``--insecure-registry``) and those in $HUTCH_INSECURE_REGISTRIES."""
    listed = os.environ.get(INSECURE_ENV, "").replace(",", " ").split()
    return [*extra, *listed]


def names_registry(text: str) -> bool:
    """Does ``text`` name its registry (``host[:port]/...``), rather than imply docker.io?"""
    name = text.partition("@")[0]
    first, slash, _ = name.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost"
                            or first.lower() != first)


def normalize(text: str) -> str:
    """The canonical full form: ``busybox`` -> ``docker.io/library/busybox:latest``."""
    return str(parse_reference(text))
