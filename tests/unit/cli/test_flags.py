"""The hutch-runtime command line parser."""

from __future__ import annotations

import pytest

from hutch.cli.runtime import _command_line, parse_signal
from hutch.cli.flags import parse
from hutch.errors import InvalidArgument


def p(*argv: str):
    g, verbs = _command_line()
    return parse(g, verbs, list(argv))


def test_global_flags_before_the_verb():
    a = p("--root", "/r", "--log=/l", "--log-format", "json", "--debug", "state", "c1")
    assert (a.root, a.log, a.log_format, a.debug, a.verb, a.id) == \
        ("/r", "/l", "json", True, "state", "c1")


def test_create_flags_short_long_and_inline():
    a = p("create", "-b", "/b", "--pid-file=/p", "--no-pivot", "--preserve-fds", "2", "c1")
    assert (a.bundle, a.pid_file, a.no_pivot, a.preserve_fds, a.id) == ("/b", "/p", True, "2", "c1")
    assert a.console_socket is None


def test_flags_may_follow_the_id():
    a = p("delete", "c1", "--force")
    assert a.force and a.id == "c1"


def test_exec_keeps_the_command_verbatim():
    a = p("exec", "-e", "A=1", "--env", "B=2", "-t", "c1", "sh", "-c", "ls -l", "--cwd", "/x")
    assert a.env == ["A=1", "B=2"] and a.tty
    assert a.command == ["sh", "-c", "ls -l", "--cwd", "/x"]
    assert a.cwd is None


def test_exec_double_dash():
    assert p("exec", "c1", "--", "ls", "-l").command == ["ls", "-l"]


def test_kill_signal_is_optional():
    assert p("kill", "c1").signal is None
    a = p("kill", "--all", "c1", "KILL")
    assert a.all and a.signal == "KILL"


def test_ps_passes_ps_options_through():
    assert p("ps", "c1", "-o", "pid,comm").ps_args == ["-o", "pid,comm"]


@pytest.mark.parametrize("argv, words", [
    (["nosuch"], "unknown command"),
    (["create", "--nosuch", "c1"], "unknown flag --nosuch"),
    (["create"], "missing argument: id"),
    (["start", "a", "b"], "unexpected argument 'b'"),
    (["create", "c1", "--bundle"], "needs a value"),
])
def test_bad_command_lines_name_the_problem(argv, words):
    with pytest.raises(InvalidArgument, match=words):
        p(*argv)


@pytest.mark.parametrize("text, number", [("KILL", 9), ("SIGTERM", 15), ("9", 9),
                                          ("usr1", 10), ("SIGRTMIN+3", 37), ("RTMAX-1", 63)])
def test_signal_names(text, number):
    assert parse_signal(text) == number


def test_unknown_signal():
    with pytest.raises(InvalidArgument, match="SIGNOPE"):
        parse_signal("SIGNOPE")


def test_double_dash_before_the_id():
    a = p("exec", "--", "c1", "true", "-x")
    assert a.id == "c1" and a.command == ["true", "-x"]
    assert p("delete", "--", "-weird-id").id == "-weird-id"


def test_update_flags_become_linux_resources():
    from hutch.cli.runtime_verbs import update_resources
    a = p("update", "--memory", "10m", "--memory-swap=-1", "--cpu-quota", "20000",
          "--cpu-period", "100000", "--pids-limit", "7", "--cpuset-cpus", "0", "c1")
    assert update_resources(a) == {
        "cpu": {"quota": 20000, "period": 100000, "cpus": "0"},
        "memory": {"limit": 10 << 20, "swap": -1}, "pids": {"limit": 7}}


@pytest.mark.parametrize("text, size", [("1048576", 1048576), ("512k", 512 << 10),
                                        ("10M", 10 << 20), ("1g", 1 << 30), ("2gb", 2 << 30),
                                        ("-1", -1)])
def test_sizes(text, size):
    from hutch.cli.runtime_verbs import parse_size
    assert parse_size(text, "--memory") == size


def test_bad_size_names_the_flag():
    from hutch.cli.runtime_verbs import parse_size
    with pytest.raises(InvalidArgument, match="--memory 10x"):
        parse_size("10x", "--memory")
