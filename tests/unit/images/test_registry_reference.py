"""Image references, parsed and normalized as Docker does."""

from __future__ import annotations

import pytest

from hutch.common.digest import Digest
from hutch.errors import InvalidArgument
from hutch.images.registry.reference import (
    is_insecure_default,
    normalize,
    parse_reference,
)

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, registry, repository, tag, digest", [
    ("busybox", "docker.io", "library/busybox", "latest", None),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("user/app", "docker.io", "user/app", "latest", None),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
    ("index.docker.io/library/busybox:1", "docker.io", "library/busybox", "1", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/a/b/c:v2", "localhost:5000", "a/b/c", "v2", None),
    ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", None),
    ("registry.example/team/app:1.0-rc_1", "registry.example", "team/app", "1.0-rc_1", None),
    ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None),
    (f"app@{D}", "docker.io", "library/app", None, D),
    (f"host:5000/app:1@{D}", "host:5000", "app", "1", D),
    ("a.b-c/d-e--f/g.h__i", "a.b-c", "d-e--f/g.h__i", "latest", None),
    ("Upper/app", "Upper", "app", "latest", None),  # upper case: only a registry can
])
def test_parse_and_normalize(text: str, registry: str, repository: str, tag: str | None,
                             digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert ref.digest == (Digest.parse(digest) if digest else None)
    # The full form parses to itself.
    assert parse_reference(str(ref)) == ref


def test_forms() -> None:
    ref = parse_reference("busybox")
    assert str(ref) == "docker.io/library/busybox:latest" == normalize("busybox")
    assert ref.familiar == "busybox:latest"
    assert ref.name == "docker.io/library/busybox"
    assert ref.host == "registry-1.docker.io"  # where docker.io's API answers
    assert ref.object == "latest"
    assert parse_reference("user/app:2").familiar == "user/app:2"
    local = parse_reference(f"localhost:5000/app:1@{D}")
    assert local.host == "localhost:5000" and local.object == D
    assert local.familiar == f"localhost:5000/app:1@{D}"
    assert parse_reference("host:5000/app", default_tag=None).tag is None
    assert parse_reference("host:5000/app").with_tag("2").tag == "2"


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    (" busybox", "spaces"),
    ("Busybox", "must be lower case"),
    ("docker.io/Library/x", "must be lower case"),
    ("app:", "tag '' is not valid"),
    ("app:-x", "tag '-x' is not valid"),
    ("app:" + "t" * 129, "is not valid"),
    ("app@", "nothing after '@'"),
    ("app@sha256:abc", "64 lower-case hex"),
    ("app@md5:" + "a" * 32, "unsupported algorithm"),
    (":1", "repository name is missing"),
    ("a" * 64, "cannot be 64 hex digits"),
    ("a//b", "empty component"),
    ("host:5000/", "empty component"),
    ("host:5000/app_/x", "'app_' in the repository name is not valid"),
    ("-bad.host/app", "registry '-bad.host' is not a valid host"),
    ("host:port/app", "registry 'host:port' is not a valid host"),
    ("a_b.example/app", "registry 'a_b.example' is not a valid host"),
    ("r.example/" + "a" * 260, "longer than 255"),
])
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        parse_reference(text)
    assert "image reference" in str(info.value)


def test_insecure_defaults() -> None:
    assert is_insecure_default("localhost:5000")
    assert is_insecure_default("localhost")
    assert is_insecure_default("127.0.0.1:5000")
    assert is_insecure_default("[::1]:5000")
    assert not is_insecure_default("docker.io")
    assert not is_insecure_default("registry.example:5000")
    assert not is_insecure_default("localhost.example.com")
