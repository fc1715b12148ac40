"""The parent/child sync protocol of ``create`` and ``exec``.

One SOCK_SEQPACKET socketpair joins the runtime process (the parent) with the
process it forks (the intermediate) and, after it, the container's init. Each
message is one small JSON object ``{"t": TYPE, ...}``::

    parent                      intermediate                  init
      | fork -------------------> |
      | (joins it to the cgroup)  |
      | -- go ------------------> |
      |                           | unshare(user)
      | <--------------- userns - |
      | (writes uid/gid maps)     |
      | -- mapped --------------> |
      |                           | setns/unshare the rest, fork --------> |
      | <----------- pid {pid} -- | exits                                  |
      | -- init -------------------------------------------------------->  |
      |                                                 mounts, devices    |
      | <------------------------------------------------------- hooks --- |
      | (prestart, createRuntime hooks)                                    |
      | -- resume {state} ---------------------------------------------->  |
      |                                     createContainer hooks, pivot,  |
      |                                     user, capabilities...          |
      | <------------------------------------------------------- ready --- |
      |                                              blocks on exec.fifo   |

Any child may send ``error {msg, errno}`` instead and exit; the parent turns it
into the error of the command. A closed socket without a message means the
child died, which the parent reports as such.
"""

from __future__ import annotations

import json
import socket

from hutch.errors import HutchError, SystemFailure

_MAX = 65536


class ChildError(HutchError):
    """An error reported by a child of the runtime across the channel."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


class Channel:
    """One end of the sync socketpair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def set_timeout(self, seconds: float | None) -> None:
        """Bound every later recv: a wedged child must not hang the runtime forever."""
        self.sock.settimeout(seconds)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, kind: str, **fields: object) -> None:
        fields["t"] = kind
        self.sock.send(json.dumps(fields).encode())

    def send_error(self, exc: BaseException) -> None:
        errno = getattr(exc, "errno", None) or 0
        # OSError's str() starts with "[Errno N]": send the reason alone.
        msg = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) \
            or type(exc).__name__
        try:
            self.send("error", msg=msg, errno=errno)
        except OSError:
            pass

    def recv(self, expect: str, what: str) -> dict:
        """Wait for a message of type ``expect``; raise the child's error otherwise.

        ``what`` names the process we wait on, for the message when it dies.
        """
        try:
            data = self.sock.recv(_MAX)
        except TimeoutError:
            raise ChildError(f"timed out after {self.sock.gettimeout():g}s waiting for "
                             f"{what} ({expect})") from None
        if not data:
            raise ChildError(f"{what} exited before it was ready (see the runtime log)")
        msg = json.loads(data)
        kind = msg.get("t")
        if kind == "error":
            errno = int(msg.get("errno") or 0)
            if errno:
                raise SystemFailure(errno, msg.get("msg", "unknown error"))
            raise ChildError(msg.get("msg", "unknown error"))
        if kind != expect:
            raise ChildError(f"protocol error: expected {expect!r} from {what}, got {kind!r}")
        return msg

    def close(self) -> None:
        self.sock.close()
