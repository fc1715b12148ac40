"""The engine's side of networks: each container's network namespace, its attachments,
its published ports, its names, and the files (/etc/hosts, resolv.conf) that go with them.

A container on networks gets a network namespace of its own, made when the container
is made and kept by a bind mount at ``<run>/netns/<id>`` until it is removed, so it
survives restarts of the container and its address stays the same. The runtime joins
it by path. After a reboot (the mount is gone) :meth:`ContainerNetworks.ensure` makes
it again with the same options before the container starts.

The namespace that plays "the host" is the caller's own, or the one at the path in
``HUTCH_HOST_NETNS`` (the tests put hutch's bridges, rules and resolvers in a
namespace of their own that way, and never touch the machine's network).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hutch.errors import AlreadyExists, InvalidArgument, NotFound
from hutch.engine.paths import Layout

DEFAULT_NETWORK = "bridge"
HOST_NETNS_ENV = "HUTCH_HOST_NETNS"
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(bit|bps|b)?$", re.IGNORECASE)
_UNIT = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_rate(text: str, what: str = "--network-rate") -> int:
    """``10mbit`` (bits/s, tc's spelling), ``1mbps`` (bytes/s), ``500k`` (bits/s) -> bits/s."""
    m = _RATE.match(text.strip())
    if not m:
        raise InvalidArgument(f"{what} {text!r}: give a rate such as 10mbit, 500kbit or 2mbps")
    value = float(m.group(1)) * _UNIT[m.group(2).lower()]
    if (m.group(3) or "bit").lower() in ("bps", "b"):
        value *= 8
    if value < 8000:
        raise InvalidArgument(f"{what} {text!r}: at least 8kbit")
    return int(value)


def parse_rates(text: str | None) -> tuple[int | None, int | None]:
    """``--network-rate RATE`` (both ways) or ``egress=RATE,ingress=RATE`` -> bits/s."""
    if not text:
        return None, None
    if "=" not in text:
        rate = parse_rate(text)
        return rate, rate
    egress = ingress = None
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if key == "egress":
            egress = parse_rate(value, "--network-rate egress")
        elif key == "ingress":
            ingress = parse_rate(value, "--network-rate ingress")
        else:
            raise InvalidArgument(f"--network-rate {text!r}: use RATE, or egress=RATE and/or "
                                  "ingress=RATE")
    return egress, ingress


@dataclass
class NetworkRequest:
    """What a container asked for, from ``--network``, ``-p``, ``-P``, ``--ip`` ..."""

    mode: str  # none | host | container | networks
    networks: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    exposed: list[str] = field(default_factory=list)
    ip: str | None = None
    rate: str | None = None
    aliases: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, network: str, *, publish: Iterable[str] = (), publish_all: bool = False,
              exposed: Iterable[str] = (), ip: str | None = None, rate: str | None = None,
              aliases: Iterable[str] = ()) -> NetworkRequest:
        names = [n.strip() for n in (network or DEFAULT_NETWORK).split(",")]
        special = {"none", "host"}
        if names[0] in special or names[0].startswith("container:"):
            mode = "container" if names[0].startswith("container:") else names[0]
            if len(names) > 1:
                raise InvalidArgument(f"--network {network}: {names[0]} cannot be combined "
                                      "with other networks")
            given = [flag for flag, v in (("-p", list(publish)), ("-P", publish_all),
                                          ("--ip", ip), ("--network-rate", rate),
                                          ("--network-alias", list(aliases))) if v]
            if given:
                raise InvalidArgument(f"{', '.join(given)} need a bridge network; the "
                                      f"container's network is {names[0]}")
            return cls(mode)
        from hutch.network.manager import check_network_name
        from hutch.network.ports import check_no_overlap, parse_publish
        for n in names:
            check_network_name(n)
        if len(set(names)) != len(names):
            raise InvalidArgument(f"--network {network}: a network is named twice")
        check_no_overlap(m for m in (parse_publish(p) for p in publish) if m.host is not None)
        if ip is not None:
            try:
                ipaddress.IPv4Address(ip)
            except ValueError:
                raise InvalidArgument(f"--ip {ip}: not an IPv4 address") from None
        parse_rates(rate)
        for a in aliases:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", a):
                raise InvalidArgument(f"--network-alias {a!r}: letters, digits, '_', '.', '-'")
        return cls("networks", names, list(publish), publish_all, list(exposed), ip, rate,
                   list(aliases))


