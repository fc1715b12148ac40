"""Bridge networks in a namespace playing the host: links, addresses, reachability,
isolation, internal networks, masquerade."""

from __future__ import annotations

import ipaddress

import pytest
from conftest import HOST_ADDR, OUTSIDE_ADDR, Topo

from hutch.errors import AlreadyExists, InvalidArgument, NotFound, WrongState
from hutch.network.manager import NetworkManager
from hutch.network.netlink import Netlink

pytestmark = pytest.mark.nft


def test_container_end_is_eth0_with_address_route_and_lo(topo: Topo,
                                                          manager: NetworkManager) -> None:
    net = manager.create("a", subnet="10.89.7.0/24")
    c1 = topo.container("c1")
    ep = manager.connect("a", "ctr1", c1.path)
    assert ep.address == ipaddress.IPv4Address("10.89.7.2")  # .1 is the gateway
    with Netlink(c1.path) as nl:
        eth0 = nl.link("eth0")
        assert eth0.up and eth0.mac == ep.mac == "02:68:0a:59:07:02"
        assert nl.link("lo").up
        assert [str(a.interface) for a in nl.addresses("eth0")] == ["10.89.7.2/24"]
        default = [r for r in nl.routes() if r.dst.prefixlen == 0]
        assert [(str(r.gateway), r.ifname) for r in default] == [("10.89.7.1", "eth0")]
    with Netlink(topo.host.path) as nl:
        bridge = nl.link(net.bridge)
        port = nl.link(ep.host_if)
        assert port.master == bridge.index and port.up
        assert port.alias == "hutch:endpoint:a:ctr1"
        assert [str(a.interface) for a in nl.addresses(net.bridge)] == ["10.89.7.1/24"]
    # the forwarding switch of the *test's* host namespace was turned on, nobody else's
    assert topo.host.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"


