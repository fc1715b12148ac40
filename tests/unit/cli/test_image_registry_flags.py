"""The flags of `hutch image pull/push` (cli/image_registry.py)."""

from __future__ import annotations

import pytest

from hutch.cli.image_registry import _parse, image_store_paths, pull_main
from hutch.errors import InvalidArgument


def test_flags_and_positionals() -> None:
    args = _parse("pull", ["-q", "--platform=linux/arm64", "--insecure-registry", "r:5000",
                           "--insecure-registry=s", "--auth-file", "/a.json", "app:1"], 1)
    assert args.quiet and args.platform == "linux/arm64"
    assert args.insecure_registry == ["r:5000", "s"] and args.auth_file == "/a.json"
    assert args.positional == ["app:1"]
    assert _parse("push", ["src", "--", "-dest"], 2).positional == ["src", "-dest"]


@pytest.mark.parametrize("verb, argv, message", [
    ("pull", ["--bogus", "x"], "unknown flag --bogus"),
    ("pull", ["-x"], "unknown flag -x"),
    ("pull", ["a", "b"], "unexpected argument 'b'"),
    ("pull", ["--platform"], "flag --platform needs a value"),
    ("push", ["--platform=linux/amd64", "x"], "unknown flag --platform"),
])
def test_bad_flags(verb: str, argv: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _parse(verb, argv, 1 if verb == "pull" else 2)


def test_errors_are_reported_not_raised(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pull_main(["Not/valid:ok!"], str(tmp_path)) == 1
    assert "hutch image pull: image reference" in capsys.readouterr().err
    assert pull_main(["--help"], str(tmp_path)) == 0
    assert "usage: hutch image pull" in capsys.readouterr().out
    content, names = image_store_paths(str(tmp_path))
    assert (content, names) == (str(tmp_path / "content"), str(tmp_path / "images.db"))
