"""Names on a network: one dnsmasq per network, listening on its gateway address.

Each network gets a directory ``<state_dir>/dns/<network>/`` with a hosts file
(``ADDRESS NAME NAME.NETWORK [ALIAS...]`` per container), dnsmasq's pid file and
its log. dnsmasq answers for the network's own domain from the hosts file only
(``--local``), and forwards every other name to the host's resolvers (none for an
internal network). A change of the hosts file is made atomically and announced
with SIGHUP, which makes dnsmasq read it again.

dnsmasq runs in the namespace that plays the host, bound to the gateway
address only (``--bind-interfaces``), so it never answers on the host's other
interfaces. It is its own daemon: it outlives the hutch command that started it
and is stopped when its network goes.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

from hutch.common.atomicfile import write_atomic
from hutch.errors import NotFound, SystemFailure
from hutch.network.netns import call_in

DNSMASQ = "dnsmasq"
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class HostEntry:
    address: ipaddress.IPv4Address
    names: tuple[str, ...]


class NetworkDns:
    """The resolver of one network."""

    def __init__(self, state_dir: str, network: str, host_netns: str | None = None) -> None:
        self.network = network
        self.host_netns = host_netns
        self.dir = os.path.join(state_dir, "dns", network)
        self.hosts_file = os.path.join(self.dir, "hosts")
        self.pid_file = os.path.join(self.dir, "dnsmasq.pid")
        self.log_file = os.path.join(self.dir, "dnsmasq.log")

    # --- the hosts file ---------------------------------------------------------------------

    def write_hosts(self, entries: Iterable[HostEntry]) -> None:
        """Replace the names of the network and tell dnsmasq."""
        lines = []
        for e in entries:
            names = [n for n in e.names if _HOSTNAME.match(n)]
            if names:
                lines.append(f"{e.address} {' '.join(names)}\n")
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        write_atomic(self.hosts_file, "".join(lines).encode(), mode=0o644)
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGHUP)

    # --- the daemon -------------------------------------------------------------------------

    def pid(self) -> int | None:
        """dnsmasq's pid when it runs (checked against /proc, not trusted from the file)."""
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except OSError:
            return None
        state = stat.rsplit(")", 1)[1].split()[0]
        if state == "Z" or not any(self.pid_file.encode() in a for a in cmdline):
            return None
        return pid

    def start(self, gateway: ipaddress.IPv4Address, *, internal: bool) -> int:
        """Start dnsmasq for the network (no-op when it runs); returns its pid."""
        running = self.pid()
        if running:
            return running
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        lock = os.open(os.path.join(self.dir, "start.lock"),
                       os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another hutch may be starting it right now
            return self.pid() or self._start(gateway, internal)
        finally:
            os.close(lock)

    def _start(self, gateway: ipaddress.IPv4Address, internal: bool) -> int:
        if shutil.which(DNSMASQ) is None:
            raise NotFound("dnsmasq is not installed: container names on networks need it "
                           "(Debian package dnsmasq-base)")
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        if not os.path.exists(self.hosts_file):
            self.write_hosts(())
        argv = [
            DNSMASQ, "--conf-file=/dev/null", f"--pid-file={self.pid_file}",
            "--bind-interfaces", f"--listen-address={gateway}", "--except-interface=lo",
            "--no-hosts", f"--addn-hosts={self.hosts_file}",
            f"--domain={self.network}", f"--local=/{self.network}/", "--domain-needed",
            f"--log-facility={self.log_file}", "--user=root", "--group=root",
            "--cache-size=150",
        ]
        if internal:
            argv.append("--no-resolv")
        elif os.path.exists("/etc/resolv.conf"):
            argv.append("--resolv-file=/etc/resolv.conf")

        def launch() -> subprocess.CompletedProcess[str]:
            # dnsmasq forks into the background and the first process exits: nothing of
            # ours waits for the daemon, so it is started in its own session.
            return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        res = call_in(self.host_netns, launch)
        if res.returncode != 0:
            raise SystemFailure(errno.EIO, f"dnsmasq for network {self.network} did not "
                                f"start: {(res.stderr or res.stdout).strip()}")
        pid = self.pid()
        if pid is None:
            raise SystemFailure(errno.ESRCH, f"dnsmasq for network {self.network} started but "
                                f"is not running; see {self.log_file}")
        return pid

    def stop(self, timeout: float = 5.0) -> None:
        """Stop dnsmasq and forget its files."""
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while self.pid() and time.monotonic() < deadline:
                time.sleep(0.01)
            if self.pid():
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def resolv_conf(nameservers: Iterable[ipaddress.IPv4Address], search: Iterable[str] = (),
                host_file: str = "/etc/resolv.conf") -> str:
    """A container's resolv.conf: its networks' resolvers (each knows its own network's
    names; the C library asks the next when one refuses), or the host's own servers
    (minus loopback ones, which are not reachable from a container)."""
    lines = ["# written by hutch\n"]
    nameservers = list(nameservers)[:3]  # the C library reads three at most
    for nameserver in nameservers:
        lines.append(f"nameserver {nameserver}\n")
    if not nameservers:
        try:
            with open(host_file) as f:
                host = f.read().splitlines()
        except OSError:
            host = []
        for line in host:
            parts = line.split()
            if parts[:1] == ["nameserver"] and len(parts) > 1 and \
                    not parts[1].startswith(("127.", "::1")):
                lines.append(f"nameserver {parts[1]}\n")
    search = [s for s in search if s]
    if search:
        lines.append(f"search {' '.join(search)}\n")
    lines.append("options ndots:0\n" if nameservers else "")
    return "".join(lines)


def hosts_file(hostname: str, entries: Iterable[tuple[ipaddress.IPv4Address, str]]) -> str:
    """A container's /etc/hosts: localhost, then its own addresses with its hostname."""
    lines = ["127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n"]
    own = list(entries)
    for address, network in own:
        lines.append(f"{address}\t{hostname}.{network} {hostname}\n")
    if not own:
        lines.append(f"127.0.1.1\t{hostname}\n")
    return "".join(lines)
