"""The nftables ruleset as text: what each state renders (no nft needed here; the
integration tests run it through ``nft -c`` and for real)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from hutch.errors import InvalidArgument
from hutch.network.firewall import FwEndpoint, FwNetwork, render, render_bridge, render_inet
from hutch.network.ports import parse_publish


def _nets() -> list[FwNetwork]:
    ep = FwEndpoint("hv1", IPv4Address("10.89.0.2"), "02:68:0a:59:00:02", (
        parse_publish("8080:80"), parse_publish("1.2.3.4:53:53/udp"),
        parse_publish("7000-7001:7000-7001"), parse_publish("8000-8001:9000-9001")))
    return [FwNetwork("a", "hbr-a", IPv4Network("10.89.0.0/24"), False, (ep,)),
            FwNetwork("b", "hbr-b", IPv4Network("10.89.1.0/24"), True, ())]


def test_transaction_replaces_only_our_tables() -> None:
    text = render(_nets())
    assert text.startswith("add table inet hutch\ndelete table inet hutch\ntable inet hutch {")
    assert "add table bridge hutch\ndelete table bridge hutch\ntable bridge hutch {" in text
    tables = {line.split("{")[0].strip() for line in text.splitlines()
              if line.startswith(("table", "add table", "delete table"))}
    assert tables == {"add table inet hutch", "delete table inet hutch", "table inet hutch",
                      "add table bridge hutch", "delete table bridge hutch",
                      "table bridge hutch"}


def test_inet_rules() -> None:
    text = render_inet(_nets())
    assert 'set bridges { type ifname; elements = { "hbr-a", "hbr-b" } }' in text
    # published ports: single, with a host address, same-number range, shifted range
    assert "tcp dport 8080 dnat ip to 10.89.0.2:80" in text
    assert "ip daddr 1.2.3.4 udp dport 53 dnat ip to 10.89.0.2:53" in text
    assert "tcp dport 7000-7001 dnat ip to 10.89.0.2\n" in text
    assert ("tcp dport 8000-8001 dnat ip to tcp dport map { 8000 : 10.89.0.2 . 9000, "
            "8001 : 10.89.0.2 . 9001 }") in text
    # egress masquerade for a, none for the internal b
    assert 'ip saddr 10.89.0.0/24 oifname != "hbr-a" masquerade' in text
    assert "ip saddr 10.89.1.0/24" not in text
    # loopback and hairpin masquerade only where ports are published
    assert 'oifname "hbr-a" ip saddr 127.0.0.0/8 masquerade' in text
    assert 'oifname "hbr-b" ip saddr 127.0.0.0/8' not in text
    # internal: nothing in or out; isolation for every bridge
    assert 'iifname "hbr-b" oifname != "hbr-b" drop' in text
    assert 'oifname "hbr-b" iifname != "hbr-b" drop' in text
    assert 'iifname "hbr-a" oifname @bridges oifname != "hbr-a" drop' in text
    # the internal drops come before the DNAT accept, isolation after it
    assert text.index('iifname "hbr-b" oifname != "hbr-b" drop') < \
        text.index("ct status dnat accept") < text.index('iifname "hbr-a" oifname @bridges')
    assert "iifname @bridges ip daddr 127.0.0.0/8 drop" in text


def test_bridge_rules_anti_spoofing() -> None:
    text = render_bridge(_nets())
    assert 'iifname vmap { "hv1" : jump port_hv1 }' in text
    for rule in ("ether type != { ip, arp } drop",
                 "ether saddr != 02:68:0a:59:00:02 drop",
                 "ether type ip ip saddr != 10.89.0.2 drop",
                 "ether type arp arp saddr ether != 02:68:0a:59:00:02 drop",
                 "ether type arp arp saddr ip != { 10.89.0.2, 0.0.0.0 } drop"):
        assert rule in text


def test_empty_state() -> None:
    text = render([])
    assert "set bridges { type ifname; }" in text
    assert "masquerade" not in text and "dnat ip to" not in text


def test_unresolved_mapping_is_not_rendered() -> None:
    ep = FwEndpoint("hv1", IPv4Address("10.89.0.2"), "02:68:0a:59:00:02",
                    (parse_publish("80"),))
    with pytest.raises(InvalidArgument, match="no host port chosen"):
        render([FwNetwork("a", "hbr-a", IPv4Network("10.89.0.0/24"), False, (ep,))])


def test_quotes_cannot_be_injected() -> None:
    with pytest.raises(InvalidArgument):
        render([FwNetwork("a", 'x"; flush ruleset; "', IPv4Network("10.89.0.0/24"))])
