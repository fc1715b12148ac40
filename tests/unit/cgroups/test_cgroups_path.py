"""resolve_path: the OCI linux.cgroupsPath rule."""

from __future__ import annotations

import pytest

from hutch.cgroups import resolve_path
from hutch.cgroups.path import normalize, place
from hutch.errors import InvalidArgument


@pytest.mark.parametrize(("given", "own", "expected"), [
    (None, "/", "/hutch/abc"),
    ("", "/", "/hutch/abc"),
    (None, "/user.slice/session-1.scope", "/user.slice/session-1.scope/hutch/abc"),
    ("a/b", "/", "/a/b"),
    ("a/b", "/process_api/123", "/process_api/123/a/b"),
    ("a/b", "/process_api/123/", "/process_api/123/a/b"),
    ("./a//b/", "/x", "/x/a/b"),
    ("/a/b", "/process_api/123", "/a/b"),
    ("/a//./b/", "/x", "/a/b"),
    ("/machine.slice/x:y", "/", "/machine.slice/x:y"),  # colons in a real path are fine
    ("a:b", "/", "/a:b"),
])
def test_resolve(given: str | None, own: str, expected: str) -> None:
    assert resolve_path(given, "abc", own=own) == expected


def test_default_own_is_read_from_proc() -> None:
    # whatever this host is, a relative path lands below our own cgroup
    assert resolve_path("x/y", "abc").endswith("/x/y")
    assert resolve_path("/x/y", "abc") == "/x/y"


@pytest.mark.parametrize("bad", ["../x", "a/../../b", "/a/..", "..", "/", ".", "./", "//",
                                 "system.slice:docker:abc", "user.slice:hutch:x",
                                 "a\nb", "a\0b"])
def test_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        resolve_path(bad, "abc", own="/")


def test_systemd_syntax_message_says_what_to_do() -> None:
    with pytest.raises(InvalidArgument, match="slice:prefix:name.*hutch/<id>"):
        normalize("system.slice:docker:abc", "abc")


@pytest.mark.parametrize("bad_id", ["", ".", "..", "a/b", "a\nb"])
def test_bad_container_id(bad_id: str) -> None:
    with pytest.raises(InvalidArgument):
        resolve_path(None, bad_id, own="/")


def test_normalize_keeps_relative_and_absolute_apart() -> None:
    assert normalize("a/b", "x") == "a/b"
    assert normalize("/a/b", "x") == "/a/b"
    assert normalize(None, "x") == "hutch/x"
    assert place("hutch/x", "/") == "/hutch/x"
    assert place("/abs", "/own") == "/abs"
