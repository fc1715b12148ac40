"""The flags of `hutch image pull/push` (cli/image_registry.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_the_default_root_is_the_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    from hutch.cli.image_registry import instance_root
    from hutch.engine.paths import Layout
    monkeypatch.delenv("HUTCH_ROOT", raising=False)
    assert instance_root(None) == Layout(None).root
    monkeypatch.setenv("HUTCH_ROOT", "/srv/h")
    assert instance_root(None) == Layout(None).root == "/srv/h"
    assert instance_root("rel") == os.path.abspath("rel")


def test_a_pull_imports_neither_the_engine_nor_rich_nor_argparse(tmp_path: Path) -> None:
    # Start-up is most of a small pull: what it imports is what it waits for. A
    # registry that is not there (port 1) ends the pull after its first request.
    probe = ("import sys\n"
             "from hutch.cli.image_registry import instance_root\n"
             "from hutch.cli.main import main\n"
             "instance_root(None)\n"
             f"code = main(['image', '--root', {str(tmp_path)!r}, 'pull', '-q', "
             "'127.0.0.1:1/nobody/here:1'])\n"
             "print(code, sorted(m for m in ('hutch.engine', 'rich', 'argparse') "
             "if m in sys.modules))\n")
    env = {k: v for k, v in os.environ.items() if k != "HUTCH_ROOT"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert "cannot reach 127.0.0.1:1" in out.stderr
    assert out.stdout.split(None, 1) == ["1", "[]\n"]
