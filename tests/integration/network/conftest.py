"""Network namespaces for the network tests: a "host", an "outside world", containers.

House rules (the machine is shared): every test works only in namespaces it
made here (``hutch-t-<random>-<role>``); nothing touches the machine's own
interfaces, routes, sysctls or firewall; traffic goes only between these
namespaces. Teardown kills what runs in them and deletes them (their links and
nft tables go with them), even when the test failed, and fails the test if a
namespace could not be removed.

The topology of ``topo``::

    outside (192.0.2.2/24 on wan0) ==veth== host (192.0.2.1/24 on up0, default via .2)
                                             |  hutch's bridges, nft tables, ip_forward
                                             +-- container namespaces (veth from hutch)

The outside has no route to the containers' subnets: a reply reaches a
container only if the host masqueraded it.
"""

from __future__ import annotations

import os
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hutch.network.manager import NetworkManager
from hutch.network.netns import same_netns

NETTOOL = str(Path(__file__).with_name("nettool.py"))
HOST_ADDR = "192.0.2.1"
OUTSIDE_ADDR = "192.0.2.2"

pytestmark = pytest.mark.nft


def sh(*argv: str, check: bool = True, timeout: float = 30,
       **kw: Any) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL, check=False, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


@dataclass
class Ns:
    """One namespace of the test, by name (/run/netns/<name>)."""

    name: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def run(self, *argv: str, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return sh("nsenter", f"--net={self.path}", *argv, check=check, timeout=timeout)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("ip", *args, check=check)

    def tool(self, *args: str, check: bool = False,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, NETTOOL, *args, check=check, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start a nettool server here and wait for its "ready"."""
        proc = subprocess.Popen(["nsenter", f"--net={self.path}", sys.executable, NETTOOL, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        raw = b""
        while not raw.endswith(b"\n"):  # unbuffered: later reads use the fd too
            ready, _, _ = select.select([proc.stdout.fileno()], [], [], 10)
            chunk = os.read(proc.stdout.fileno(), 1) if ready else b""
            if not chunk:
                break
            raw += chunk
        line = raw.decode().strip()
        if line != "ready":
            proc.kill()
            raise AssertionError(f"nettool {args} did not start: {line!r} "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, 9)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self.procs.clear()

    def links(self) -> list[str]:
        out = self.ip("-o", "link", "show").stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def nft_tables(self) -> list[str]:
        return [line.strip() for line in self.run("nft", "list", "tables").stdout.splitlines()
                if line.strip()]


@pytest.fixture
def netns() -> Iterator[Callable[[str], Ns]]:
    """Factory: ``netns("c1") -> Ns``, a fresh namespace with lo down; all removed at
    teardown (processes in them killed first)."""
    tag = secrets.token_hex(3)
    made: list[Ns] = []

    def make(role: str) -> Ns:
        ns = Ns(f"hutch-t-{tag}-{role}")
        sh("ip", "netns", "add", ns.name)
        made.append(ns)
        return ns

    yield make
    problems = []
    for ns in reversed(made):
        ns.stop_all()
        pids = sh("ip", "netns", "pids", ns.name, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        res = sh("ip", "netns", "del", ns.name, check=False)
        if res.returncode != 0 or os.path.exists(ns.path):
            problems.append(f"{ns.name}: {res.stderr.strip()}")
    if problems:
        pytest.fail("network namespaces left behind: " + "; ".join(problems), pytrace=False)


@dataclass
class Topo:
    host: Ns
    outside: Ns
    make: Callable[[str], Ns]

    def container(self, name: str) -> Ns:
        """An empty namespace for a container (hutch brings its lo up)."""
        return self.make(name)


@pytest.fixture
def topo(netns: Callable[[str], Ns]) -> Topo:
    host, outside = netns("host"), netns("out")
    sh("ip", "link", "add", "up0", "netns", host.name, "type", "veth",
       "peer", "name", "wan0", "netns", outside.name)
    for ns, dev, addr in ((host, "up0", HOST_ADDR), (outside, "wan0", OUTSIDE_ADDR)):
        ns.ip("link", "set", "lo", "up")
        ns.ip("addr", "add", f"{addr}/24", "dev", dev)
        ns.ip("link", "set", dev, "up")
    host.ip("route", "add", "default", "via", OUTSIDE_ADDR)
    # the host's side must never be the machine's own namespace
    assert not same_netns(host.path, None)
    return Topo(host, outside, netns)


@pytest.fixture
def manager(topo: Topo, tmp_path: Path) -> Iterator[NetworkManager]:
    """A NetworkManager whose host is the test's host namespace."""
    m = NetworkManager(str(tmp_path / "netstate"), host_netns=topo.host.path)
    yield m
    m.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def received(proc: subprocess.Popen[str], seconds: float) -> set[str]:
    """The distinct lines a nettool server prints within ``seconds`` (waits them out)."""
    assert proc.stdout is not None
    lines: set[str] = set()
    deadline = time.monotonic() + seconds
    fd = proc.stdout.fileno()
    buf = b""
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    lines.update(line.strip() for line in buf.decode().splitlines() if line.strip())
    return lines
