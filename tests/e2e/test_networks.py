"""Bridge networks through the CLI: names, published ports, isolation, rates, cleanup.

hutch's host side lives in the namespace the ``hutch`` fixture made for the test
(HUTCH_HOST_NETNS); an "outside" namespace is linked to it by a veth pair:

    outside (192.0.2.2 on wan0) ==veth== sim host (192.0.2.1 on up0) -- hutch's bridges

Nothing here touches the machine's own interfaces, routes or firewall.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import pytest

from test_engine_cli import hutch  # noqa: F401 - the fixture

pytestmark = pytest.mark.nft

HOST_ADDR, OUTSIDE_ADDR = "192.0.2.1", "192.0.2.2"
WEB = ("busybox", "sh", "-c", "mkdir -p /www && hostname > /www/index.html && "
       "exec httpd -f -p 80 -h /www")


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def outside(hutch):  # noqa: F811
    """A namespace beyond the sim host, with a veth pair to it; deleted after."""
    name = f"hutch-t-{secrets.token_hex(3)}-out"
    host = hutch.hostnet.name
    _ip("netns", "add", name)
    try:
        _ip("link", "add", "up0", "netns", host, "type", "veth", "peer", "name", "wan0",
            "netns", name)
        for ns, dev, addr in ((host, "up0", HOST_ADDR), (name, "wan0", OUTSIDE_ADDR)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", host, "route", "add", "default", "via", OUTSIDE_ADDR)
        yield name
    finally:
        for pid in _ip("netns", "pids", name).split():
            os.kill(int(pid), 9)
        _ip("netns", "del", name)


def _in(netns: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", *argv], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _fetch(netns: str, url: str) -> subprocess.CompletedProcess[str]:
    # (busybox 1.35's wget crashes on -T: python's urllib with a timeout instead)
    return _in(netns, sys.executable, "-c", "import sys, urllib.request; sys.stdout.write("
               "urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())", url)


def _inspect(hutch, name: str) -> dict:  # noqa: F811
    return json.loads(hutch("inspect", name).stdout)[0]


def _until(fn, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def test_default_bridge_gives_address_route_hosts_and_resolver(hutch):  # noqa: F811
    out = hutch("run", "--rm", "--hostname", "box", "busybox", "sh", "-c",
                "ip -o -4 addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf").stdout
    assert "inet 10.89.0." in out and "default via 10.89.0.1 dev eth0" in out
    assert "box.bridge box" in out and "nameserver 10.89.0.1" in out


def test_containers_reach_each_other_by_name_and_name_dot_network(hutch):  # noqa: F811
    hutch("network", "create", "front")
    hutch("run", "-d", "--name", "web", "--network", "front", *WEB)
    web_ip = _inspect(hutch, "web")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    out = hutch("run", "--rm", "--network", "front", "busybox", "sh", "-c",
                "nslookup web; timeout 5 wget -q -O- http://web/; "
                "timeout 5 wget -q -O- http://web.front/").stdout
    assert f"Address: {web_ip}" in out
    assert out.count(_inspect(hutch, "web")["Id"][:12]) >= 2  # the page is web's hostname


def test_networks_are_isolated_and_internal_has_no_way_out(hutch, outside):  # noqa: F811
    hutch("network", "create", "a")
    hutch("network", "create", "--internal", "b")
    hutch("run", "-d", "--name", "on-a", "--network", "a", *WEB)
    a_ip = _inspect(hutch, "on-a")["NetworkSettings"]["IPAddress"]
    r = hutch("run", "--rm", "--network", "b", "busybox", "sh", "-c",
              f"timeout 3 wget -q -O- http://{a_ip}/ || echo BLOCKED; "
              f"ping -c1 -W1 {OUTSIDE_ADDR} >/dev/null 2>&1 || echo NO-WAY-OUT; "
              "nslookup on-a >/dev/null 2>&1 || echo UNKNOWN")
    assert r.stdout.split() == ["BLOCKED", "NO-WAY-OUT", "UNKNOWN"]
    # the same from the default network: egress works there, masqueraded
    out = hutch("run", "--rm", "busybox", "sh", "-c", f"ping -c1 -W2 {OUTSIDE_ADDR} && echo OUT")
    assert "OUT" in out.stdout


def test_published_port_answers_from_outside_and_from_the_host(hutch, outside):  # noqa: F811
    hutch("run", "-d", "--name", "web", "-p", "8080:80", *WEB)
    cid = _inspect(hutch, "web")["Id"]
    ports = _inspect(hutch, "web")["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert hutch("port", "web").stdout == "80/tcp -> 0.0.0.0:8080\n"
    host = hutch.hostnet.name
    page = _until(lambda: _fetch(outside, f"http://{HOST_ADDR}:8080/").stdout)
    assert page.strip() == cid[:12]
    assert _fetch(host, "http://127.0.0.1:8080/").stdout.strip() == cid[:12]
    assert _fetch(host, f"http://{HOST_ADDR}:8080/").stdout.strip() == cid[:12]
    # -P: the image's/--expose'd ports on free host ports, shown by inspect
    hutch("run", "-d", "--name", "web2", "--expose", "80", "-P", *WEB)
    mapped = _inspect(hutch, "web2")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    assert 32768 <= int(mapped) <= 60999
    assert _until(lambda: _fetch(outside, f"http://{HOST_ADDR}:{mapped}/").returncode == 0)


def test_taken_port_is_refused_and_nothing_is_made(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "first", "-p", "9000:80", *WEB)
    before = hutch.ids()
    links = _ip("-n", hutch.hostnet.name, "-o", "link")
    r = hutch("run", "-d", "--name", "second", "-p", "9000:80", *WEB, check=False)
    assert r.returncode == 125
    assert "9000/tcp is already published by" in r.stderr
    assert hutch.ids() == before
    assert _ip("-n", hutch.hostnet.name, "-o", "link") == links
    first = _inspect(hutch, "first")["Id"][:32]
    assert sorted(os.listdir(os.path.join(hutch.root, "run", "netns"))) == \
        [first, first + ".user"]  # the first's network namespace and its owner
    r = hutch("run", "--rm", "-p", "99999:80", "busybox", "true", check=False)
    assert r.returncode == 125 and "99999" in r.stderr


def test_static_ip_and_bad_ones(hutch):  # noqa: F811
    hutch("network", "create", "--subnet", "10.123.0.0/24", "fixed")
    out = hutch("run", "--rm", "--network", "fixed", "--ip", "10.123.0.50", "busybox",
                "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "10.123.0.50/24" in out
    r = hutch("run", "--rm", "--network", "fixed", "--ip", "10.9.9.9", "busybox", "true",
              check=False)
    assert r.returncode == 125 and "10.9.9.9" in r.stderr and "10.123.0.0/24" in r.stderr
    r = hutch("run", "--rm", "--network", "none", "--ip", "10.123.0.51", "busybox", "true",
              check=False)
    assert r.returncode == 125 and "--ip need a bridge network" in r.stderr
    assert hutch.ids() == []


def test_connect_and_disconnect_a_running_container(hutch):  # noqa: F811
    hutch("network", "create", "extra")
    hutch("run", "-d", "--name", "web", "--network", "extra", *WEB)
    hutch("run", "-d", "--name", "app", "busybox", "sleep", "300")
    hutch("network", "connect", "extra", "app")
    assert set(_inspect(hutch, "app")["NetworkSettings"]["Networks"]) == {"bridge", "extra"}
    out = hutch("exec", "app", "sh", "-c", "ip -o link; cat /etc/resolv.conf; "
                "timeout 5 wget -q -O- http://web.extra/").stdout
    assert "eth1" in out and "search bridge extra" in out
    assert _inspect(hutch, "web")["Id"][:12] in out
    r = hutch("network", "rm", "extra", check=False)
    assert r.returncode != 0 and "in use" in r.stderr
    hutch("network", "disconnect", "extra", "app")
    out = hutch("exec", "app", "ip", "-o", "link").stdout
    assert "eth1" not in out


def test_rate_limit_is_applied_on_both_ends(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "slow", "--network-rate", "egress=8mbit,ingress=16mbit",
          "busybox", "sleep", "300")
    host_if = _ip("-n", hutch.hostnet.name, "-o", "link", "show", "master",
                  _bridge(hutch, "bridge")).split(":")[1].strip().split("@")[0]
    qdisc = subprocess.run(["tc", "-n", hutch.hostnet.name, "qdisc", "show", "dev", host_if],
                           capture_output=True, text=True).stdout
    assert "tbf" in qdisc and "16Mbit" in qdisc
    pid = _inspect(hutch, "slow")["State"]["Pid"]
    inside = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % pid, "tc", "qdisc", "show",
                             "dev", "eth0"], capture_output=True, text=True).stdout
    assert "tbf" in inside and "8Mbit" in inside
    r = hutch("run", "--rm", "--network-rate", "fast", "busybox", "true", check=False)
    assert r.returncode == 125 and "--network-rate 'fast'" in r.stderr


def _bridge(hutch, network: str) -> str:  # noqa: F811
    return json.loads(hutch("network", "inspect", network).stdout)[0]["Bridge"]


def test_address_survives_restart_and_a_reboot(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "keep", "busybox", "sleep", "300")
    ip = _inspect(hutch, "keep")["NetworkSettings"]["IPAddress"]
    hutch("stop", "-t", "0", "keep")
    hutch("start", "keep")
    assert _inspect(hutch, "keep")["NetworkSettings"]["IPAddress"] == ip
    hutch("stop", "-t", "0", "keep")
    # a reboot: the namespace mount, the bridge and the resolver are gone; records stay
    cid = _inspect(hutch, "keep")["Id"]
    subprocess.run(["umount", os.path.join(hutch.root, "run", "netns", cid[:32])], check=True)
    _ip("-n", hutch.hostnet.name, "link", "del", _bridge(hutch, "bridge"))
    hutch("start", "keep")
    settings = _inspect(hutch, "keep")["NetworkSettings"]
    assert settings["IPAddress"] == ip
    out = hutch("exec", "keep", "ping", "-c1", "-W2", settings["Networks"]["bridge"]["Gateway"])
    assert " 0% packet loss" in out.stdout


def test_everything_goes_with_the_container_and_the_network(hutch):  # noqa: F811
    host = hutch.hostnet.name
    hutch("network", "create", "temp")
    hutch("run", "-d", "--name", "c1", "--network", "temp", "-p", "8081:80", *WEB)
    assert len(_ip("-n", host, "-o", "link").splitlines()) == 3  # lo, bridge, veth end
    hutch("rm", "-f", "c1")
    assert len(_ip("-n", host, "-o", "link").splitlines()) == 2
    assert os.listdir(os.path.join(hutch.root, "run", "netns")) == []
    ruleset = subprocess.run(["nsenter", f"--net=/run/netns/{host}", "nft", "list", "ruleset"],
                             capture_output=True, text=True).stdout
    assert "8081" not in ruleset
    pid = int(open(os.path.join(hutch.root, "network", "dns", "temp", "dnsmasq.pid")).read())
    hutch("network", "rm", "temp")
    assert _ip("-n", host, "-o", "link").split(":")[1].strip() == "lo"
    assert _until(lambda: not _alive(pid))
    assert "temp" not in hutch("network", "ls", "-q").stdout.split()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_prune_removes_what_a_crash_left(hutch, monkeypatch):  # noqa: F811
    from hutch.engine.networking import ContainerNetworks, NetworkRequest
    from hutch.engine.paths import Layout
    hutch("network", "create", "unused")
    hutch("run", "-d", "--name", "kept", "busybox", "sleep", "300")
    # a hutch killed after it made a container's namespace and attachment, before the
    # container's record was written
    monkeypatch.setenv("HUTCH_HOST_NETNS", hutch.hostnet.path)
    lost = "f" * 64
    nets = ContainerNetworks(Layout(hutch.root), lambda cid: [])
    try:
        nets.setup(lost, NetworkRequest.parse("bridge", publish=["8082:80"]))
    finally:
        nets.close()
    out = hutch("network", "prune").stdout
    assert f"network namespace {lost[:32]}" in out and "network unused" in out
    assert f"endpoint of {lost[:12]} on bridge" in out
    assert hutch("network", "ls", "-q").stdout.split() == ["bridge"]
    assert len(_ip("-n", hutch.hostnet.name, "-o", "link").splitlines()) == 3  # lo, br, kept
    ruleset = subprocess.run(["nsenter", f"--net={hutch.hostnet.path}", "nft", "list",
                              "ruleset"], capture_output=True, text=True).stdout
    assert "8082" not in ruleset
    assert hutch("exec", "kept", "true").returncode == 0


def test_stats_count_the_containers_network_traffic(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "talker", "busybox", "sh", "-c",
          "ping -c 20 -i 0.05 -s 1000 10.89.0.1 >/dev/null; sleep 300")
    sample = _until(lambda: (lambda s: s if s["net_tx"] > 20_000 else None)(
        json.loads(hutch("stats", "--no-stream", "--format", "json", "talker").stdout)), 10)
    assert sample and sample["net_tx"] > 20_000 and sample["net_rx"] > 20_000
