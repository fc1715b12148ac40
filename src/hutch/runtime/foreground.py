"""Foreground processes (``run`` and ``exec`` without --detach).

The runtime becomes a child subreaper so the container's process, whose first
parent exits during setup, is re-parented to it; it then forwards signals, proxies
the terminal when there is one, and returns the exit status the way a shell
reports it (the code, or 128+n when killed by signal n).
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from hutch.linux import constants as C
from hutch.linux.syscalls import prctl

_FORWARDED = [s for s in signal.Signals
              if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH,
                           signal.SIGURG)]


def become_subreaper() -> None:
    prctl(C.PR_SET_CHILD_SUBREAPER, 1)


def exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class SignalForwarder:
    """Forward the signals we receive to ``pid`` while installed."""

    def __init__(self) -> None:
        self.pid = 0
        self.old: dict[int, object] = {}

    def _handler(self, signum: int, _frame: object) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def install(self) -> None:
        for s in _FORWARDED:
            try:
                self.old[s] = signal.signal(s, self._handler)
            except (OSError, ValueError):
                pass

    def restore(self) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)  # type: ignore[arg-type]


def wait_for(pid: int) -> int:
    """Reap children until ``pid`` exits (others are orphans re-parented to us)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            return exit_status(status)


class TerminalProxy:
    """Copies between our stdin/stdout and the container's pty master."""

    def __init__(self) -> None:
        self.parent, self.child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.master = -1
        self._saved: list | None = None

    def receive(self) -> None:
        from hutch.runtime.console import receive_master, set_winsize
        self.child.close()
        self.master = receive_master(self.parent)
        self.parent.close()
        if os.isatty(0):
            size = os.get_terminal_size(0)
            set_winsize(self.master, size.lines, size.columns)
            signal.signal(signal.SIGWINCH, self._resize)

    def _resize(self, _s: int, _f: object) -> None:
        from hutch.runtime.console import set_winsize
        try:
            size = os.get_terminal_size(0)
            set_winsize(self.master, size.lines, size.columns)
        except OSError:
            pass

    def run_until_exit(self, pid: int) -> int:
        """Proxy until ``pid`` exits, then drain the output; returns its exit status."""
        import select
        import termios
        import tty

        if os.isatty(0):
            self._saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop what was typed ahead
        status: int | None = None
        stdin_open = True
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old = signal.set_wakeup_fd(w)
        try:
            while True:
                fds = [self.master, r] + ([0] if stdin_open else [])
                ready, _, _ = select.select(fds, [], [], 0.5 if status is None else 0.05)
                if r in ready:
                    try:
                        os.read(r, 512)
                    except BlockingIOError:
                        pass
                if self.master in ready:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:
                        data = b""
                    if data:
                        os.write(1, data)
                    elif status is not None:
                        break
                if 0 in ready:
                    data = os.read(0, 65536)
                    if data:
                        os.write(self.master, data)
                    else:
                        stdin_open = False
                if status is None:
                    got, st = os.waitpid(-1, os.WNOHANG)
                    while got:
                        if got == pid:
                            status = exit_status(st)
                        try:
                            got, st = os.waitpid(-1, os.WNOHANG)
                        except ChildProcessError:
                            break
                elif not ready:
                    break
        finally:
            signal.set_wakeup_fd(old)
            os.close(r)
            os.close(w)
            if self._saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, self._saved)
            os.close(self.master)
        sys.stdout.flush()
        return status if status is not None else 255