class ContainerNetworks:
    """Networks of one hutch instance, as the engine uses them."""

    def __init__(self, layout: Layout, names_of: Callable[[str], list[str]]) -> None:
        self.state_dir = os.path.join(layout.root, "network")
        self.netns_dir = os.path.join(layout.run, "netns")
        self.host_netns = os.environ.get(HOST_NETNS_ENV) or None
        self._names_of = names_of
        self._manager = None

    # --- the manager and the networks -------------------------------------------------------

    @property
    def manager(self):  # type: ignore[no-untyped-def]
        if self._manager is None:
            from hutch.network.manager import NetworkManager
            self._manager = NetworkManager(self.state_dir, host_netns=self.host_netns)
        return self._manager

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    def host_subnets(self) -> list[ipaddress.IPv4Network]:
        """What the host's namespace routes already (a new network must not overlap)."""
        from hutch.network.netlink import Netlink
        with Netlink(self.host_netns) as host:
            nets = [r.dst for r in host.routes() if r.dst.prefixlen > 0]
            nets += [a.interface.network for a in host.addresses()
                     if not a.interface.ip.is_loopback]
        return nets

    def create_network(self, name: str, *, subnet: str | None = None,
                       gateway: str | None = None, internal: bool = False,
                       mtu: int | None = None):  # type: ignore[no-untyped-def]
        from hutch.network.dns import NetworkDns
        m = self.manager
        m.avoid = self.host_subnets()
        net = m.create(name, subnet=subnet, gateway=gateway, internal=internal, mtu=mtu)
        try:
            NetworkDns(self.state_dir, name, self.host_netns).start(net.gateway,
                                                                    internal=internal)
        except BaseException as e:
            try:
                m.remove(name)
            except Exception as undo:  # noqa: BLE001
                e.add_note(f"while undoing: removing network {name} failed too: {undo}")
            raise
        return net

    def remove_network(self, name: str) -> None:
        from hutch.network.dns import NetworkDns
        self.manager.remove(name)
        NetworkDns(self.state_dir, name, self.host_netns).stop()

    def _network(self, name: str):  # type: ignore[no-untyped-def]
        """The network ``name`` ready for use: the default one made on first use; bridge
        and resolver made again if a reboot took them."""
        from hutch.network.dns import NetworkDns
        try:
            net = self.manager.get(name)
        except NotFound:
            if name != DEFAULT_NETWORK:
                raise NotFound(f"no network called {name}: make it with "
                               f"`hutch network create {name}`") from None
            try:
                net = self.create_network(name)
            except AlreadyExists:  # another hutch made it meanwhile
                net = self.manager.get(name)
        self.manager.restore(name)
        NetworkDns(self.state_dir, name, self.host_netns).start(net.gateway,
                                                                internal=net.internal)
        return net

    # --- a container's namespace ------------------------------------------------------------

    def netns_path(self, cid: str) -> str:
        return os.path.join(self.netns_dir, cid[:32])

    def userns_path(self, cid: str) -> str:
        return os.path.join(self.netns_dir, cid[:32] + ".user")

    def setup(self, cid: str, req: NetworkRequest, id_base: int | None = None) -> str:
        """The container's namespace, attached to its networks; returns its path.

        With ``id_base`` the namespace belongs to a user namespace of the container's
        mapping (kept at :meth:`userns_path`, which the container then joins), so that
        its root has its network's privileges, not the host's."""
        from hutch.network.netns import (create_persistent, create_persistent_userns,
                                         write_sysctl)
        from hutch.network.ports import parse_exposed, parse_publish
        owner = None
        if id_base is not None:
            owner = create_persistent_userns(self.userns_path(cid), id_base)
        try:
            path = create_persistent(self.netns_path(cid), owner_userns=owner)
        except BaseException:
            from hutch.network.netns import remove_persistent
            remove_persistent(self.userns_path(cid))
            raise
        try:
            # As Docker: a container's root may bind any port and ping, in its own netns
            # (it does not own the namespace when it has a user namespace of its own).
            write_sysctl(path, "net.ipv4.ip_unprivileged_port_start", "0")
            write_sysctl(path, "net.ipv4.ping_group_range", "0 2147483647")
            publish = [parse_publish(p) for p in req.publish]
            if req.publish_all:
                publish += parse_exposed(req.exposed)
            egress, ingress = parse_rates(req.rate)
            for i, name in enumerate(req.networks):
                self._network(name)
                self.manager.connect(name, cid, path, ifname=f"eth{i}",
                                     ip=req.ip if i == 0 else None,
                                     publish=publish if i == 0 else (),
                                     egress_bit=egress if i == 0 else None,
                                     ingress_bit=ingress if i == 0 else None)
                self.refresh_names(name)
        except BaseException as e:
            try:
                self.teardown(cid)
            except Exception as undo:  # noqa: BLE001
                e.add_note(f"while undoing: {undo}")
            raise
        return path

    def ensure(self, cid: str, req: NetworkRequest, id_base: int | None = None) -> str:
        """Before a start: the namespace as it was made (again, after a reboot)."""
        from hutch.network.netns import is_netns
        path = self.netns_path(cid)
        if is_netns(path):
            return path  # made at create and kept: nothing went away
        old = {ep.network: ep for ep in self.manager.endpoints(owner=cid)}
        self.teardown(cid)
        first = old.get(req.networks[0]) if req.networks else None
        if first is not None and req.ip is None:
            req = NetworkRequest(**{**req.__dict__, "ip": str(first.address)})
        return self.setup(cid, req, id_base)

    def teardown(self, cid: str) -> None:
        """Detach the container from every network and drop its namespace."""
        from hutch.network.netns import remove_persistent
        if not os.path.exists(os.path.join(self.state_dir, "network.db")):
            return  # no network was ever made here
        networks = [ep.network for ep in self.manager.endpoints(owner=cid)]
        self.manager.disconnect_all(cid)
        for name in networks:
            self.refresh_names(name)
        remove_persistent(self.netns_path(cid))
        remove_persistent(self.userns_path(cid))

    def connect(self, cid: str, network: str, *, ip: str | None = None,
                aliases: Iterable[str] = ()) -> None:
        """Attach an existing container's namespace to one more network."""
        from hutch.network.netns import is_netns
        path = self.netns_path(cid)
        if not is_netns(path):
            raise InvalidArgument("the container has no network namespace of hutch's (its "
                                  "network is none, host or another container's)")
        self._network(network)
        used = {ep.ifname for ep in self.manager.endpoints(owner=cid)}
        ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
        self.manager.connect(network, cid, path, ifname=ifname, ip=ip)
        self.refresh_names(network)

    def disconnect(self, cid: str, network: str) -> None:
        self.manager.disconnect(network, cid)
        self.refresh_names(network)

    def prune(self, known: set[str]) -> list[str]:
        """Remove what a crash left (namespaces, attachments and links of containers that
        are gone, resolvers of networks that are gone) and the user-made networks that
        no container uses; returns what went."""
        from hutch.network.dns import NetworkDns
        from hutch.network.netns import remove_persistent
        removed = []
        if os.path.isdir(self.netns_dir):
            for entry in sorted(os.listdir(self.netns_dir)):
                if not any(cid.startswith(entry.removesuffix(".user")) for cid in known):
                    remove_persistent(os.path.join(self.netns_dir, entry))
                    removed.append(f"network namespace {entry}")
        if not os.path.exists(os.path.join(self.state_dir, "network.db")):
            return removed
        for ep in self.manager.endpoints():
            if ep.owner not in known:
                self.manager.disconnect(ep.network, ep.owner)
                removed.append(f"endpoint of {ep.owner[:12]} on {ep.network}")
        removed += self.manager.prune()
        for net in self.manager.networks():
            if not net.endpoints and net.name != DEFAULT_NETWORK:
                self.remove_network(net.name)
                removed.append(f"network {net.name}")
        names = {n.name for n in self.manager.networks()}
        dns_dir = os.path.join(self.state_dir, "dns")
        for name in sorted(os.listdir(dns_dir)) if os.path.isdir(dns_dir) else []:
            if name not in names:
                NetworkDns(self.state_dir, name, self.host_netns).stop()  # and its files
                removed.append(f"resolver of {name}")
        for name in names:
            self.refresh_names(name)
        return removed

    # --- names ------------------------------------------------------------------------------

    def refresh_names(self, network: str) -> None:
        """Write the network's hosts file from its endpoints and the containers' names."""
        from hutch.network.dns import HostEntry, NetworkDns
        try:
            net = self.manager.get(network)
        except NotFound:
            return
        entries = []
        for ep in net.endpoints:
            names: list[str] = []
            for n in self._names_of(ep.owner):
                names += [n, f"{n}.{network}"]
            entries.append(HostEntry(ep.address, tuple(dict.fromkeys(names))))
        NetworkDns(self.state_dir, network, self.host_netns).write_hosts(entries)

    def endpoints(self, cid: str) -> list:
        if not os.path.exists(os.path.join(self.state_dir, "network.db")):
            return []
        return self.manager.endpoints(owner=cid)

    def write_files(self, cid: str, directory: str, hostname: str, with_resolver: bool,
                    owner: int | None) -> dict[str, str]:
        """/etc/hosts, /etc/hostname (and /etc/resolv.conf) for the container, in
        ``directory``; returns container path -> file to bind there."""
        from hutch.network.dns import hosts_file, resolv_conf
        eps = self.manager.endpoints(owner=cid) if with_resolver else []
        eps = sorted(eps, key=lambda ep: ep.ifname)
        gateways = [self.manager.get(ep.network).gateway for ep in eps]
        search = [ep.network for ep in eps]
        files = {"/etc/hosts": hosts_file(hostname, [(ep.address, ep.network) for ep in eps]),
                 "/etc/hostname": hostname + "\n"}
        if with_resolver:
            files["/etc/resolv.conf"] = resolv_conf(gateways, search)
        out = {}
        for dest, text in files.items():
            path = os.path.join(directory, os.path.basename(dest))
            # in place, not renamed: a running container's bind mount sees the change
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            with open(fd, "w") as f:
                f.write(text)
            if owner is not None:
                os.chown(path, owner, owner)  # the container's root may edit them, as Docker's
            out[dest] = path
        return out
