"""The network facade: networks and attachments with their state, links and rules.

``NetworkManager(state_dir, host_netns=...)`` keeps its records in
``<state_dir>/network.db`` (the IPAM's tables and its own), makes links in the
namespace that plays the host (``None``: the caller's own) and renders the
firewall from the records after every change. Each mutating call holds
``<state_dir>/network.lock`` (flock), so concurrent hutch commands change the
links and the ruleset one at a time and never apply a stale ruleset; each one
undoes what it did when a later step fails, and attaches cleanup failures to
the first error as notes.

Owners are opaque strings (the engine passes container ids); namespaces are
paths. This module knows no containers.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from hutch.errors import AlreadyExists, Conflict, HutchError, InvalidArgument, NotFound, WrongState
from hutch.network import bridge as br
from hutch.network import db
from hutch.network.firewall import Firewall, FwEndpoint, FwNetwork, NftFirewall
from hutch.network.ipam import DEFAULT_POOL, Ipam
from hutch.network.netlink import Netlink, check_ifname
from hutch.network.netns import port_in_use, write_sysctl
from hutch.network.ports import PortMapping, PortRange, check_no_overlap

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
EPHEMERAL_PORTS = PortRange(32768, 60999)


@dataclass(frozen=True)
class EndpointInfo:
    network: str
    owner: str
    host_if: str
    ifname: str
    netns: str
    address: ipaddress.IPv4Address
    prefixlen: int
    mac: str
    ports: tuple[PortMapping, ...]
    egress_bit: int | None
    ingress_bit: int | None


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    id: str
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    internal: bool
    mtu: int | None
    created: float
    endpoints: tuple[EndpointInfo, ...]


def check_network_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InvalidArgument(f"bad network name {name!r}: letters, digits, '_', '.', '-', "
                              "starting with a letter or digit, at most 64 characters")
    return name


class _Undo:
    """Steps to undo, run in reverse when the operation fails."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Callable[[], object]]] = []

    def add(self, what: str, fn: Callable[[], object]) -> None:
        self.steps.append((what, fn))

    def run(self, error: BaseException) -> None:
        for what, fn in reversed(self.steps):
            try:
                fn()
            except Exception as e:
                error.add_note(f"while undoing: {what} failed too: {e}")


