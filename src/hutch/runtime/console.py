"""The container's terminal: a pty made inside it, its master handed over a unix socket.

This follows runc's console-socket protocol: the runtime connects to the
socket given with --console-socket, and the container's init sends the pty
master over it with SCM_RIGHTS (the message body is the master's name). The
slave becomes the process's controlling terminal and /dev/console.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

from hutch.errors import InvalidArgument
from hutch.linux import constants as C
from hutch.linux.syscalls import mount

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise InvalidArgument(f"--console-socket {path}: cannot connect: {e.strerror}") from None
    return sock


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def open_pty() -> tuple[int, str]:
    """Open a new pty on the devpts of the current root; returns (master, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    return master, f"/dev/pts/{n}"


# Annotation: "false" gives the init the pty as stdio and /dev/console but not as its
# controlling terminal, as a kernel boots init (and as LXC starts an OS container's):
# the getty or shell its init starts on the console can then make it theirs.
CONSOLE_CTTY = "io.hutch.console.ctty"


def _has_ctty() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))
        return True
    except OSError:
        return False


def setup_container_console(sock: socket.socket, console_size: dict | None,
                            make_dev_console: bool, ctty: bool = True) -> None:
    """In the container (after pivot_root): make the pty, send its master, adopt the slave
    (as the controlling terminal too, unless ``ctty`` is false)."""
    master, slave_path = open_pty()
    try:
        if console_size:
            set_winsize(master, int(console_size.get("height", 0)),
                        int(console_size.get("width", 0)))
        if make_dev_console:
            if not os.path.exists("/dev/console"):
                os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            mount(slave_path, "/dev/console", None, C.MS_BIND)
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    finally:
        os.close(master)
        sock.close()
    if ctty or _has_ctty():
        os.setsid()
    # else: not a session leader either, as a kernel starts init, so that an init which
    # opens the console without O_NOCTTY (sysvinit does) does not take it as its
    # controlling terminal and keep it from the getty it starts there
    slave = os.open(slave_path, os.O_RDWR | (0 if ctty else os.O_NOCTTY))
    if ctty:
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def receive_master(sock: socket.socket) -> int:
    """Receive the pty master the container sends (runc's recvtty side)."""
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise InvalidArgument("console socket: the container sent no terminal")
    return fds[0]
