"""What a container asks of the network (--network, -p, --ip, --network-rate) and the
files it gets (/etc/hosts, resolv.conf): parsing and messages, no root needed."""

from __future__ import annotations

import ipaddress

import pytest

from hutch.engine.networking import NetworkRequest, parse_rate, parse_rates
from hutch.errors import InvalidArgument
from hutch.network.dns import hosts_file, resolv_conf


@pytest.mark.parametrize("text,bits", [("10mbit", 10_000_000), ("500kbit", 500_000),
                                       ("2mbps", 16_000_000), ("1g", 10**9),
                                       ("1.5mbit", 1_500_000)])
def test_rates(text: str, bits: int) -> None:
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["fast", "10 parsecs", "-1mbit", "1bit", ""])
def test_bad_rates_are_named(text: str) -> None:
    with pytest.raises(InvalidArgument, match="--network-rate"):
        parse_rate(text)


def test_both_ways_or_each_way() -> None:
    assert parse_rates("8mbit") == (8_000_000, 8_000_000)
    assert parse_rates("egress=8mbit") == (8_000_000, None)
    assert parse_rates("ingress=1mbit,egress=2mbit") == (2_000_000, 1_000_000)
    assert parse_rates(None) == (None, None)
    with pytest.raises(InvalidArgument, match="egress=RATE"):
        parse_rates("up=8mbit")


def test_modes() -> None:
    assert NetworkRequest.parse("none").mode == "none"
    assert NetworkRequest.parse("host").mode == "host"
    assert NetworkRequest.parse("container:/proc/1/ns/net").mode == "container"
    req = NetworkRequest.parse("", publish=["8080:80"])
    assert (req.mode, req.networks, req.publish) == ("networks", ["bridge"], ["8080:80"])
    assert NetworkRequest.parse("a,b").networks == ["a", "b"]


@pytest.mark.parametrize("network,kw,message", [
    ("none", {"publish": ["80"]}, "-p need a bridge network"),
    ("host", {"ip": "10.0.0.2"}, "--ip need a bridge network"),
    ("container:/x", {"rate": "1mbit"}, "--network-rate need a bridge network"),
    ("none,a", {}, "none cannot be combined"),
    ("a,a", {}, "named twice"),
    ("bad name!", {}, "bad network name"),
    ("bridge", {"ip": "10.0.0.300"}, "--ip 10.0.0.300: not an IPv4 address"),
    ("bridge", {"publish": ["8080:80", "8080:81"]}, "want the same host port"),
    ("bridge", {"publish": ["80/sctp"]}, "protocol 'sctp'"),
    ("bridge", {"aliases": ["no spaces"]}, "--network-alias"),
])
def test_bad_requests_are_refused_with_the_reason(network: str, kw: dict,
                                                  message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        NetworkRequest.parse(network, **kw)


def test_resolv_conf_lists_the_networks_resolvers() -> None:
    text = resolv_conf([ipaddress.IPv4Address("10.89.0.1"), ipaddress.IPv4Address("10.89.1.1")],
                       ["bridge", "back"])
    assert "nameserver 10.89.0.1\nnameserver 10.89.1.1\n" in text
    assert "search bridge back\n" in text and "ndots:0" in text


def test_resolv_conf_without_networks_takes_the_hosts_reachable_servers(tmp_path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\n")
    text = resolv_conf([], host_file=str(host))
    assert "192.0.2.53" in text and "127.0.0.53" not in text


def test_hosts_file_names_the_container_on_each_network() -> None:
    text = hosts_file("web", [(ipaddress.IPv4Address("10.89.0.5"), "bridge")])
    assert "127.0.0.1\tlocalhost" in text and "10.89.0.5\tweb.bridge web\n" in text
    assert "127.0.1.1\tweb" in hosts_file("web", [])