class NetworkManager:
    def __init__(self, state_dir: str, *, host_netns: str | None = None,
                 firewall: Firewall | None = None, manage_forwarding: bool = True,
                 default_pool: ipaddress.IPv4Network = DEFAULT_POOL,
                 avoid: Iterable[ipaddress.IPv4Network] = (),
                 ephemeral_ports: PortRange = EPHEMERAL_PORTS) -> None:
        self.state_dir = state_dir
        self.host_netns = host_netns
        self.firewall = firewall if firewall is not None else NftFirewall(host_netns)
        self.manage_forwarding = manage_forwarding
        self.default_pool = default_pool
        self.avoid = list(avoid)
        self.ephemeral_ports = ephemeral_ports
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        self._db_path = os.path.join(state_dir, "network.db")
        self._conn = db.connect(self._db_path)
        self.ipam = Ipam(self._db_path, conn=self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> NetworkManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(os.path.join(self.state_dir, "network.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _host(self) -> Netlink:
        return Netlink(self.host_netns)

    # --- records ----------------------------------------------------------------------------

    def _endpoint_rows(self, network: str | None = None,
                       owner: str | None = None) -> list[EndpointInfo]:
        sql = ("SELECT network, owner, host_if, ifname, netns, address, mac, ports, egress, "
               "ingress FROM endpoints")
        cond, args = [], []
        if network is not None:
            cond.append("network = ?")
            args.append(network)
        if owner is not None:
            cond.append("owner = ?")
            args.append(owner)
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        out = []
        for (net, own, host_if, ifname, netns, address, mac, ports, egress,
             ingress) in self._conn.execute(sql + " ORDER BY network, owner", args):
            iface = ipaddress.IPv4Interface(address)
            out.append(EndpointInfo(net, own, host_if, ifname, netns, iface.ip,
                                    iface.network.prefixlen, mac,
                                    tuple(PortMapping.from_json(p) for p in json.loads(ports)),
                                    egress, ingress))
        return out

    def _network_row(self, name: str) -> NetworkInfo | None:
        row = self._conn.execute("SELECT name, id, bridge, internal, mtu, created FROM networks "
                                 "WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        pool = self.ipam.pool(name)
        return NetworkInfo(row[0], row[1], row[2], pool.subnet, pool.gateway, bool(row[3]),
                           row[4], row[5], tuple(self._endpoint_rows(network=name)))

    def get(self, name: str) -> NetworkInfo:
        found = self._network_row(name)
        if found is None:
            raise NotFound(f"no network called {name}")
        return found

    def networks(self) -> list[NetworkInfo]:
        names = [n for (n,) in self._conn.execute("SELECT name FROM networks ORDER BY name")]
        return [self.get(n) for n in names]

    def endpoints(self, owner: str | None = None) -> list[EndpointInfo]:
        return self._endpoint_rows(owner=owner)

    @staticmethod
    def _spec(net: NetworkInfo) -> br.BridgeSpec:
        return br.BridgeSpec(net.name, net.bridge, net.subnet, net.gateway, net.internal, net.mtu)

    def _fw_model(self) -> list[FwNetwork]:
        model = []
        for net in self.networks():
            eps = tuple(FwEndpoint(e.host_if, e.address, e.mac, e.ports) for e in net.endpoints)
            model.append(FwNetwork(net.name, net.bridge, net.subnet, net.internal, eps))
        return model

    def apply_firewall(self) -> None:
        """Render and apply the rules of every network (after a restart, or by prune)."""
        self.firewall.apply(self._fw_model())

    # --- networks ---------------------------------------------------------------------------

    def create(self, name: str, *, subnet: str | ipaddress.IPv4Network | None = None,
               gateway: str | ipaddress.IPv4Address | None = None, internal: bool = False,
               mtu: int | None = None, bridge: str | None = None) -> NetworkInfo:
        """A network: its address pool, its bridge (with the gateway address) and its rules."""
        check_network_name(name)
        if mtu is not None and not 68 <= mtu <= 65535:
            raise InvalidArgument(f"bad MTU {mtu}: between 68 and 65535")
        net_id = secrets.token_hex(16)
        bridge = check_ifname(bridge) if bridge else br.bridge_name(net_id)
        with self._locked():
            if self._network_row(name) is not None:
                raise AlreadyExists(f"a network called {name} exists already")
            taken = self._conn.execute("SELECT name FROM networks WHERE bridge = ?",
                                       (bridge,)).fetchone()
            if taken:
                raise AlreadyExists(f"bridge {bridge} belongs to network {taken[0]} already")
            undo = _Undo()
            try:
                pool = self.ipam.add_pool(name, subnet, gateway, avoid=self.avoid,
                                          default_pool=self.default_pool)
                undo.add(f"remove the address pool of {name}",
                         lambda: self.ipam.remove_pool(name, force=True))
                with db.write(self._conn, self._db_path):
                    self._conn.execute("INSERT INTO networks (name, id, bridge, internal, mtu, "
                                       "created) VALUES (?, ?, ?, ?, ?, ?)",
                                       (name, net_id, bridge, int(internal), mtu, time.time()))
                undo.add(f"forget network {name}", lambda: self._delete_network_row(name))
                spec = br.BridgeSpec(name, bridge, pool.subnet, pool.gateway, internal, mtu)
                with self._host() as host:
                    if host.find(bridge) is not None:
                        raise AlreadyExists(f"a link called {bridge} exists already in the "
                                            "host's network namespace")
                    br.create_bridge(host, spec)
                    undo.add(f"delete bridge {bridge}",
                             lambda: self._with_host(lambda h: br.delete_bridge(h, bridge)))
                # published ports reached from the host itself through 127.0.0.1
                write_sysctl(self.host_netns, f"net/ipv4/conf/{bridge}/route_localnet", "1")
                if not internal and self.manage_forwarding:
                    write_sysctl(self.host_netns, "net.ipv4.ip_forward", "1")
                self.apply_firewall()
            except BaseException as e:
                undo.run(e)
                raise
            return self.get(name)

    def restore(self, name: str) -> bool:
        """Make the network's bridge again if it is gone (after a reboot) and put its
        rules back; True when something had to be made."""
        with self._locked():
            net = self.get(name)
            with self._host() as host:
                if host.find(net.bridge) is not None:
                    return False
                br.create_bridge(host, self._spec(net))
            write_sysctl(self.host_netns, f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
            if not net.internal and self.manage_forwarding:
                write_sysctl(self.host_netns, "net.ipv4.ip_forward", "1")
            self.apply_firewall()
            return True

    def _with_host(self, fn: Callable[[Netlink], object]) -> object:
        with self._host() as host:
            return fn(host)

    def _delete_network_row(self, name: str) -> None:
        with db.write(self._conn, self._db_path):
            self._conn.execute("DELETE FROM networks WHERE name = ?", (name,))

    def remove(self, name: str) -> None:
        """Remove a network without attachments: its rules, its bridge, its pool."""
        with self._locked():
            net = self.get(name)
            if net.endpoints:
                owners = ", ".join(e.owner for e in net.endpoints)
                raise WrongState(f"network {name} is in use by {owners}: disconnect them first")
            self._delete_network_row(name)
            try:
                self.apply_firewall()
                with self._host() as host:
                    br.delete_bridge(host, net.bridge)
            finally:
                self.ipam.remove_pool(name, force=True)

    # --- attachments ------------------------------------------------------------------------

    def _published(self, exclude_owner: str | None = None
                   ) -> list[tuple[EndpointInfo, PortMapping]]:
        return [(e, m) for e in self._endpoint_rows() if e.owner != exclude_owner
                for m in e.ports]

    def _port_problem(self, m: PortMapping) -> str | None:
        """Why a resolved mapping's host ports cannot be had, or None."""
        for other_ep, other in self._published():
            if m.conflicts_with(other):
                return (f"host port {other.host}/{other.proto} is already published by "
                        f"{other_ep.owner} (network {other_ep.network}, {other})")
        assert m.host is not None
        for port in m.host:
            why = port_in_use(self.host_netns, m.proto, port,
                              str(m.host_ip) if m.host_ip else None)
            if why is not None:
                return f"host port {port}/{m.proto} is taken: {why}"
        return None

    def _resolve_ports(self, wanted: Sequence[PortMapping]) -> list[PortMapping]:
        check_no_overlap(m for m in wanted if m.host is not None)
        chosen: list[PortMapping] = []
        for m in wanted:
            if m.resolved:
                why = self._port_problem(m)
                if why is None:
                    for c in chosen:
                        if m.conflicts_with(c):
                            why = f"host port {m.host}/{m.proto} is asked for twice"
                if why is not None:
                    raise Conflict(f"cannot publish {m}: {why}; choose another host port")
                chosen.append(m)
                continue
            # pick free host ports: from the range given, or from the ephemeral range
            size = len(m.container)
            span = m.host if m.host is not None else self.ephemeral_ports
            last_reason = "no port is free"
            for start in range(span.start, span.end - size + 2):
                candidate = m.with_host(PortRange(start, start + size - 1))
                if any(candidate.conflicts_with(c) for c in chosen):
                    continue
                why = self._port_problem(candidate)
                if why is None:
                    chosen.append(candidate)
                    break
                last_reason = why
            else:
                raise Conflict(f"cannot publish {m}: no free host port in {span} "
                               f"({last_reason})")
        return chosen

    def connect(self, network: str, owner: str, netns: str, *,
                ip: str | ipaddress.IPv4Address | None = None, ifname: str = "eth0",
                publish: Sequence[PortMapping] = (), egress_bit: int | None = None,
                ingress_bit: int | None = None) -> EndpointInfo:
        """Attach the namespace at ``netns`` to ``network`` for ``owner``: an address (``ip``
        or the next free one), a veth pair, published ports, rate limits, rules."""
        if not owner:
            raise InvalidArgument("connect needs an owner (the container's id)")
        check_ifname(ifname)
        with self._locked():
            net = self.get(network)
            if self._endpoint_rows(network=network, owner=owner):
                raise AlreadyExists(f"{owner} is connected to network {network} already")
            if publish and net.internal:
                raise InvalidArgument(f"network {network} is internal: it has no way in or "
                                      "out, so its containers cannot publish ports")
            ports = self._resolve_ports(publish)
            undo = _Undo()
            try:
                lease = self.ipam.allocate(network, owner, ip)
                undo.add(f"release {lease.address}", lambda: self.ipam.release(network, owner))
                with self._host() as host:
                    att = br.attach(host, self._spec(net), owner, netns, lease.address,
                                    ifname=ifname, egress_bit=egress_bit,
                                    ingress_bit=ingress_bit, host_up=False)
                undo.add(f"delete link {att.host_if}",
                         lambda: self._with_host(lambda h: br.detach(h, att.host_if)))
                with db.write(self._conn, self._db_path):
                    self._conn.execute(
                        "INSERT INTO endpoints (network, owner, host_if, ifname, netns, address, "
                        "mac, ports, egress, ingress) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (network, owner, att.host_if, ifname, netns, str(att.interface), att.mac,
                         json.dumps([p.to_json() for p in ports]), egress_bit, ingress_bit))
                undo.add("apply the rules without it", self.apply_firewall)  # runs after:
                undo.add(f"forget the endpoint of {owner}",
                         lambda: self._delete_endpoint_row(network, owner))
                self.apply_firewall()
                # the port carries frames only now that its anti-spoofing rules are in force
                self._with_host(lambda h: h.set_up(att.host_if))
            except BaseException as e:
                undo.run(e)
                raise
            return self._endpoint_rows(network=network, owner=owner)[0]

    def _delete_endpoint_row(self, network: str, owner: str) -> None:
        with db.write(self._conn, self._db_path):
            self._conn.execute("DELETE FROM endpoints WHERE network = ? AND owner = ?",
                               (network, owner))

    def disconnect(self, network: str, owner: str) -> None:
        """Detach ``owner`` from ``network``: rules first (no DNAT to an address that is
        about to be free), then the veth pair, then the address."""
        with self._locked():
            eps = self._endpoint_rows(network=network, owner=owner)
            if not eps:
                self.get(network)  # NotFound for the network first
                raise NotFound(f"{owner} is not connected to network {network}")
            self._disconnect(eps[0])

    def _disconnect(self, ep: EndpointInfo) -> None:
        self._delete_endpoint_row(ep.network, ep.owner)
        errors: list[BaseException] = []
        for step in (self.apply_firewall,
                     lambda: self._with_host(lambda h: br.detach(h, ep.host_if)),
                     lambda: self.ipam.release(ep.network, ep.owner)):
            try:
                step()
            except HutchError as e:
                errors.append(e)
        if errors:
            first = errors[0]
            for other in errors[1:]:
                first.add_note(f"then: {other}")
            raise first

    def disconnect_all(self, owner: str) -> None:
        """Detach ``owner`` from every network (the container is going)."""
        with self._locked():
            for ep in self._endpoint_rows(owner=owner):
                self._disconnect(ep)

    def set_rate(self, network: str, owner: str, *, egress_bit: int | None,
                 ingress_bit: int | None) -> None:
        with self._locked():
            eps = self._endpoint_rows(network=network, owner=owner)
            if not eps:
                raise NotFound(f"{owner} is not connected to network {network}")
            ep = eps[0]
            with self._host() as host:
                br.set_rates(host, ep.host_if, ep.netns, ep.ifname, egress_bit, ingress_bit)
            with db.write(self._conn, self._db_path):
                self._conn.execute("UPDATE endpoints SET egress = ?, ingress = ? WHERE "
                                   "network = ? AND owner = ?",
                                   (egress_bit, ingress_bit, network, owner))

    # --- leftovers --------------------------------------------------------------------------

    def prune(self) -> list[str]:
        """Remove what a crash left behind; return what was removed.

        - endpoints whose host link is gone (the container's namespace went away and
          took the veth pair with it): their record and address;
        - links of the host namespace with a ``hutch:`` alias that no record knows;
        - then the ruleset is rendered again from the records.
        """
        removed = []
        with self._locked():
            with self._host() as host:
                present = {link.name for link in host.links()}
                known = {n.bridge for n in self.networks()}
                for ep in self._endpoint_rows():
                    if ep.host_if not in present:
                        self._delete_endpoint_row(ep.network, ep.owner)
                        self.ipam.release(ep.network, ep.owner)
                        removed.append(f"endpoint {ep.owner} on {ep.network}")
                    else:
                        known.add(ep.host_if)
                for name in br.hutch_links(host):
                    if name not in known:
                        host.delete(name, missing_ok=True)
                        removed.append(f"link {name}")
            self.apply_firewall()
        return removed
