"""``-p`` parsing, validation and conflicts (pure data)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from hutch.errors import InvalidArgument
from hutch.network.ports import (
    PortMapping,
    PortRange,
    check_no_overlap,
    find_conflict,
    parse_exposed,
    parse_publish,
)


@pytest.mark.parametrize("spec, host_ip, host, container, proto", [
    ("80", None, None, (80, 80), "tcp"),
    ("8080:80", None, (8080, 8080), (80, 80), "tcp"),
    ("8080:80/udp", None, (8080, 8080), (80, 80), "udp"),
    ("8080:80/TCP", None, (8080, 8080), (80, 80), "tcp"),
    ("127.0.0.1:8080:80", "127.0.0.1", (8080, 8080), (80, 80), "tcp"),
    ("127.0.0.1::80", "127.0.0.1", None, (80, 80), "tcp"),
    ("0.0.0.0:8080:80", None, (8080, 8080), (80, 80), "tcp"),
    ("8000-8010:9000-9010", None, (8000, 8010), (9000, 9010), "tcp"),
    ("8000-8010:80", None, (8000, 8010), (80, 80), "tcp"),
    ("53:53/udp", None, (53, 53), (53, 53), "udp"),
])
def test_parse_forms(spec: str, host_ip: str | None, host: tuple[int, int] | None,
                     container: tuple[int, int], proto: str) -> None:
    m = parse_publish(spec)
    assert m.host_ip == (IPv4Address(host_ip) if host_ip else None)
    assert ((m.host.start, m.host.end) if m.host else None) == host
    assert (m.container.start, m.container.end) == container
    assert m.proto == proto


@pytest.mark.parametrize("spec, reason", [
    ("", "empty"),
    ("8080:80/sctp", "not tcp or udp"),
    ("8080:", "container port is missing"),
    ("x:80", "bad host port"),
    ("0:80", "1 to 65535"),
    ("8080:70000", "1 to 65535"),
    ("9010-9000:80", "end comes before"),
    ("8000-8001:9000-9002", "same size"),
    ("8000:9000-9001", "same size"),
    ("1.2.3:80:80", "not an IPv4 address"),
    ("[::1]:80:80", "IPv6"),
    ("a:b:c:d", "give"),
])
def test_parse_refusals(spec: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        parse_publish(spec)


def test_pairs_and_resolution() -> None:
    m = parse_publish("8000-8002:9000-9002")
    assert m.resolved and m.pairs() == [(8000, 9000), (8001, 9001), (8002, 9002)]
    picked = parse_publish("8000-8010:80")
    assert not picked.resolved
    with pytest.raises(InvalidArgument, match="no host port chosen"):
        picked.pairs()
    assert picked.with_host(PortRange(8003, 8003)).pairs() == [(8003, 80)]
    assert str(parse_publish("127.0.0.1:8000-8001:9000-9001/udp")) == \
        "127.0.0.1:8000-8001:9000-9001/udp"
    assert str(parse_publish("80")) == "80/tcp"


def test_json_round_trip() -> None:
    for spec in ("80", "1.2.3.4:8000-8001:90-91/udp", "8080:80"):
        m = parse_publish(spec)
        assert PortMapping.from_json(m.to_json()) == m


def test_conflicts() -> None:
    a = parse_publish("8080:80")
    assert a.conflicts_with(parse_publish("8080:81"))
    assert not a.conflicts_with(parse_publish("8080:80/udp"))  # another protocol
    assert a.conflicts_with(parse_publish("127.0.0.1:8080:80"))  # wildcard covers it
    assert not parse_publish("127.0.0.1:8080:80").conflicts_with(
        parse_publish("127.0.0.2:8080:80"))
    assert parse_publish("8000-8010:9000-9010").conflicts_with(parse_publish("8010:1"))
    assert not parse_publish("8000-8010:9000-9010").conflicts_with(parse_publish("8011:1"))
    assert not a.conflicts_with(parse_publish("80"))  # no host port yet: nothing to clash
    assert find_conflict(parse_publish("8005:1"), [a, parse_publish("8000-8010:1")]) == \
        parse_publish("8000-8010:1")
    with pytest.raises(InvalidArgument, match="same host port"):
        check_no_overlap([a, parse_publish("8080:81")])
    check_no_overlap([a, parse_publish("8080:80/udp"), parse_publish("8081:80")])


def test_exposed() -> None:
    assert [str(m) for m in parse_exposed(["80/tcp", "53/udp", "443"])] == \
        ["80/tcp", "53/udp", "443/tcp"]
