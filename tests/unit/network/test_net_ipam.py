"""IPAM in SQLite: pools, leases, static addresses with reasons, many processes at once."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import sqlite3
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from hutch.errors import AlreadyExists, InvalidArgument, NotFound, WrongState
from hutch.network.ipam import Ipam


@pytest.fixture
def ipam(tmp_path: Path) -> Ipam:
    return Ipam(str(tmp_path / "state" / "network.db"))


def test_pools_pick_free_subnets(ipam: Ipam) -> None:
    a = ipam.add_pool("a")
    assert (a.subnet, a.gateway) == (IPv4Network("10.89.0.0/24"), IPv4Address("10.89.0.1"))
    b = ipam.add_pool("b", avoid=[IPv4Network("10.89.1.0/25")])  # a route of the host
    assert b.subnet == IPv4Network("10.89.2.0/24")
    c = ipam.add_pool("c", "192.168.77.0/24", "192.168.77.254")
    assert c.gateway == IPv4Address("192.168.77.254")
    assert [p.network for p in ipam.pools()] == ["a", "b", "c"]
    with pytest.raises(AlreadyExists, match="overlaps 10.89.0.0/24 of network a"):
        ipam.add_pool("d", "10.89.0.128/25")
    with pytest.raises(AlreadyExists, match="has an address pool"):
        ipam.add_pool("a")
    with pytest.raises(InvalidArgument, match="too small"):
        ipam.add_pool("d", "10.1.0.0/31")
    with pytest.raises(InvalidArgument, match="gateway 10.2.0.0 is the network address"):
        ipam.add_pool("d", "10.2.0.0/24", "10.2.0.0")
    with pytest.raises(InvalidArgument, match="gateway 10.3.0.9 is outside"):
        ipam.add_pool("d", "10.2.0.0/24", "10.3.0.9")
    with pytest.raises(InvalidArgument, match="bad subnet"):
        ipam.add_pool("d", "10.2.0.1/24")  # host bits set


def test_pool_exhaustion_of_subnets(ipam: Ipam) -> None:
    ipam.add_pool("a", default_pool=IPv4Network("10.90.0.0/23"))
    ipam.add_pool("b", default_pool=IPv4Network("10.90.0.0/23"))
    with pytest.raises(WrongState, match="no free /24"):
        ipam.add_pool("c", default_pool=IPv4Network("10.90.0.0/23"))


def test_allocate_in_order_skipping_gateway_and_release(ipam: Ipam) -> None:
    ipam.add_pool("a", "10.0.0.0/29", "10.0.0.3")  # hosts .1-.6, gateway .3
    got = [str(ipam.allocate("a", f"c{i}").address) for i in range(5)]
    assert got == ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    with pytest.raises(WrongState, match="no free address left"):
        ipam.allocate("a", "c5")
    assert ipam.release("a", "c1") == IPv4Address("10.0.0.2")
    assert ipam.release("a", "c1") is None
    assert str(ipam.allocate("a", "c6").address) == "10.0.0.2"
    assert ipam.lease("a", "c6").address == IPv4Address("10.0.0.2")  # type: ignore[union-attr]


def test_released_address_is_not_reused_at_once(ipam: Ipam) -> None:
    ipam.add_pool("a", "10.0.0.0/24")
    first = ipam.allocate("a", "c1").address
    ipam.release("a", "c1")
    assert ipam.allocate("a", "c2").address != first


def test_static_addresses_honoured_or_refused_with_the_reason(ipam: Ipam) -> None:
    ipam.add_pool("a", "10.0.0.0/24")
    assert str(ipam.allocate("a", "c1", "10.0.0.50").address) == "10.0.0.50"
    cases = [("10.0.1.5", InvalidArgument, "outside the subnet 10.0.0.0/24"),
             ("10.0.0.0", InvalidArgument, "network address"),
             ("10.0.0.255", InvalidArgument, "broadcast address"),
             ("10.0.0.1", InvalidArgument, "gateway"),
             ("10.0.0.50", AlreadyExists, "taken by c1"),
             ("banana", InvalidArgument, "bad address")]
    for ip, error, reason in cases:
        with pytest.raises(error, match=reason):
            ipam.allocate("a", "c2", ip)
    with pytest.raises(AlreadyExists, match="c1 already has the address 10.0.0.50"):
        ipam.allocate("a", "c1")
    with pytest.raises(NotFound):
        ipam.allocate("nope", "c1")
    # the next dynamic one is not the static one
    assert str(ipam.allocate("a", "c3").address) == "10.0.0.2"


def test_remove_pool(ipam: Ipam) -> None:
    ipam.add_pool("a")
    ipam.allocate("a", "c1")
    with pytest.raises(WrongState, match="1 address"):
        ipam.remove_pool("a")
    ipam.remove_pool("a", force=True)
    assert ipam.pools() == [] and ipam.leases() == []
    with pytest.raises(NotFound):
        ipam.remove_pool("a")


def test_persisted_in_wal_mode(tmp_path: Path) -> None:
    path = str(tmp_path / "network.db")
    with Ipam(path) as first:
        first.add_pool("a", "10.0.0.0/24")
        first.allocate("a", "c1")
    with Ipam(path) as again:
        assert [(str(lease.address), lease.owner) for lease in again.leases()] == \
            [("10.0.0.2", "c1")]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # the primary key refuses a duplicate even past the logic
    with pytest.raises(sqlite3.IntegrityError):
        sqlite3.connect(path).execute(
            "INSERT INTO ipam_leases (network, address, owner) VALUES ('a', ?, 'x')",
            (int(IPv4Address("10.0.0.2")),))


def _worker(path: str, prefix: str, count: int, out: multiprocessing.Queue,
            go: multiprocessing.synchronize.Event) -> None:
    ipam = Ipam(path)
    go.wait(30)  # all start together
    got = []
    for i in range(count):
        got.append(str(ipam.allocate("a", f"{prefix}-{i}").address))
        if i % 5 == 4:  # some churn: give one back now and then
            ipam.release("a", f"{prefix}-{i}")
            got.pop()
    out.put(got)
    ipam.close()


def test_many_processes_never_share_an_address(tmp_path: Path) -> None:
    path = str(tmp_path / "network.db")
    with Ipam(path) as ipam:
        ipam.add_pool("a", "10.0.0.0/22")
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=_worker, args=(path, f"p{n}", 40, out, go)) for n in range(8)]
    for p in procs:
        p.start()
    go.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    handed = [ip for r in results for ip in r]
    assert len(handed) == 8 * 32
    assert len(set(handed)) == len(handed)  # no address twice
    with Ipam(path) as ipam:
        leases = ipam.leases("a")
        assert sorted(str(lease.address) for lease in leases) == sorted(handed)
        assert IPv4Address("10.0.0.1") not in {lease.address for lease in leases}