def test_two_containers_on_one_network_talk(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    c1, c2 = topo.container("c1"), topo.container("c2")
    e1 = manager.connect("a", "ctr1", c1.path)
    e2 = manager.connect("a", "ctr2", c2.path)
    c2.start("serve", "8000")
    res = c1.tool("connect", str(e2.address), "8000")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(e1.address)  # straight over the bridge, no NAT


def test_containers_on_two_networks_cannot_talk(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    manager.create("b")
    c1, c2, c3 = topo.container("c1"), topo.container("c2"), topo.container("c3")
    manager.connect("a", "ctr1", c1.path)
    e2 = manager.connect("b", "ctr2", c2.path)
    manager.connect("b", "ctr3", c3.path)
    c2.start("serve", "8000")
    assert c3.tool("connect", str(e2.address), "8000").returncode == 0  # control: same net
    res = c1.tool("connect", str(e2.address), "8000", "1.5")
    assert res.returncode == 1 and "timed out" in res.stderr


def test_internal_network_has_no_way_out(topo: Topo, manager: NetworkManager) -> None:
    manager.create("wan")
    net = manager.create("inner", internal=True)
    c1, c2, c3 = topo.container("c1"), topo.container("c2"), topo.container("c3")
    manager.connect("wan", "ctr1", c1.path)
    manager.connect("inner", "ctr2", c2.path)
    e3 = manager.connect("inner", "ctr3", c3.path)
    topo.outside.start("serve", "9000")
    assert c1.tool("connect", OUTSIDE_ADDR, "9000").returncode == 0  # control: a normal network
    # no default route is given...
    assert "default" not in c2.ip("route").stdout
    res = c2.tool("connect", OUTSIDE_ADDR, "9000", "1")
    assert res.returncode == 1 and "unreachable" in res.stderr
    # ...and a container that adds one itself is stopped by the firewall
    c2.ip("route", "add", "default", "via", str(net.gateway))
    res = c2.tool("connect", OUTSIDE_ADDR, "9000", "1.5")
    assert res.returncode == 1 and "timed out" in res.stderr
    # while the neighbours on the internal network still talk
    c3.start("serve", "8000")
    assert c2.tool("connect", str(e3.address), "8000").returncode == 0


def test_egress_is_masqueraded(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    c1 = topo.container("c1")
    manager.connect("a", "ctr1", c1.path)
    topo.outside.start("serve", "9000")
    res = c1.tool("connect", OUTSIDE_ADDR, "9000")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == HOST_ADDR  # the outside sees the host, not 10.89.x.y


def test_static_ip_honoured_or_refused(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a", subnet="10.89.9.0/24")
    c1, c2 = topo.container("c1"), topo.container("c2")
    ep = manager.connect("a", "ctr1", c1.path, ip="10.89.9.77")
    assert str(ep.address) == "10.89.9.77"
    assert "10.89.9.77/24" in c1.ip("-o", "addr", "show", "eth0").stdout
    with pytest.raises(AlreadyExists, match="taken by ctr1"):
        manager.connect("a", "ctr2", c2.path, ip="10.89.9.77")
    with pytest.raises(InvalidArgument, match="gateway"):
        manager.connect("a", "ctr2", c2.path, ip="10.89.9.1")
    with pytest.raises(InvalidArgument, match="outside the subnet"):
        manager.connect("a", "ctr2", c2.path, ip="10.89.10.5")
    assert "eth0" not in c2.links()  # nothing was made for the refused ones


def test_failed_connect_leaves_nothing(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    before = topo.host.links()
    with pytest.raises(NotFound, match="does not exist"):
        manager.connect("a", "ghost", "/run/netns/hutch-t-no-such-namespace")
    assert topo.host.links() == before
    assert manager.ipam.leases("a") == []
    c1 = topo.container("c1")
    c1.ip("link", "add", "eth0", "type", "bridge")  # the name is taken in the container
    with pytest.raises(AlreadyExists, match="eth0"):
        manager.connect("a", "ctr1", c1.path)
    assert topo.host.links() == before
    assert manager.ipam.leases("a") == [] and manager.endpoints() == []


def test_network_in_use_is_not_removed(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    c1 = topo.container("c1")
    manager.connect("a", "ctr1", c1.path)
    with pytest.raises(WrongState, match="in use by ctr1"):
        manager.remove("a")
    with pytest.raises(AlreadyExists):
        manager.create("a")
    manager.disconnect("a", "ctr1")
    manager.remove("a")
    with pytest.raises(NotFound):
        manager.get("a")


def test_none_mode_is_loopback_only(topo: Topo) -> None:
    from hutch.network.bridge import loopback_only

    c1 = topo.container("c1")
    loopback_only(c1.path)
    assert c1.links() == ["lo"]
    assert "UP" in c1.ip("link", "show", "lo").stdout
    c1.start("serve", "7000")
    assert c1.tool("connect", "127.0.0.1", "7000").stdout.strip() == "127.0.0.1"
    assert c1.tool("connect", OUTSIDE_ADDR, "9000", "1").returncode == 1


def test_mtu_and_rates_are_applied(topo: Topo, manager: NetworkManager) -> None:
    net = manager.create("jumbo", mtu=9000)
    c1 = topo.container("c1")
    ep = manager.connect("jumbo", "ctr1", c1.path, egress_bit=10_000_000,
                         ingress_bit=30_000_000)
    with Netlink(topo.host.path) as host, Netlink(c1.path) as ctr:
        assert host.link(net.bridge).mtu == 9000
        assert host.link(ep.host_if).mtu == 9000 and ctr.link("eth0").mtu == 9000
        assert [q.rate_bit for q in ctr.qdiscs("eth0") if q.kind == "tbf"] == [10_000_000]
        assert [q.rate_bit for q in host.qdiscs(ep.host_if) if q.kind == "tbf"] == [30_000_000]
    manager.set_rate("jumbo", "ctr1", egress_bit=None, ingress_bit=5_000_000)
    with Netlink(topo.host.path) as host, Netlink(c1.path) as ctr:
        assert not [q for q in ctr.qdiscs("eth0") if q.kind == "tbf"]
        assert [q.rate_bit for q in host.qdiscs(ep.host_if) if q.kind == "tbf"] == [5_000_000]
    assert manager.endpoints("ctr1")[0].ingress_bit == 5_000_000
