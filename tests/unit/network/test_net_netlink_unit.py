"""The netlink adapter's pure parts: names, error translation, lazy import."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from hutch.errors import AlreadyExists, InvalidArgument, NotFound, SystemFailure, Unsupported
from hutch.network.bridge import bridge_name, host_ifname, mac_for
from hutch.network.netlink import _translate, check_ifname
from hutch.network.netns import netns_path


@pytest.mark.parametrize("name", ["eth0", "hbr-0123456789a", "a" * 15, "v.1"])
def test_good_ifnames(name: str) -> None:
    assert check_ifname(name) == name


@pytest.mark.parametrize("name", ["", "a" * 16, "a/b", "a:b", "a b", ".", ".."])
def test_bad_ifnames(name: str) -> None:
    with pytest.raises(InvalidArgument, match="bad interface name"):
        check_ifname(name)


@pytest.mark.parametrize("code, cls", [(errno.EEXIST, AlreadyExists), (errno.ENODEV, NotFound),
                                       (errno.EOPNOTSUPP, Unsupported),
                                       (errno.EPERM, SystemFailure)])
def test_errors_are_translated_with_what_failed(code: int, cls: type) -> None:
    err = _translate(OSError(code, "x"), "create bridge br0 in network namespace /x")
    assert isinstance(err, cls)
    assert str(err).startswith("create bridge br0 in network namespace /x: ")
    if isinstance(err, SystemFailure):
        assert err.errno == code


def test_names_and_macs() -> None:
    from ipaddress import IPv4Address

    assert mac_for(IPv4Address("10.89.0.2")) == "02:68:0a:59:00:02"
    assert len(host_ifname("net", "ctr")) == 14 and host_ifname("a", "b") != host_ifname("b", "a")
    assert bridge_name("0123456789abcdef") == "hbr-0123456789a"
    assert netns_path(42) == "/proc/42/ns/net"
    assert netns_path("c1") == "/run/netns/c1"
    assert netns_path("/proc/1/ns/net") == "/proc/1/ns/net"
    assert netns_path(None) is None


def test_missing_namespace_is_not_found() -> None:
    from hutch.network.netlink import Netlink

    with pytest.raises(NotFound, match="network namespace /run/netns/hutch-t-none does not"):
        Netlink("/run/netns/hutch-t-none")


def test_importing_the_network_package_loads_no_pyroute2() -> None:
    code = ("import sys, hutch.network.manager, hutch.network.firewall, hutch.network.ipam; "
            "print('pyroute2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
