"""IP address management: a subnet per network, an address per attachment.

Persisted in the network database (``network.db``: SQLite in WAL mode), so that
many hutch processes at once never hand out one address twice: every change is
one ``BEGIN IMMEDIATE`` transaction, and the table's primary key (network,
address) would refuse a duplicate even if the logic were wrong.

- A pool (one per network) has a subnet and a gateway; the gateway, the network
  address and the broadcast address are never leased.
- Addresses are handed out in order from where the last one was taken, wrapping
  around, so a released address is not reused at once (stale ARP entries in
  the neighbours).
- A static address is honoured, or refused with the reason: outside the
  subnet, the network or broadcast address, the gateway, or taken (by whom).
- Subnets without ``--subnet`` come from ``DEFAULT_POOL`` in ``/24`` pieces that
  overlap no other pool and none of the networks the caller says to avoid (the
  host's own routes).

IPv4 only for now.
"""

from __future__ import annotations

import ipaddress
import itertools
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from hutch.errors import AlreadyExists, InvalidArgument, NotFound, WrongState
from hutch.network import db

IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network

DEFAULT_POOL = IPv4Network("10.89.0.0/16")
DEFAULT_PREFIX = 24


@dataclass(frozen=True)
class Pool:
    network: str
    subnet: IPv4Network
    gateway: IPv4Address


@dataclass(frozen=True)
class Lease:
    network: str
    address: IPv4Address
    owner: str


def _net(value: str | IPv4Network, what: str) -> IPv4Network:
    try:
        return IPv4Network(value)
    except ValueError as e:
        raise InvalidArgument(f"bad {what} {value!s}: {e}") from None


def _addr(value: str | IPv4Address, what: str) -> IPv4Address:
    try:
        return IPv4Address(value)
    except ValueError as e:
        raise InvalidArgument(f"bad {what} {value!s}: {e}") from None


