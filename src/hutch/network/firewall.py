"""The firewall: hutch's nftables ruleset, rendered whole and applied atomically.

The only user of the ``nft`` binary in hutch. hutch owns two tables and never
touches any other: ``table inet hutch`` (NAT and forwarding) and ``table bridge
hutch`` (anti-spoofing on the bridge ports). Each change renders both from the
full state (the networks and their endpoints, as the caller keeps them) and
replaces them in one ``nft -f -`` transaction: ``add table`` (so the delete
cannot fail), ``delete table``, then the new table. Either all of it is in
force or none of it; there is no moment without rules.

What the rules do, per network (a bridge with a subnet):

- egress: traffic from the subnet leaving by another interface is masqueraded
  (the outside sees the host's address), except for ``internal`` networks.
- isolation: nothing is forwarded from one hutch bridge to another.
- internal networks: nothing is forwarded into or out of their bridge at all
  (besides the missing default route in the container).
- published ports: traffic to a local address of the host (``fib daddr type
  local``) on a published port is DNATed to the container, in prerouting (from
  outside) and in output (from the host itself). Traffic that the DNAT sends
  across networks is allowed: a published port is public.
- from the host itself to 127.0.0.1:PORT: the DNATed packet leaves with source
  127.0.0.1, which the kernel routes out of a non-loopback link only with
  ``route_localnet=1`` on the bridge (the manager sets it), and which is then
  masqueraded to the gateway address so that the container can answer. Packets
  *to* 127.0.0.0/8 that come in from a bridge are dropped before routing (the
  hole route_localnet would open, CVE-2020-8558).
- hairpin: a container reaching a published port (its own or a neighbour's)
  through a host address is masqueraded too, so that the answer comes back
  through the host.
- anti-spoofing (bridge family, on each container's port of the bridge): only
  the container's own MAC and IPv4 address as sources (ARP included, 0.0.0.0 for
  ARP probes), and only IPv4 and ARP frames (no IPv6, no VLAN tags: hutch gives
  no IPv6 address yet).

``Firewall`` is the Protocol the manager needs; ``NftFirewall`` implements it
in a given network namespace (``None``: the caller's own).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hutch.errors import InvalidArgument, SystemFailure, Unsupported
from hutch.network.netns import run_in
from hutch.network.ports import PortMapping

TABLE = "hutch"


@dataclass(frozen=True)
class FwEndpoint:
    """One container's port on a bridge."""

    host_if: str  # the host end of the veth pair (a port of the bridge)
    address: ipaddress.IPv4Address
    mac: str
    ports: tuple[PortMapping, ...] = ()  # resolved mappings (host ports chosen)


@dataclass(frozen=True)
class FwNetwork:
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network
    internal: bool = False
    endpoints: tuple[FwEndpoint, ...] = field(default_factory=tuple)


class Firewall(Protocol):
    def apply(self, networks: Sequence[FwNetwork]) -> None:
        """Make the rules those of exactly these networks (none: remove hutch's tables)."""

    def remove(self) -> None:
        """Remove hutch's tables, if present."""

    def tables(self) -> list[tuple[str, str]]:
        """(family, name) of hutch's tables present now."""


def _q(name: str) -> str:
    """An interface name as an nft string (names are checked when links are made)."""
    if '"' in name or "\\" in name:
        raise InvalidArgument(f"interface name {name!r} cannot go into a firewall rule")
    return f'"{name}"'


def _dnat_rule(m: PortMapping, address: ipaddress.IPv4Address) -> str:
    match = f"ip daddr {m.host_ip} " if m.host_ip else ""
    pairs = m.pairs()
    host = m.host
    assert host is not None
    if len(pairs) == 1:
        (h, c), = pairs
        return f"{match}{m.proto} dport {h} dnat ip to {address}:{c}"
    if all(h == c for h, c in pairs):
        return f"{match}{m.proto} dport {host} dnat ip to {address}"
    elements = ", ".join(f"{h} : {address} . {c}" for h, c in pairs)
    return f"{match}{m.proto} dport {host} dnat ip to {m.proto} dport map {{ {elements} }}"


