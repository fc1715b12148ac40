"""Published ports: ``-p [IP:][HOST:]CONTAINER[/tcp|udp]`` parsed, checked and compared.

Forms (as Docker and podman take them)::

    80                      container port 80, any free host port
    8080:80                 host port 8080 to container port 80
    127.0.0.1:8080:80       only on the host address 127.0.0.1
    127.0.0.1::80           on that address, any free host port
    8000-8010:9000-9010     a range, port by port (same sizes)
    8000-8010:80            one free host port out of 8000-8010, to 80
    53:53/udp               udp (tcp is the default)

Pure data: nothing here touches the system. The firewall turns a resolved
mapping into DNAT rules; the manager picks free host ports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hutch.errors import InvalidArgument

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True, order=True)
class PortRange:
    start: int
    end: int  # inclusive

    def __post_init__(self) -> None:
        if not (1 <= self.start <= 65535 and 1 <= self.end <= 65535):
            raise InvalidArgument(f"bad port range {self}: ports are 1 to 65535")
        if self.end < self.start:
            raise InvalidArgument(f"bad port range {self.start}-{self.end}: the end comes "
                                  "before the start")

    def __len__(self) -> int:
        return self.end - self.start + 1

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end + 1))

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"

    def overlaps(self, other: PortRange) -> bool:
        return self.start <= other.end and other.start <= self.end

    @classmethod
    def parse(cls, text: str, what: str) -> PortRange:
        start, sep, end = text.partition("-")
        try:
            a = int(start)
            b = int(end) if sep else a
        except ValueError:
            raise InvalidArgument(f"bad {what} port {text!r}: a number or a range "
                                  "like 8000-8010") from None
        return cls(a, b)


@dataclass(frozen=True)
class PortMapping:
    """Host port(s) to container port(s). ``host`` None: any free host port(s);
    a host range longer than a one-port container range: one free port of it."""

    container: PortRange
    host: PortRange | None = None
    host_ip: ipaddress.IPv4Address | None = None  # None: every address of the host
    proto: str = "tcp"

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise InvalidArgument(f"bad protocol {self.proto!r}: tcp or udp")
        if self.host is not None and len(self.host) != len(self.container) and \
                len(self.container) != 1:
            raise InvalidArgument(
                f"bad port mapping {self}: the host range ({len(self.host)} ports) and the "
                f"container range ({len(self.container)}) differ in size")

    @property
    def resolved(self) -> bool:
        """True when every host port is known (nothing left to pick)."""
        return self.host is not None and len(self.host) == len(self.container)

    def pairs(self) -> list[tuple[int, int]]:
        """(host port, container port) for each port of a resolved mapping."""
        if not self.resolved:
            raise InvalidArgument(f"port mapping {self} has no host port chosen yet")
        assert self.host is not None
        return list(zip(self.host, self.container))

    def with_host(self, host: PortRange) -> PortMapping:
        return PortMapping(self.container, host, self.host_ip, self.proto)

    def conflicts_with(self, other: PortMapping) -> bool:
        """Both want one host port of one protocol on one host address."""
        if self.proto != other.proto or self.host is None or other.host is None:
            return False
        if self.host_ip is not None and other.host_ip is not None and \
                self.host_ip != other.host_ip:
            return False
        return self.host.overlaps(other.host)

    def __str__(self) -> str:
        ip = f"{self.host_ip}:" if self.host_ip else ""
        host = str(self.host) if self.host else ""
        if not ip and not host:
            return f"{self.container}/{self.proto}"
        return f"{ip}{host}:{self.container}/{self.proto}"

    def to_json(self) -> dict[str, object]:
        return {"container": [self.container.start, self.container.end],
                "host": [self.host.start, self.host.end] if self.host else None,
                "host_ip": str(self.host_ip) if self.host_ip else None, "proto": self.proto}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> PortMapping:
        c = d["container"]
        h = d.get("host")
        ip = d.get("host_ip")
        return cls(PortRange(*c), PortRange(*h) if h else None,  # type: ignore[misc]
                   ipaddress.IPv4Address(ip) if ip else None, str(d.get("proto", "tcp")))


def parse_publish(spec: str) -> PortMapping:
    """One ``-p`` value, checked."""
    text = spec.strip()
    if not text:
        raise InvalidArgument("empty port mapping: give [IP:][HOST:]CONTAINER[/tcp|udp]")
    body, slash, proto = text.partition("/")
    proto = proto.lower() if slash else "tcp"
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"bad port mapping {spec!r}: protocol {proto!r} is not tcp "
                              "or udp")
    if body.startswith("["):
        raise InvalidArgument(f"bad port mapping {spec!r}: IPv6 host addresses are not "
                              "supported yet")
    parts = body.split(":")
    host_ip: ipaddress.IPv4Address | None = None
    if len(parts) == 3:
        ip_text, host_text, ctr_text = parts
        if ip_text:
            try:
                host_ip = ipaddress.IPv4Address(ip_text)
            except ValueError:
                raise InvalidArgument(f"bad port mapping {spec!r}: {ip_text!r} is not an "
                                      "IPv4 address") from None
            if host_ip.is_unspecified:
                host_ip = None
    elif len(parts) == 2:
        host_text, ctr_text = parts
    elif len(parts) == 1:
        host_text, ctr_text = "", parts[0]
    else:
        raise InvalidArgument(f"bad port mapping {spec!r}: give [IP:][HOST:]CONTAINER"
                              "[/tcp|udp]")
    if not ctr_text:
        raise InvalidArgument(f"bad port mapping {spec!r}: the container port is missing")
    container = PortRange.parse(ctr_text, "container")
    host = PortRange.parse(host_text, "host") if host_text else None
    if host is not None and len(host) != len(container) and len(container) != 1:
        raise InvalidArgument(
            f"bad port mapping {spec!r}: the host range ({len(host)} ports) and the "
            f"container range ({len(container)}) must have the same size")
    return PortMapping(container, host, host_ip, proto)


def parse_exposed(exposed: Iterable[str]) -> list[PortMapping]:
    """``-P``: each exposed port of the image (``80/tcp``, ``53/udp``) on any free host port."""
    out = []
    for item in exposed:
        port, slash, proto = item.partition("/")
        out.append(PortMapping(PortRange.parse(port, "exposed"), None, None,
                               proto.lower() if slash else "tcp"))
    return out


def find_conflict(new: PortMapping, existing: Iterable[PortMapping]) -> PortMapping | None:
    """The first of ``existing`` that wants one of ``new``'s host ports, or None."""
    for other in existing:
        if new.conflicts_with(other):
            return other
    return None


def check_no_overlap(mappings: Iterable[PortMapping]) -> None:
    """Refuse a list of mappings of which two want one host port."""
    seen: list[PortMapping] = []
    for m in mappings:
        clash = find_conflict(m, seen)
        if clash is not None:
            raise InvalidArgument(f"port mappings {clash} and {m} want the same host port")
        seen.append(m)
