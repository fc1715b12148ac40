"""OS-container templates: their options, how they boot and stop, the debian recipe's key,
and writing a template's files into a root file system that may hold hostile symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hutch.engine import templates
from hutch.common.signals import signal_number as _signal_number
from hutch.errors import InvalidArgument, NotFound
from hutch.images.templates import debian


def test_every_template_has_a_summary_and_parses_no_options_to_its_defaults() -> None:
    for name, t in templates.TEMPLATES.items():
        assert t.get("summary"), name
    assert templates.parse_options("busybox", []) == {}
    assert templates.parse_options("debian", []) == {
        "suite": "bookworm", "mirror": "http://deb.debian.org/debian", "include": "",
        "arch": ""}


def test_options_after_the_double_dash() -> None:
    o = templates.parse_options("debian", ["--suite", "trixie", "--include", "vim,less"])
    assert (o["suite"], o["include"]) == ("trixie", "vim,less")
    o = templates.parse_options("tar", ["--file", "/x.tar", "--stop-signal", "SIGUSR2"])
    assert templates.boot(templates.get("tar"), o) == (["/sbin/init"], "SIGUSR2")
    o = templates.parse_options("dir", ["--path", "/srv/root", "--init", "/bin/init --x"])
    assert templates.boot(templates.get("dir"), o) == (["/bin/init", "--x"], "SIGPWR")
    assert templates.boot(templates.get("debian"), {}) == (["/sbin/init"], "SIGPWR")
    assert templates.boot(templates.get("busybox"), {}) == (["/sbin/init"], "SIGUSR2")


@pytest.mark.parametrize("name,argv,wanted", [
    ("busybox", ["--suite", "x"], "unrecognized arguments: --suite x"),
    ("debian", ["--sweet", "bookworm"], "unrecognized arguments: --sweet"),
    ("tar", [], "the following arguments are required: --file"),
    ("dir", ["--path"], "expected one argument"),
])
def test_bad_options_are_refused_naming_them(name: str, argv: list[str], wanted: str) -> None:
    with pytest.raises(InvalidArgument, match=wanted) as e:
        templates.parse_options(name, argv)
    assert f"hutch create -t {name}" in str(e.value)


def test_boot_refuses_a_relative_init_and_an_unknown_signal() -> None:
    t = templates.get("dir")
    with pytest.raises(InvalidArgument, match="absolute path"):
        templates.boot(t, {"init": "sbin/init", "stop_signal": "SIGPWR"})
    with pytest.raises(InvalidArgument, match="--stop-signal SIGNOPE"):
        templates.boot(t, {"init": "/sbin/init", "stop_signal": "SIGNOPE"})


def test_unknown_template() -> None:
    with pytest.raises(NotFound, match="no such template: nope .*debian"):
        templates.get("nope")


def test_realtime_signals_by_name() -> None:
    import signal
    assert _signal_number("SIGRTMIN+3") == signal.SIGRTMIN + 3  # systemd's halt
    assert _signal_number("RTMAX-1") == signal.SIGRTMAX - 1
    assert _signal_number("SIGPWR") == signal.SIGPWR
    for bad in ("SIGRTMIN-1", "SIGRTMAX+1", "SIGRTMIN+99"):
        with pytest.raises(InvalidArgument):
            _signal_number(bad)


def test_debian_options_are_checked() -> None:
    ok = debian.DebianOptions(include=("vim", "less", "vim"), arch="amd64").checked()
    assert ok.include == ("less", "vim") and ok.packages == ("less", "procps",
                                                             "sysvinit-core", "vim")
    for bad, flag in ((debian.DebianOptions(suite="book worm"), "--suite"),
                      (debian.DebianOptions(suite="../x"), "--suite"),
                      (debian.DebianOptions(mirror="deb.debian.org"), "--mirror"),
                      (debian.DebianOptions(mirror="http://x/ y"), "--mirror"),
                      (debian.DebianOptions(include=("Bad_Name",)), "--include"),
                      (debian.DebianOptions(include=("a;rm",)), "--include"),
                      (debian.DebianOptions(arch="x86 64"), "--arch")):
        with pytest.raises(InvalidArgument, match=flag):
            bad.checked()


def test_debian_cache_key_covers_packages_not_the_mirror() -> None:
    base = debian.DebianOptions(arch="amd64")
    key = debian.cache_key(base)
    assert key.startswith("debian-bookworm-amd64-")
    assert debian.cache_key(debian.DebianOptions(arch="amd64", mirror="http://m/debian")) == key
    assert debian.cache_key(debian.DebianOptions(arch="amd64", include=("vim",))) != key
    assert debian.cache_key(debian.DebianOptions(arch="arm64")) != key
    assert debian.cache_key(debian.DebianOptions(arch="amd64", suite="trixie")) != key


def test_debian_inittab_is_made_for_a_container() -> None:
    lines = [x for x in debian.INITTAB.splitlines() if x and not x.startswith("#")]
    assert "pf::powerfail:/sbin/init 0" in lines  # hutch stop's SIGPWR halts
    gettys = [x for x in lines if "getty" in x]
    ttys = [next(w for w in g.split() if w in ("console", "tty1", "tty2")) for g in gettys]
    assert ttys == ["console", "tty1", "tty2"]
    assert not [x for x in lines if "getty" in x and "tty3" in x]
    assert templates.get("debian")["ttys"] == debian.TTYS == 2


def test_configure_writes_the_inittab_never_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/inittab").symlink_to(victim)
    debian._write(str(root), "etc/inittab", debian.INITTAB)
    assert victim.read_text() == "host\n"
    assert (root / "etc/inittab").read_text() == debian.INITTAB


def test_install_stays_inside_the_root(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "var").mkdir()
    # a hostile root file system: its /etc/hostname points at a host file, and a
    # directory on the way of a template file is an absolute symlink out
    (root / "etc/hostname").symlink_to(victim)
    (root / "var/www").symlink_to(tmp_path)
    template = {"files": {"var/www/index.html": "page\n", "etc/inittab": "::x\n"}}
    templates.install(template, str(root), "box")
    assert victim.read_text() == "host\n"
    assert not (tmp_path / "index.html").exists()
    assert (root / "etc/hostname").read_text() == "box\n"
    assert not (root / "etc/hostname").is_symlink()
    assert (root / "etc/inittab").read_text() == "::x\n"
    assert oct((root / "etc/inittab").stat().st_mode & 0o777) == oct(0o644)
    # the absolute symlink resolves inside the root: /var/www -> <root><tmp_path>
    inside = root / str(tmp_path).lstrip("/") / "index.html"
    assert inside.read_text() == "page\n"
    assert os.path.realpath(inside).startswith(str(root) + "/")
