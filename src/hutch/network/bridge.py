"""The bridge driver: a network is a bridge in the host's namespace; an attachment
is a veth pair from that bridge into a container's namespace.

Links only: no firewall (``firewall``), no bookkeeping (``manager``). Every
function takes a ``Netlink`` bound to the namespace that plays the host and
paths of container namespaces, and undoes its own partial work when a step
fails.

Names, so that hutch's links can be found again (``hutch network prune``):

- the bridge: given, or ``hbr-<id>``; its alias (IFLA_IFALIAS) is
  ``hutch:network:<name>``.
- the host end of an attachment: ``hv<12 hex>`` from the network and the owner;
  its alias is ``hutch:endpoint:<network>:<owner>``.
- MAC addresses are ``02:68:`` and the four bytes of the IPv4 address, locally
  administered, unique on the bridge, and fixed (the bridge's too, so that it
  does not change as ports come and go and stale the neighbours' ARP caches).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from hutch.errors import HutchError, InvalidArgument
from hutch.network.netlink import Netlink, check_ifname

ALIAS_PREFIX = "hutch:"
MAC_PREFIX = "02:68"


@dataclass(frozen=True)
class BridgeSpec:
    network: str
    bridge: str  # interface name
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    internal: bool = False
    mtu: int | None = None


@dataclass(frozen=True)
class Attachment:
    network: str
    owner: str
    host_if: str
    ifname: str  # inside the container
    netns: str
    interface: ipaddress.IPv4Interface  # address/prefix inside the container
    mac: str


def mac_for(ip: ipaddress.IPv4Address) -> str:
    return MAC_PREFIX + "".join(f":{b:02x}" for b in ip.packed)


def bridge_name(network_id: str) -> str:
    return check_ifname("hbr-" + network_id[:11])


def host_ifname(network: str, owner: str) -> str:
    digest = hashlib.sha256(f"{network}\0{owner}".encode()).hexdigest()
    return "hv" + digest[:12]


def network_alias(network: str) -> str:
    return f"{ALIAS_PREFIX}network:{network}"


def endpoint_alias(network: str, owner: str) -> str:
    return f"{ALIAS_PREFIX}endpoint:{network}:{owner}"


def create_bridge(host: Netlink, spec: BridgeSpec) -> None:
    """The bridge with the gateway address on it, up."""
    if spec.gateway not in spec.subnet:
        raise InvalidArgument(f"gateway {spec.gateway} is outside {spec.subnet}")
    host.add_bridge(spec.bridge, mtu=spec.mtu, alias=network_alias(spec.network))
    try:
        host.set_mac(spec.bridge, mac_for(spec.gateway))
        host.add_address(spec.bridge, ipaddress.IPv4Interface(
            f"{spec.gateway}/{spec.subnet.prefixlen}"))
        host.set_up(spec.bridge)
    except HutchError as e:
        _undo(e, lambda: host.delete(spec.bridge, missing_ok=True))
        raise


def delete_bridge(host: Netlink, bridge: str) -> bool:
    """Remove the bridge (its address and routes go with it); False if it was gone."""
    return host.delete(bridge, missing_ok=True)


def _undo(error: BaseException, step: object) -> None:
    try:
        step()  # type: ignore[operator]
    except Exception as e:  # reported with the first error, never swallowed
        error.add_note(f"cleanup failed too: {e}")


def attach(host: Netlink, spec: BridgeSpec, owner: str, netns: str,
           ip: ipaddress.IPv4Address, *, ifname: str = "eth0", host_if: str | None = None,
           egress_bit: int | None = None, ingress_bit: int | None = None,
           host_up: bool = True) -> Attachment:
    """Connect the namespace at ``netns`` to the bridge.

    A veth pair whose container end is made directly in ``netns`` as ``ifname``,
    with ``ip`` on it, lo up, and a default route through the gateway (unless
    the network is internal or the namespace has a default route already). The
    host end joins the bridge. ``egress_bit`` shapes what the container sends
    (tbf on its end), ``ingress_bit`` what it receives (tbf on the host end).

    With ``host_up=False`` the host end stays down, so no frame crosses before
    the caller has put the port's anti-spoofing rules in place; it then calls
    ``host.set_up(attachment.host_if)``.
    """
    if ip not in spec.subnet:
        raise InvalidArgument(f"address {ip} is outside {spec.subnet} of network {spec.network}")
    host_if = host_if or host_ifname(spec.network, owner)
    mac = mac_for(ip)
    iface = ipaddress.IPv4Interface(f"{ip}/{spec.subnet.prefixlen}")
    host.add_veth(host_if, ifname, peer_netns=netns, mtu=spec.mtu,
                  alias=endpoint_alias(spec.network, owner), peer_mac=mac)
    try:
        host.set_master(host_if, spec.bridge)
        host.set_hairpin(host_if)
        if ingress_bit:
            host.set_rate(host_if, ingress_bit)
        with Netlink(netns) as ctr:
            ctr.set_up("lo")
            ctr.add_address(ifname, iface)
            ctr.set_up(ifname)
            if not spec.internal and not any(r.dst.prefixlen == 0 for r in ctr.routes()):
                ctr.add_route(None, gateway=spec.gateway, dev=ifname)
            if egress_bit:
                ctr.set_rate(ifname, egress_bit)
        if host_up:
            host.set_up(host_if)
    except HutchError as e:
        _undo(e, lambda: host.delete(host_if, missing_ok=True))
        raise
    return Attachment(spec.network, owner, host_if, ifname, netns, iface, mac)


def detach(host: Netlink, host_if: str) -> bool:
    """Remove the veth pair (both ends); False if it was gone already (the container's
    namespace went away, and the pair with it)."""
    return host.delete(host_if, missing_ok=True)


def set_rates(host: Netlink, host_if: str, netns: str, ifname: str,
              egress_bit: int | None, ingress_bit: int | None) -> None:
    """Change (or lift, with None) the rate limits of an attachment."""
    if ingress_bit:
        host.set_rate(host_if, ingress_bit)
    else:
        host.clear_rate(host_if)
    with Netlink(netns) as ctr:
        if egress_bit:
            ctr.set_rate(ifname, egress_bit)
        else:
            ctr.clear_rate(ifname)


def loopback_only(netns: str) -> None:
    """Network mode ``none``: the namespace keeps only lo, which is brought up."""
    with Netlink(netns) as ctr:
        ctr.set_up("lo")


def hutch_links(host: Netlink) -> dict[str, str]:
    """Links of the host namespace that hutch made: name -> alias."""
    return {link.name: link.alias for link in host.links()
            if link.alias and link.alias.startswith(ALIAS_PREFIX)}
