"""The adapter over pyroute2: links, addresses, routes and qdiscs in one namespace.

This is the only module of hutch that imports pyroute2 (on first use, not at
import time). Every method names what it does in the errors it raises, turned
into ``hutch.errors`` classes:

- EEXIST -> AlreadyExists, ENODEV/ENOENT/ESRCH -> NotFound,
- EOPNOTSUPP -> Unsupported (a kernel without the feature),
- any other errno -> SystemFailure carrying it.

A ``Netlink`` is bound to one network namespace, given by path (``None`` is the
caller's own). Its socket is made inside that namespace by a thread that enters
it (``netns.socket_in``), which costs about a millisecond, where pyroute2's own
``netns=`` forks a helper process (about 8 ms).
"""

from __future__ import annotations

import errno as E
import importlib.util
import ipaddress
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hutch.errors import (
    AlreadyExists,
    HutchError,
    InvalidArgument,
    NotFound,
    SystemFailure,
    Unsupported,
)
from hutch.network.netns import open_netns, socket_in

NETLINK_ROUTE = 0
IFNAMSIZ = 16  # with the final NUL
_IFNAME_BAD = set("/: \t\n")
# tbf's rate is a 32-bit count of bytes per second in the classic attribute
MAX_RATE_BIT = (2**32 - 1) * 8
TC_H_ROOT = 0xFFFFFFFF


def check_ifname(name: str) -> str:
    """An interface name the kernel accepts: 1-15 bytes, no '/', ':' or blanks."""
    if not name or len(name.encode()) >= IFNAMSIZ or name in (".", "..") or \
            _IFNAME_BAD & set(name):
        raise InvalidArgument(f"bad interface name {name!r}: 1 to {IFNAMSIZ - 1} characters, "
                              "without '/', ':' or blanks")
    return name


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str | None  # "bridge", "veth", None for lo and physical links
    mac: str
    mtu: int
    up: bool  # administratively up (IFF_UP)
    master: int | None  # index of the bridge it is a port of
    alias: str | None  # IFLA_IFALIAS: hutch writes "hutch:..." here to find its links


@dataclass(frozen=True)
class Address:
    ifname: str
    interface: ipaddress.IPv4Interface


@dataclass(frozen=True)
class Route:
    dst: ipaddress.IPv4Network  # 0.0.0.0/0 for the default route
    gateway: ipaddress.IPv4Address | None
    ifname: str | None


@dataclass(frozen=True)
class Qdisc:
    ifname: str
    kind: str
    handle: int
    parent: int
    rate_bit: int | None  # tbf only


def _translate(e: Exception, what: str) -> HutchError:
    code = getattr(e, "code", None) or getattr(e, "errno", None) or E.EIO
    reason = os.strerror(code) if isinstance(code, int) and code > 0 else str(e)
    message = f"{what}: {reason}"
    if code == E.EEXIST:
        return AlreadyExists(message)
    if code in (E.ENODEV, E.ENOENT, E.ESRCH):
        return NotFound(message)
    if code in (E.EOPNOTSUPP, E.EPROTONOSUPPORT, E.EAFNOSUPPORT):
        return Unsupported(message + " (the kernel lacks this feature)")
    return SystemFailure(code if isinstance(code, int) else E.EIO, message)


def _pyroute2() -> tuple[Any, type[Exception]]:
    """pyroute2's IPRoute and NetlinkError: the one import of pyroute2 in hutch.

    The package's ``__init__`` imports every family pyroute2 has (conntrack, ipvs,
    wireguard, nl80211, NDB ...), about 90 ms here, on the path of every container
    start on a network; hutch needs rtnetlink only (about 55 ms). So the package object
    is made without running its ``__init__`` and only the modules used are imported;
    when something else imported pyroute2 fully, that is used as it is.
    """
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.loader is None:
            raise NotFound("pyroute2 is not installed (it is one of hutch's dependencies)")
        sys.modules["pyroute2"] = importlib.util.module_from_spec(spec)  # not executed
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    return IPRoute, NetlinkError