class Ipam:
    """Pools and leases in the database at ``path``; safe across processes."""

    def __init__(self, path: str, *, conn: sqlite3.Connection | None = None) -> None:
        self.path = path
        self._conn = conn if conn is not None else db.connect(path)
        self._own = conn is None

    def close(self) -> None:
        if self._own:
            self._conn.close()

    def __enter__(self) -> Ipam:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- pools ------------------------------------------------------------------------------

    def _pool_row(self, network: str) -> Pool | None:
        row = self._conn.execute("SELECT subnet, gateway FROM ipam_pools WHERE network = ?",
                                 (network,)).fetchone()
        if row is None:
            return None
        return Pool(network, IPv4Network(row[0]), IPv4Address(row[1]))

    def pool(self, network: str) -> Pool:
        found = self._pool_row(network)
        if found is None:
            raise NotFound(f"network {network} has no address pool")
        return found

    def pools(self) -> list[Pool]:
        rows = self._conn.execute("SELECT network, subnet, gateway FROM ipam_pools "
                                  "ORDER BY network").fetchall()
        return [Pool(n, IPv4Network(s), IPv4Address(g)) for n, s, g in rows]

    def add_pool(self, network: str, subnet: str | IPv4Network | None = None,
                 gateway: str | IPv4Address | None = None, *,
                 avoid: Iterable[IPv4Network] = (), default_pool: IPv4Network = DEFAULT_POOL,
                 prefix: int = DEFAULT_PREFIX) -> Pool:
        """A pool for ``network``: the subnet given, or the first free ``/prefix`` of
        ``default_pool`` that overlaps no pool and nothing in ``avoid``."""
        avoid = list(avoid)
        with db.write(self._conn, self.path):
            if self._pool_row(network) is not None:
                raise AlreadyExists(f"network {network} has an address pool already")
            taken = [p.subnet for p in self.pools()]
            if subnet is None:
                net = self._pick_subnet(taken + avoid, default_pool, prefix)
            else:
                net = _net(subnet, "subnet")
                if net.prefixlen > 30:
                    raise InvalidArgument(f"subnet {net} is too small: at most /30, for a "
                                          "gateway and at least one container")
                for other in self.pools():
                    if net.overlaps(other.subnet):
                        raise AlreadyExists(f"subnet {net} overlaps {other.subnet} of "
                                            f"network {other.network}")
                for other_net in avoid:
                    if net.overlaps(other_net):
                        raise InvalidArgument(f"subnet {net} overlaps {other_net}, which "
                                              "the host routes already")
            if gateway is None:
                gw = net.network_address + 1
            else:
                gw = _addr(gateway, "gateway")
                self._check_in_subnet(network, net, gw, "gateway")
            self._conn.execute("INSERT INTO ipam_pools (network, subnet, gateway, hint) "
                               "VALUES (?, ?, ?, ?)",
                               (network, str(net), int(gw), int(net.network_address) + 1))
        return Pool(network, net, gw)

    @staticmethod
    def _pick_subnet(taken: list[IPv4Network], pool: IPv4Network, prefix: int) -> IPv4Network:
        for candidate in pool.subnets(new_prefix=prefix):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
        raise WrongState(f"no free /{prefix} subnet is left in {pool}: remove unused "
                         "networks or give --subnet")

    def remove_pool(self, network: str, *, force: bool = False) -> None:
        """Forget a pool; refused while it has leases, unless ``force``."""
        with db.write(self._conn, self.path):
            if self._pool_row(network) is None:
                raise NotFound(f"network {network} has no address pool")
            count = self._conn.execute("SELECT COUNT(*) FROM ipam_leases WHERE network = ?",
                                       (network,)).fetchone()[0]
            if count and not force:
                raise WrongState(f"network {network} still has {count} address(es) leased: "
                                 "disconnect its containers first")
            self._conn.execute("DELETE FROM ipam_leases WHERE network = ?", (network,))
            self._conn.execute("DELETE FROM ipam_pools WHERE network = ?", (network,))

    # --- leases -----------------------------------------------------------------------------

    @staticmethod
    def _check_in_subnet(network: str, net: IPv4Network, ip: IPv4Address, what: str) -> None:
        if ip not in net:
            raise InvalidArgument(f"{what} {ip} is outside the subnet {net} of network {network}")
        if ip == net.network_address:
            raise InvalidArgument(f"{what} {ip} is the network address of {net} "
                                  f"(network {network}): choose a host address")
        if ip == net.broadcast_address:
            raise InvalidArgument(f"{what} {ip} is the broadcast address of {net} "
                                  f"(network {network}): choose a host address")

    def allocate(self, network: str, owner: str, ip: str | IPv4Address | None = None) -> Lease:
        """Lease an address of ``network`` to ``owner``: ``ip`` if given (or refused with the
        reason), else the next free one."""
        if not owner:
            raise InvalidArgument("an address lease needs an owner")
        with db.write(self._conn, self.path):
            pool = self._pool_row(network)
            if pool is None:
                raise NotFound(f"network {network} has no address pool")
            row = self._conn.execute("SELECT address FROM ipam_leases WHERE network = ? AND "
                                     "owner = ?", (network, owner)).fetchone()
            if row is not None:
                raise AlreadyExists(f"{owner} already has the address {IPv4Address(row[0])} "
                                    f"on network {network}")
            if ip is not None:
                want = _addr(ip, "address")
                self._check_in_subnet(network, pool.subnet, want, "address")
                if want == pool.gateway:
                    raise InvalidArgument(f"address {want} is the gateway of network {network}")
                holder = self._conn.execute("SELECT owner FROM ipam_leases WHERE network = ? "
                                            "AND address = ?", (network, int(want))).fetchone()
                if holder is not None:
                    raise AlreadyExists(f"address {want} on network {network} is taken by "
                                        f"{holder[0]}")
                chosen = int(want)
            else:
                chosen = self._next_free(pool)
            self._conn.execute("INSERT INTO ipam_leases (network, address, owner) "
                               "VALUES (?, ?, ?)", (network, chosen, owner))
            if ip is None:
                self._conn.execute("UPDATE ipam_pools SET hint = ? WHERE network = ?",
                                   (chosen + 1, network))
        return Lease(network, IPv4Address(chosen), owner)

    def _next_free(self, pool: Pool) -> int:
        first = int(pool.subnet.network_address) + 1
        last = int(pool.subnet.broadcast_address) - 1
        hint = int(self._conn.execute("SELECT hint FROM ipam_pools WHERE network = ?",
                                      (pool.network,)).fetchone()[0])
        used: set[int] = {a for (a,) in self._conn.execute(
            "SELECT address FROM ipam_leases WHERE network = ?", (pool.network,))}
        used.add(int(pool.gateway))
        if not first <= hint <= last:
            hint = first
        for candidate in itertools.chain(range(hint, last + 1), range(first, hint)):
            if candidate not in used:
                return candidate
        raise WrongState(f"network {pool.network} ({pool.subnet}) has no free address left")

    def release(self, network: str, owner: str) -> IPv4Address | None:
        """Give back ``owner``'s address on ``network``; None if it had none."""
        with db.write(self._conn, self.path):
            row = self._conn.execute("SELECT address FROM ipam_leases WHERE network = ? AND "
                                     "owner = ?", (network, owner)).fetchone()
            if row is None:
                return None
            self._conn.execute("DELETE FROM ipam_leases WHERE network = ? AND owner = ?",
                               (network, owner))
        return IPv4Address(row[0])

    def lease(self, network: str, owner: str) -> Lease | None:
        row = self._conn.execute("SELECT address FROM ipam_leases WHERE network = ? AND "
                                 "owner = ?", (network, owner)).fetchone()
        return Lease(network, IPv4Address(row[0]), owner) if row else None

    def leases(self, network: str | None = None) -> list[Lease]:
        if network is None:
            rows = self._conn.execute("SELECT network, address, owner FROM ipam_leases "
                                      "ORDER BY network, address").fetchall()
        else:
            rows = self._conn.execute("SELECT network, address, owner FROM ipam_leases "
                                      "WHERE network = ? ORDER BY address",
                                      (network,)).fetchall()
        return [Lease(n, IPv4Address(a), o) for n, a, o in rows]
