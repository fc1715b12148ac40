"""terminal: true. The pty master comes over --console-socket (runc's protocol: one
SCM_RIGHTS message on a unix stream socket), or ``run`` in the foreground on a tty."""

from __future__ import annotations

import os
import select
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hutch.testing.bundle import Bundle

BundleFactory = Callable[..., Bundle]


class ConsoleReceiver:
    """A unix socket server like runc's recvtty: accepts one connection and takes the
    file descriptor it carries."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.server.settimeout(10)
        self.master: int | None = None

    def receive(self) -> int:
        conn, _ = self.server.accept()
        with conn:
            conn.settimeout(10)
            _, fds, _, _ = socket.recv_fds(conn, 4096, 4)
        assert len(fds) == 1, fds
        self.master = fds[0]
        return self.master

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
        self.server.close()


@pytest.fixture
def console() -> Iterator[ConsoleReceiver]:
    d = tempfile.mkdtemp(prefix="hutch-tty-")  # short: a unix socket path has 108 bytes
    receiver = ConsoleReceiver(os.path.join(d, "console.sock"))
    yield receiver
    receiver.close()
    os.unlink(receiver.path)
    os.rmdir(d)


def read_until(fd: int, wanted: bytes, timeout: float = 5.0) -> bytes:
    """Read ``fd`` until ``wanted`` appears; everything read so far."""
    got = b""
    deadline = time.monotonic() + timeout
    while wanted not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{wanted!r} did not appear; read {got!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"EOF before {wanted!r}; read {got!r}")
            got += chunk
    return got


def tty_bundle(bundle: BundleFactory, args: list[str], **config: object) -> Bundle:
    b = bundle(args)
    b.config["process"]["terminal"] = True
    b.config["process"].update(config)
    b.write()
    return b


def create_with_console(ctr, b: Bundle, console: ConsoleReceiver) -> int:
    pid = ctr.create(b, None, "--console-socket", console.path)
    console.receive()
    return pid


def test_console_socket_gets_a_working_pty(ctr, bundle: BundleFactory,
                                           console: ConsoleReceiver) -> None:
    b = tty_bundle(bundle, ["sh"])
    create_with_console(ctr, b, console)
    assert console.master is not None and os.isatty(console.master)
    ctr.runtime.run("start", ctr.id)
    os.write(console.master, b"echo hi-$((1+2))\n")
    read_until(console.master, b"hi-3")
    os.write(console.master, b"exit 3\n")
    ctr.wait_stopped()


def test_dev_console_is_the_pty(ctr, bundle: BundleFactory, console: ConsoleReceiver) -> None:
    b = tty_bundle(bundle, ["sh", "-c", "stat -L -c 'dev=%t:%T' /dev/console /proc/self/fd/0 "
                                        "/proc/self/fd/1 /proc/self/fd/2; tty; echo done"])
    create_with_console(ctr, b, console)
    ctr.runtime.run("start", ctr.id)
    out = read_until(console.master, b"done").decode()
    devs = [line.strip() for line in out.splitlines() if line.startswith("dev=")]
    assert len(devs) == 4 and len(set(devs)) == 1, out
    assert devs[0].startswith("dev=88:"), out  # 136: a Unix98 pty slave
    assert "/dev/pts/" in out or "/dev/console" in out, out


def test_console_size(ctr, bundle: BundleFactory, console: ConsoleReceiver) -> None:
    b = tty_bundle(bundle, ["sh", "-c", "echo size=$(stty size)"],
                   consoleSize={"height": 33, "width": 101})
    create_with_console(ctr, b, console)
    ctr.runtime.run("start", ctr.id)
    assert b"size=33 101" in read_until(console.master, b"size=33 101")


def test_terminal_is_the_controlling_tty(ctr, bundle: BundleFactory,
                                         console: ConsoleReceiver) -> None:
    b = tty_bundle(bundle, ["sh", "-c", "cat /proc/1/stat; echo done"])
    create_with_console(ctr, b, console)
    ctr.runtime.run("start", ctr.id)
    out = read_until(console.master, b"done").decode()
    stat = next(line for line in out.splitlines() if line.startswith("1 "))
    fields = stat.rsplit(")", 1)[1].split()
    pgrp, session, tty_nr, tpgid = (int(f) for f in fields[2:6])
    assert os.major(tty_nr) == 136 and session == 1 and tpgid == pgrp == 1, stat


def test_terminal_without_console_socket_is_refused(ctr, bundle: BundleFactory) -> None:
    b = tty_bundle(bundle, ["sh"])
    res = ctr.runtime.run("create", "--bundle", b.path, ctr.id, check=False)
    assert res.returncode != 0
    assert "console" in res.stderr and "socket" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


def test_console_socket_without_terminal_is_refused(ctr, bundle: BundleFactory,
                                                    console: ConsoleReceiver) -> None:
    b = bundle(["true"])
    res = ctr.runtime.run("create", "--console-socket", console.path, "--bundle", b.path,
                          ctr.id, check=False)
    assert res.returncode != 0
    assert "console" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


def test_console_socket_that_does_not_exist(ctr, bundle: BundleFactory,
                                            tmp_path: Path, cgroups_path: str) -> None:
    b = tty_bundle(bundle, ["sh"])
    b.config["linux"]["cgroupsPath"] = cgroups_path
    b.write()
    missing = tmp_path / "nobody-listens.sock"
    res = ctr.runtime.run("create", "--console-socket", missing, "--bundle", b.path, ctr.id,
                          check=False)
    assert res.returncode != 0
    assert str(missing) in res.stderr or "console" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def test_foreground_run_on_a_tty_is_interactive(ctr, bundle: BundleFactory,
                                                pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    b = tty_bundle(bundle, ["sh"])
    proc = ctr.runtime.popen("run", "--bundle", b.path, ctr.id, stdin=slave, stdout=slave,
                             stderr=slave)
    read_until(master, b"# ")  # the prompt: the shell reads now
    os.write(master, b"echo hi-$((1+2)); tty\n")
    out = read_until(master, b"hi-3\r\n/dev/")
    assert b"hi-3\r\n/dev/pts/" in out or b"hi-3\r\n/dev/console" in out, out
    os.write(master, b"exit 5\n")
    assert proc.wait(timeout=10) == 5


def test_foreground_run_on_a_tty_keeps_typeahead(ctr, bundle: BundleFactory,
                                                 pty_pair: tuple[int, int]) -> None:
    """What the user types before the container's shell is up must reach it."""
    master, slave = pty_pair
    b = tty_bundle(bundle, ["sh"])
    os.write(master, b"echo hi-$((1+2)); exit 5\n")  # typed before the runtime starts
    proc = ctr.runtime.popen("run", "--bundle", b.path, ctr.id, stdin=slave, stdout=slave,
                             stderr=slave)
    read_until(master, b"hi-3")
    assert proc.wait(timeout=10) == 5