class Netlink:
    """Links, addresses, routes and qdiscs of one network namespace."""

    def __init__(self, netns: str | None = None) -> None:
        IPRoute, _ = _pyroute2()
        self.netns = netns
        self._where = f"network namespace {netns}" if netns else "the host's network namespace"
        try:
            sock = socket_in(netns, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        except OSError as e:
            if isinstance(e, HutchError):
                raise
            raise _translate(e, f"open a netlink socket in {self._where}") from None
        try:
            self._ipr = IPRoute(use_socket=sock)
        except Exception as e:
            sock.close()
            raise _translate(e, f"open a netlink socket in {self._where}") from None

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _op(self, what: str) -> Iterator[None]:
        _, NetlinkError = _pyroute2()
        try:
            yield
        except HutchError:
            raise
        except (NetlinkError, OSError) as e:
            raise _translate(e, f"{what} in {self._where}") from None

    # --- links ------------------------------------------------------------------------------

    @staticmethod
    def _link(msg: Any) -> Link:
        info = msg.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        return Link(index=msg["index"], name=msg.get_attr("IFLA_IFNAME"), kind=kind,
                    mac=msg.get_attr("IFLA_ADDRESS") or "", mtu=msg.get_attr("IFLA_MTU") or 0,
                    up=bool(msg["flags"] & 1), master=msg.get_attr("IFLA_MASTER"),
                    alias=msg.get_attr("IFLA_IFALIAS"))

    def links(self) -> list[Link]:
        with self._op("list links"):
            return [self._link(m) for m in self._ipr.get_links()]

    def find(self, name: str) -> Link | None:
        """The link called ``name``, or None."""
        with self._op(f"look up link {name}"):
            found = self._ipr.link_lookup(ifname=name)
            if not found:
                return None
            msgs = self._ipr.get_links(found[0])
        return self._link(msgs[0]) if msgs else None

    def link(self, name: str) -> Link:
        found = self.find(name)
        if found is None:
            raise NotFound(f"no link {name} in {self._where}")
        return found

    def _index(self, name: str) -> int:
        with self._op(f"look up link {name}"):
            found = self._ipr.link_lookup(ifname=name)
        if not found:
            raise NotFound(f"no link {name} in {self._where}")
        return int(found[0])

    def add_bridge(self, name: str, *, mtu: int | None = None, alias: str | None = None) -> Link:
        check_ifname(name)
        kw: dict[str, Any] = {}
        if mtu:
            kw["mtu"] = mtu
        with self._op(f"create bridge {name}"):
            # no STP and no forwarding delay: a port forwards as soon as it is up
            self._ipr.link("add", ifname=name, kind="bridge", br_stp_state=0,
                           br_forward_delay=0, **kw)
        if alias:  # the kernel ignores IFLA_IFALIAS when it creates a link
            self._after_create(name, lambda: self.set_alias(name, alias))
        return self.link(name)

    def _after_create(self, name: str, step: Any) -> None:
        """A step right after ``name`` was made; on failure the link is deleted again."""
        try:
            step()
        except HutchError as e:
            try:
                self.delete(name, missing_ok=True)
            except HutchError as cleanup:
                e.add_note(f"deleting {name} failed too: {cleanup}")
            raise

    def add_veth(self, name: str, peer: str, *, peer_netns: str | None = None,
                 mtu: int | None = None, alias: str | None = None,
                 peer_mac: str | None = None) -> Link:
        """A veth pair ``name`` (here) and ``peer``, the peer made directly in ``peer_netns``
        (a path) when given, so that a name like eth0 never clashes here."""
        check_ifname(name)
        check_ifname(peer)
        peer_spec: dict[str, Any] = {"ifname": peer}
        if mtu:
            peer_spec["mtu"] = mtu
        if peer_mac:
            peer_spec["address"] = peer_mac
        kw: dict[str, Any] = {}
        if mtu:
            kw["mtu"] = mtu
        fd = open_netns(peer_netns) if peer_netns else None
        try:
            if fd is not None:
                peer_spec["net_ns_fd"] = fd
            where = f" (peer {peer} in network namespace {peer_netns})" if peer_netns else \
                f" (peer {peer})"
            with self._op(f"create veth pair {name}{where}"):
                self._ipr.link("add", ifname=name, kind="veth", peer=peer_spec, **kw)
        finally:
            if fd is not None:
                os.close(fd)
        if alias:
            self._after_create(name, lambda: self.set_alias(name, alias))
        return self.link(name)

    def delete(self, name: str, *, missing_ok: bool = False) -> bool:
        """Delete a link (a veth takes its peer with it); False if it was not there."""
        found = self.find(name)
        if found is None:
            if missing_ok:
                return False
            raise NotFound(f"delete link {name}: no such link in {self._where}")
        try:
            with self._op(f"delete link {name}"):
                self._ipr.link("del", index=found.index)
        except NotFound:
            if not missing_ok:
                raise
            return False
        return True

    def _set(self, name: str, what: str, **kw: Any) -> None:
        index = self._index(name)
        with self._op(f"{what} of link {name}"):
            self._ipr.link("set", index=index, **kw)

    def set_up(self, name: str) -> None:
        self._set(name, "set up", state="up")

    def set_down(self, name: str) -> None:
        self._set(name, "set down", state="down")

    def set_mtu(self, name: str, mtu: int) -> None:
        if not 68 <= mtu <= 65535:
            raise InvalidArgument(f"bad MTU {mtu} for {name}: between 68 and 65535")
        self._set(name, f"set MTU {mtu}", mtu=mtu)

    def set_master(self, name: str, bridge: str | None) -> None:
        """Make ``name`` a port of ``bridge`` (None: of no bridge)."""
        master = self._index(bridge) if bridge else 0
        self._set(name, f"attach to bridge {bridge}" if bridge else "detach from its bridge",
                  master=master)

    def set_hairpin(self, name: str, on: bool = True) -> None:
        """Let the bridge send a frame back out of the port ``name`` it came in by (a
        container reaching itself through a DNATed host port, with br_netfilter)."""
        index = self._index(name)
        with self._op(f"set hairpin mode {'on' if on else 'off'} on bridge port {name}"):
            self._ipr.brport("set", index=index, mode=1 if on else 0)

    def set_alias(self, name: str, alias: str) -> None:
        self._set(name, f"set alias {alias!r}", ifalias=alias)

    def set_mac(self, name: str, mac: str) -> None:
        self._set(name, f"set address {mac}", address=mac)

    def rename(self, name: str, new: str) -> None:
        """Rename a link (it must be down)."""
        check_ifname(new)
        self._set(name, f"rename to {new}", ifname=new)

    def move_to(self, name: str, netns: str, new_name: str | None = None) -> None:
        """Move a link to the namespace at path ``netns``, renamed on the way if asked."""
        index = self._index(name)
        fd = open_netns(netns)
        try:
            kw: dict[str, Any] = {"net_ns_fd": fd}
            if new_name:
                kw["ifname"] = check_ifname(new_name)
            with self._op(f"move link {name} to network namespace {netns}"):
                self._ipr.link("set", index=index, **kw)
        finally:
            os.close(fd)

    # --- addresses and routes ---------------------------------------------------------------

    def add_address(self, name: str, interface: ipaddress.IPv4Interface | str) -> None:
        iface = ipaddress.IPv4Interface(interface)
        index = self._index(name)
        kw: dict[str, Any] = {}
        if iface.network.prefixlen <= 30:
            kw["broadcast"] = str(iface.network.broadcast_address)
        with self._op(f"add address {iface} to {name}"):
            self._ipr.addr("add", index=index, address=str(iface.ip),
                           prefixlen=iface.network.prefixlen, **kw)

    def delete_address(self, name: str, interface: ipaddress.IPv4Interface | str) -> None:
        iface = ipaddress.IPv4Interface(interface)
        index = self._index(name)
        with self._op(f"delete address {iface} from {name}"):
            self._ipr.addr("del", index=index, address=str(iface.ip),
                           prefixlen=iface.network.prefixlen)

    def addresses(self, name: str | None = None) -> list[Address]:
        names = {link.index: link.name for link in self.links()}
        kw: dict[str, Any] = {"family": socket.AF_INET}
        if name is not None:
            kw["index"] = self._index(name)
        with self._op(f"list addresses{' of ' + name if name else ''}"):
            msgs = self._ipr.get_addr(**kw)
        return [Address(names.get(m["index"], str(m["index"])),
                        ipaddress.IPv4Interface(f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}"))
                for m in msgs]

    def add_route(self, dst: ipaddress.IPv4Network | str | None, *,
                  gateway: ipaddress.IPv4Address | str | None = None,
                  dev: str | None = None) -> None:
        """Add a route; ``dst`` None (or 0.0.0.0/0) is the default route."""
        net = ipaddress.IPv4Network(dst or "0.0.0.0/0")
        kw: dict[str, Any] = {"dst": str(net.network_address), "dst_len": net.prefixlen}
        if gateway is not None:
            kw["gateway"] = str(gateway)
        if dev is not None:
            kw["oif"] = self._index(dev)
        what = f"add route to {net}" + (f" via {gateway}" if gateway else "") + \
            (f" dev {dev}" if dev else "")
        with self._op(what):
            self._ipr.route("add", **kw)

    def routes(self) -> list[Route]:
        names = {link.index: link.name for link in self.links()}
        with self._op("list routes"):
            msgs = self._ipr.get_routes(family=socket.AF_INET, table=254)
        out = []
        for m in msgs:
            dst = m.get_attr("RTA_DST") or "0.0.0.0"
            gw = m.get_attr("RTA_GATEWAY")
            oif = m.get_attr("RTA_OIF")
            out.append(Route(ipaddress.IPv4Network(f"{dst}/{m['dst_len']}"),
                             ipaddress.IPv4Address(gw) if gw else None,
                             names.get(oif) if oif is not None else None))
        return out

    # --- traffic control --------------------------------------------------------------------

    def set_rate(self, name: str, rate_bit: int, *, burst: int | None = None,
                 latency_ms: int = 50) -> None:
        """Shape what ``name`` sends to ``rate_bit`` bits per second (a tbf root qdisc),
        replacing its root qdisc.

        The burst defaults to 5 ms at the rate, at least 16 KiB; a larger burst lets a
        short transfer go faster than the rate, a smaller one costs throughput.
        """
        if not 8000 <= rate_bit <= MAX_RATE_BIT:
            raise InvalidArgument(f"bad rate {rate_bit} bit/s for {name}: between 8 kbit/s "
                                  f"and {MAX_RATE_BIT // 10**9} Gbit/s")
        if burst is None:
            burst = max(rate_bit // 8 // 200, 16384)
        index = self._index(name)
        with self._op(f"set rate {rate_bit} bit/s (tbf) on {name}"):
            self._ipr.tc("replace", "tbf", index, handle="1:", rate=f"{rate_bit}bit",
                         burst=burst, latency=f"{latency_ms}ms")

    def clear_rate(self, name: str) -> None:
        """Remove the root qdisc of ``name`` (back to the default); no error if none."""
        index = self._index(name)
        if not any(q.kind == "tbf" for q in self.qdiscs(name)):
            return
        with self._op(f"remove the root qdisc of {name}"):
            self._ipr.tc("del", index=index, handle="1:", parent=TC_H_ROOT)

    def qdiscs(self, name: str) -> list[Qdisc]:
        index = self._index(name)
        with self._op(f"list qdiscs of {name}"):
            msgs = self._ipr.get_qdiscs(index)
        out = []
        for m in msgs:
            kind = m.get_attr("TCA_KIND")
            rate = None
            if kind == "tbf":
                opts = m.get_attr("TCA_OPTIONS")
                parms = opts.get_attr("TCA_TBF_PARMS") if opts is not None else None
                if parms is not None:
                    rate = parms["rate"] * 8
            out.append(Qdisc(name, kind, m["handle"], m["parent"], rate))
        return out
