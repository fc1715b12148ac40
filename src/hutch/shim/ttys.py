"""An OS container's extra terminals, /dev/tty1..N inside (LXC's lxc.tty.max).

The shim opens a pty pair per tty on the host, gives the slave to the
container's root (``owner``, its host uid) and points ``<bundle>/ttys/N`` at it;
the container's config binds ``ttys/N`` (relative to the bundle) on /dev/ttyN,
where its init runs a getty or a shell. The shim keeps both ends open (so the
master never reads EIO between sessions), reads what the container writes and
passes it to the clients attached to that tty (``hutch console NAME --tty N``);
what they type goes to the master. Nothing is logged: these are logins.
"""

from __future__ import annotations

import os
from _socket import socket  # not the socket package: it pulls in enum (shim/supervisor.py)


class Ttys:
    def __init__(self, count: int, bundle: str, owner: int) -> None:
        self.count = count
        self.dir = os.path.join(bundle, "ttys")
        self.owner = owner
        self.masters: dict[int, int] = {}  # master fd -> tty number
        self.slaves: list[int] = []
        self.clients: dict[int, tuple[socket, int]] = {}  # fd -> attached client, tty number

    def open(self) -> None:
        """The pty pairs, and the links the container's config binds."""
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        for n in range(1, self.count + 1):
            master, slave = os.openpty()
            self.masters[master] = n
            self.slaves.append(slave)
            path = os.ttyname(slave)
            os.chown(path, self.owner, self.owner)
            os.chmod(path, 0o620)
            link = os.path.join(self.dir, str(n))
            tmp = f"{link}.{os.getpid()}"
            os.symlink(path, tmp)
            os.replace(tmp, link)

    # -- handing over to the shim's next image (shim/handover.py) -------------------------

    def handover_state(self) -> dict:
        return {"masters": [[fd, n] for fd, n in self.masters.items()], "slaves": self.slaves,
                "clients": [[fd, n] for fd, (_, n) in self.clients.items()]}

    def restore(self, state: dict) -> None:
        self.masters = {int(fd): int(n) for fd, n in state["masters"]}
        self.slaves = [int(fd) for fd in state["slaves"]]
        self.clients = {int(fd): (socket(fileno=int(fd)), int(n)) for fd, n in state["clients"]}

    # -- the main loop's view ---------------------------------------------------------------

    def master_of(self, n: int) -> int:
        for fd, number in self.masters.items():
            if number == n:
                return fd
        raise KeyError(n)

    def fds(self) -> list[int]:
        return [*self.masters, *self.clients]

    def owns(self, fd: int) -> bool:
        return fd in self.masters or fd in self.clients

    def attach(self, n: int, conn: socket) -> None:
        self.master_of(n)  # KeyError for a tty the container does not have
        self.clients[conn.fileno()] = (conn, n)

    def ready(self, fd: int) -> None:
        """Output of a tty to its clients, or a client's input to its tty."""
        if fd in self.masters:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            n = self.masters[fd]
            for cfd, (client, number) in list(self.clients.items()):
                if number == n:
                    try:
                        client.sendall(data)
                    except OSError:
                        self.drop(cfd)
            return
        client, n = self.clients[fd]
        try:
            data = client.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop(fd)
            return
        try:
            os.write(self.master_of(n), data)
        except OSError:
            pass

    def drop(self, fd: int) -> None:
        entry = self.clients.pop(fd, None)
        if entry is not None:
            entry[0].close()

    def close(self) -> None:
        for fd in list(self.clients):
            self.drop(fd)
        for fd in [*self.masters, *self.slaves]:
            os.close(fd)
        self.masters, self.slaves = {}, []