def render_inet(networks: Sequence[FwNetwork], table: str = TABLE) -> str:
    bridges = [n.bridge for n in networks]
    lines = [f"table inet {table} {{"]
    if bridges:
        lines.append("\tset bridges { type ifname; elements = { "
                     + ", ".join(_q(b) for b in bridges) + " } }")
    else:
        lines.append("\tset bridges { type ifname; }")
    lines += [
        "\tchain prerouting_filter {",
        "\t\ttype filter hook prerouting priority raw; policy accept;",
        "\t\tiifname @bridges ip daddr 127.0.0.0/8 drop",
        "\t}",
        "\tchain prerouting_nat {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\tfib daddr type local jump published",
        "\t}",
        "\tchain output_nat {",
        "\t\ttype nat hook output priority -100; policy accept;",
        "\t\tfib daddr type local jump published",
        "\t}",
        "\tchain published {",
    ]
    for net in networks:
        for ep in net.endpoints:
            for m in ep.ports:
                lines.append(f"\t\t{_dnat_rule(m, ep.address)}")
    lines += [
        "\t}",
        "\tchain postrouting_nat {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
    ]
    for net in networks:
        br = _q(net.bridge)
        if not net.internal:
            lines.append(f"\t\tip saddr {net.subnet} oifname != {br} masquerade")
        if any(ep.ports for ep in net.endpoints):
            lines.append(f"\t\toifname {br} ip saddr 127.0.0.0/8 masquerade")
            lines.append(f"\t\toifname {br} ct status dnat ip saddr {net.subnet} masquerade")
    lines += [
        "\t}",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
    ]
    for net in networks:
        if net.internal:
            br = _q(net.bridge)
            lines.append(f"\t\tiifname {br} oifname != {br} drop")
            lines.append(f"\t\toifname {br} iifname != {br} drop")
    lines.append("\t\tct status dnat accept")
    for net in networks:
        br = _q(net.bridge)
        lines.append(f"\t\tiifname {br} oifname @bridges oifname != {br} drop")
    lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"


def render_bridge(networks: Sequence[FwNetwork], table: str = TABLE) -> str:
    ports = [ep for net in networks for ep in net.endpoints]
    lines = [f"table bridge {table} {{",
             "\tchain prerouting {",
             "\t\ttype filter hook prerouting priority filter; policy accept;"]
    if ports:  # one hash lookup per frame, however many ports
        lines.append("\t\tiifname vmap { " + ", ".join(
            f"{_q(ep.host_if)} : jump port_{ep.host_if}" for ep in ports) + " }")
    lines.append("\t}")
    for ep in ports:
        lines += [
            f"\tchain port_{ep.host_if} {{",
            "\t\tether type != { ip, arp } drop",
            f"\t\tether saddr != {ep.mac} drop",
            f"\t\tether type ip ip saddr != {ep.address} drop",
            f"\t\tether type arp arp saddr ether != {ep.mac} drop",
            f"\t\tether type arp arp saddr ip != {{ {ep.address}, 0.0.0.0 }} drop",
            "\t}",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(networks: Sequence[FwNetwork], table: str = TABLE) -> str:
    """The whole transaction that replaces hutch's tables with these networks' rules."""
    return (f"add table inet {table}\ndelete table inet {table}\n"
            + render_inet(networks, table)
            + f"add table bridge {table}\ndelete table bridge {table}\n"
            + render_bridge(networks, table))


class NftFirewall:
    """hutch's tables in the network namespace ``netns`` (a path; None: our own)."""

    def __init__(self, netns: str | None = None, *, nft: str = "nft", table: str = TABLE) -> None:
        self.netns = netns
        self.table = table
        self._nft = nft

    def _run(self, args: list[str], what: str, script: str | None = None) -> str:
        binary = shutil.which(self._nft)
        if binary is None:
            raise Unsupported(f"{what}: the nft command is not installed (Debian package "
                              "nftables)")
        res = run_in(self.netns, [binary, *args], input=script)
        if res.returncode != 0:
            where = f" in network namespace {self.netns}" if self.netns else ""
            raise SystemFailure(1, f"{what}{where}: nft failed: {res.stderr.strip()}")
        return res.stdout

    def apply(self, networks: Sequence[FwNetwork]) -> None:
        if not networks:
            self.remove()
            return
        self._run(["-f", "-"], "apply hutch's firewall rules", render(networks, self.table))

    def tables(self) -> list[tuple[str, str]]:
        out = self._run(["-j", "list", "tables"], "list firewall tables")
        found = []
        for item in json.loads(out or '{"nftables": []}').get("nftables", []):
            t = item.get("table")
            if t and t.get("name") == self.table:
                found.append((t["family"], t["name"]))
        return found

    def remove(self) -> None:
        present = self.tables()
        if not present:
            return
        script = "".join(f"delete table {family} {name}\n" for family, name in present)
        self._run(["-f", "-"], "remove hutch's firewall tables", script)

    def ruleset(self) -> str:
        """hutch's tables as nft lists them (for inspect and debugging)."""
        return "".join(self._run(["list", "table", family, name], "list firewall table")
                       for family, name in self.tables())
