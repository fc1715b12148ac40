"""hutch's nftables rules in the test's host namespace: published ports, refused ports,
anti-spoofing, only our own tables touched, everything gone after removal."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv4Network

import pytest
from conftest import HOST_ADDR, OUTSIDE_ADDR, Topo, received, wait_for

from hutch.errors import Conflict, InvalidArgument
from hutch.network.bridge import ALIAS_PREFIX
from hutch.network.firewall import FwEndpoint, FwNetwork, NftFirewall, render
from hutch.network.manager import NetworkManager
from hutch.network.netns import socket_in
from hutch.network.ports import parse_publish

pytestmark = pytest.mark.nft


def test_published_port_answers_from_outside_and_from_the_host(
        topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    c1 = topo.container("c1")
    manager.connect("a", "ctr1", c1.path, publish=[parse_publish("8080:80")])
    c1.start("serve", "80")
    # from the outside world: the container sees the real client (DNAT only)
    res = topo.outside.tool("connect", HOST_ADDR, "8080")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == OUTSIDE_ADDR
    # from the host itself, on its own address and on loopback
    res = topo.host.tool("connect", HOST_ADDR, "8080")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == HOST_ADDR
    res = topo.host.tool("connect", "127.0.0.1", "8080")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(manager.get("a").gateway)  # 127.0.0.1 masqueraded


def test_published_range_udp_and_host_address(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    c1, c2 = topo.container("c1"), topo.container("c2")
    ep = manager.connect("a", "ctr1", c1.path, publish=[
        parse_publish("9000-9001:7000-7001"), parse_publish(f"{HOST_ADDR}:5353:53/udp"),
        parse_publish("127.0.0.1:6000:6000")])
    assert [str(p) for p in ep.ports] == ["9000-9001:7000-7001/tcp",
                                          f"{HOST_ADDR}:5353:53/udp",
                                          "127.0.0.1:6000:6000/tcp"]
    c1.start("serve", "7000")
    c1.start("serve", "7001")
    c1.start("serve", "6000")
    udp = c1.start("serve-udp", "53")
    for port in ("9000", "9001"):
        res = topo.outside.tool("connect", HOST_ADDR, port)
        assert res.returncode == 0 and res.stdout.strip() == OUTSIDE_ADDR, (port, res.stderr)
    topo.outside.tool("send-udp", HOST_ADDR, "5353", "hello")
    assert received(udp, 1.0) == {f"{OUTSIDE_ADDR} hello"}
    # bound to 127.0.0.1 only: reachable from the host, not from the outside
    assert topo.host.tool("connect", "127.0.0.1", "6000").returncode == 0
    assert topo.outside.tool("connect", HOST_ADDR, "6000", "1").returncode == 1
    # a container of another network reaches a published port through the host address
    manager.create("b")
    e2 = manager.connect("b", "ctr2", c2.path)
    # (masqueraded as it leaves network b, like any egress: ctr1 sees its own gateway)
    res = c2.tool("connect", HOST_ADDR, "9000")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(manager.get("a").gateway) != str(e2.address)
    # and a container reaches its own published port through the host (hairpin)
    res = c1.tool("connect", HOST_ADDR, "9001")
    assert res.returncode == 0, res.stderr


def test_any_free_host_port_is_chosen(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    c1 = topo.container("c1")
    ep = manager.connect("a", "ctr1", c1.path, publish=[parse_publish("80"),
                                                        parse_publish("7100-7105:80")])
    first, second = ep.ports
    assert first.host is not None and 32768 <= first.host.start <= 60999
    assert second.host is not None and second.host.start == 7100 and len(second.host) == 1
    c1.start("serve", "80")
    for p in (first, second):
        assert p.host is not None
        res = topo.outside.tool("connect", HOST_ADDR, str(p.host.start))
        assert res.returncode == 0, (p, res.stderr)


def test_taken_port_is_refused(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    c1, c2 = topo.container("c1"), topo.container("c2")
    manager.connect("a", "ctr1", c1.path, publish=[parse_publish("8080:80")])
    before_links = topo.host.links()
    with pytest.raises(Conflict, match=r"8080/tcp is already published by ctr1"):
        manager.connect("a", "ctr2", c2.path, publish=[parse_publish("8080:81")])
    # a process of the host listening on the port
    listener = socket_in(topo.host.path, socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("0.0.0.0", 8081))
        listener.listen(1)
        with pytest.raises(Conflict, match=r"host port 8081/tcp is taken: a process in the "
                                           r"host's network namespace has bound it"):
            manager.connect("a", "ctr2", c2.path, publish=[parse_publish("8081:80")])
        # a host range whose every port is taken, one way or the other
        with pytest.raises(Conflict, match="no free host port in 8080-8081"):
            manager.connect("a", "ctr2", c2.path, publish=[parse_publish("8080-8081:90")])
        assert topo.host.links() == before_links
    finally:
        listener.close()
    # the same port for udp is another port
    manager.connect("a", "ctr2", c2.path, publish=[parse_publish("8080:80/udp")])
    assert topo.host.links() != before_links
    c3 = topo.container("c3")
    with pytest.raises(InvalidArgument, match="same host port"):
        manager.connect("a", "ctr3", c3.path, publish=[parse_publish("9000:1"),
                                                       parse_publish("9000:2")])
    with pytest.raises(InvalidArgument, match="internal"):
        manager.create("i", internal=True)
        manager.connect("i", "ctr3", c3.path, publish=[parse_publish("9100:1")])
    assert "eth0" not in c3.links() and manager.endpoints("ctr3") == []


def test_spoofed_source_address_is_dropped(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a", subnet="10.89.20.0/24")
    c1, c2 = topo.container("c1"), topo.container("c2")
    e1 = manager.connect("a", "ctr1", c1.path)
    e2 = manager.connect("a", "ctr2", c2.path)
    recv = c2.start("serve-udp", "5000")
    # its own address goes through
    c1.tool("send-udp", str(e2.address), "5000", "honest")
    assert received(recv, 1.0) == {f"{e1.address} honest"}
    # another address of the subnet, added inside the container by its root, does not:
    # neither to the neighbour, nor out through the host
    c1.ip("addr", "add", "10.89.20.99/32", "dev", "eth0")
    c1.tool("send-udp", str(e2.address), "5000", "spoofed", "10.89.20.99")
    topo.outside.start("serve", "9000")
    res = c1.run(sys.executable, "-c", (
        "import socket; s = socket.socket(); s.bind(('10.89.20.99', 0)); s.settimeout(1.5)\n"
        f"try: s.connect(('{OUTSIDE_ADDR}', 9000)); print('connected')\n"
        "except OSError as e: print('refused', e)"), check=False)
    assert res.stdout.startswith("refused"), res
    # nor a forged MAC address
    c1.ip("link", "set", "eth0", "address", "02:68:00:00:00:99")
    c1.tool("send-udp", str(e2.address), "5000", "forged-mac")
    assert received(recv, 1.0) == set()
    c1.ip("link", "set", "eth0", "address", e1.mac)
    c1.tool("send-udp", str(e2.address), "5000", "honest-again")
    assert received(recv, 1.0) == {f"{e1.address} honest-again"}
    counters = topo.host.run("nft", "list", "table", "bridge", "hutch").stdout
    assert "drop" in counters


def test_only_our_own_tables_are_touched(topo: Topo, manager: NetworkManager) -> None:
    topo.host.run("nft", "add table inet other; add chain inet other c "
                  "{ type filter hook forward priority 10; policy accept; }; "
                  "add rule inet other c counter")
    other_before = topo.host.run("nft", "-s", "list", "table", "inet", "other").stdout
    manager.create("a")
    c1 = topo.container("c1")
    manager.connect("a", "ctr1", c1.path, publish=[parse_publish("8080:80")])
    assert sorted(NftFirewall(topo.host.path).tables()) == [("bridge", "hutch"), ("inet", "hutch")]
    manager.disconnect("a", "ctr1")
    manager.remove("a")
    assert topo.host.nft_tables() == ["table inet other"]
    assert topo.host.run("nft", "-s", "list", "table", "inet", "other").stdout == other_before


def test_rendered_ruleset_is_accepted_by_nft(topo: Topo) -> None:
    """The renderer's output for a busy state passes ``nft -c`` (check only)."""
    nets = [FwNetwork("a", "hbr-a", IPv4Network("10.89.0.0/24"), False, (
        FwEndpoint("hv1", IPv4Address("10.89.0.2"), "02:68:0a:59:00:02", (
            parse_publish("80:80"), parse_publish("1.2.3.4:8000-8002:9000-9002/udp"),
            parse_publish("7000-7001:7000-7001"))),)),
        FwNetwork("b", "hbr-b", IPv4Network("10.89.1.0/24"), True, ())]
    res = subprocess.run(["nsenter", f"--net={topo.host.path}", "nft", "-c", "-f", "-"],
                         input=render(nets), capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr + render(nets)
    assert topo.host.nft_tables() == []  # a check applies nothing


def test_everything_is_gone_after_removal(topo: Topo, manager: NetworkManager) -> None:
    host_links = topo.host.links()
    c1, c2, c3 = topo.container("c1"), topo.container("c2"), topo.container("c3")
    manager.create("a")
    manager.create("b", internal=True)
    manager.connect("a", "ctr1", c1.path, publish=[parse_publish("8080:80")],
                    egress_bit=50_000_000, ingress_bit=50_000_000)
    manager.connect("a", "ctr2", c2.path)
    manager.connect("b", "ctr2", c2.path, ifname="eth1")
    manager.connect("b", "ctr3", c3.path)
    assert len(topo.host.links()) == len(host_links) + 2 + 4
    manager.disconnect_all("ctr2")
    manager.disconnect("a", "ctr1")
    manager.disconnect("b", "ctr3")
    manager.remove("a")
    manager.remove("b")
    assert topo.host.links() == host_links
    assert topo.host.nft_tables() == []
    addrs = topo.host.ip("-o", "-4", "addr").stdout
    assert "10.89." not in addrs
    for c in (c1, c2, c3):
        assert c.links() == ["lo"]
    assert manager.networks() == [] and manager.endpoints() == []
    assert manager.ipam.pools() == [] and manager.ipam.leases() == []
    routes = topo.host.ip("route").stdout
    assert "10.89." not in routes


def test_prune_removes_what_a_crash_left(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    c1, c2 = topo.container("c1"), topo.container("c2")
    manager.connect("a", "ctr1", c1.path, publish=[parse_publish("8080:80")])
    manager.connect("a", "ctr2", c2.path)
    # ctr1's namespace goes away without a disconnect (its veth pair goes with it)
    c1.ip("link", "del", "eth0")
    # and a link of a crashed attachment that no record knows
    topo.host.ip("link", "add", "hvdeadbeef0001", "type", "veth", "peer", "name", "x0")
    topo.host.ip("link", "set", "hvdeadbeef0001", "alias", f"{ALIAS_PREFIX}endpoint:a:lost")
    removed = manager.prune()
    assert sorted(removed) == ["endpoint ctr1 on a", "link hvdeadbeef0001"]
    assert [e.owner for e in manager.endpoints()] == ["ctr2"]
    assert [lease.owner for lease in manager.ipam.leases("a")] == ["ctr2"]
    assert "dnat ip to" not in topo.host.run("nft", "list", "table", "inet", "hutch").stdout
    assert wait_for(lambda: "hvdeadbeef0001" not in topo.host.links())


def test_rate_limits_hold(topo: Topo, manager: NetworkManager) -> None:
    """Egress shaped on the container's end, ingress on the host end: a 3 s transfer
    runs at the rate +-10 % (TCP goodput, after the first half second)."""
    rate = 20_000_000
    manager.create("a")
    c1, c2, c3 = topo.container("c1"), topo.container("c2"), topo.container("c3")
    manager.connect("a", "ctr1", c1.path, egress_bit=rate)  # sends slowly
    e2 = manager.connect("a", "ctr2", c2.path)  # free
    e3 = manager.connect("a", "ctr3", c3.path, ingress_bit=rate)  # receives slowly
    results = {}
    for name, sender, receiver, addr in (("egress", c1, c2, e2.address),
                                         ("ingress", c2, c3, e3.address),
                                         ("none", c3, c2, e2.address)):
        sink = receiver.start("sink", "5001")
        sender.tool("source", str(addr), "5001", "3", timeout=30)
        out, _ = sink.communicate(timeout=30)
        results[name] = json.loads(out)
        time.sleep(0.2)
    print({k: round(v["steady_bps"] / 1e6, 2) for k, v in results.items()})
    for name in ("egress", "ingress"):
        assert abs(results[name]["steady_bps"] - rate) <= 0.10 * rate, results
    assert results["none"]["steady_bps"] > 5 * rate, results  # control: no limit at all


def test_rules_hold_without_br_netfilter(topo: Topo, manager: NetworkManager) -> None:
    """Many hosts have no br_netfilter (bridged frames skip the IP hooks): published
    ports, hairpin, isolation and anti-spoofing must not depend on it."""
    topo.host.run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0")
    manager.create("a", subnet="10.89.30.0/24")
    manager.create("b")
    c1, c2, c3 = topo.container("c1"), topo.container("c2"), topo.container("c3")
    e1 = manager.connect("a", "ctr1", c1.path, publish=[parse_publish("8080:80")])
    e2 = manager.connect("a", "ctr2", c2.path)
    manager.connect("b", "ctr3", c3.path)
    c1.start("serve", "80")
    assert topo.outside.tool("connect", HOST_ADDR, "8080").stdout.strip() == OUTSIDE_ADDR
    assert topo.host.tool("connect", "127.0.0.1", "8080").returncode == 0
    assert c1.tool("connect", HOST_ADDR, "8080").returncode == 0  # hairpin
    assert c2.tool("connect", str(e1.address), "80").stdout.strip() == str(e2.address)
    assert c3.tool("connect", str(e1.address), "80", "1").returncode == 1  # isolation
    recv = c2.start("serve-udp", "5000")
    c1.ip("addr", "add", "10.89.30.99/32", "dev", "eth0")
    c1.tool("send-udp", str(e2.address), "5000", "spoofed", "10.89.30.99")
    c1.tool("send-udp", str(e2.address), "5000", "honest")
    assert received(recv, 1.0) == {f"{e1.address} honest"}


def test_publish_on_a_foreign_address_is_refused(topo: Topo, manager: NetworkManager) -> None:
    manager.create("a")
    c1 = topo.container("c1")
    with pytest.raises(InvalidArgument, match="192.0.2.77: it is not an address of the host"):
        manager.connect("a", "ctr1", c1.path, publish=[parse_publish("192.0.2.77:8080:80")])
    assert manager.endpoints() == [] and c1.links() == ["lo"]
