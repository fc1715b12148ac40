"""--network none / host / container:NAME (bridge networks: test_networks.py)."""

from __future__ import annotations

import json
import os
import subprocess

from test_engine_cli import hutch  # noqa: F401 - the fixture


def _links(out: str) -> list[str]:
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                  if line[:1].isdigit())


def test_none_has_only_loopback(hutch):  # noqa: F811
    out = hutch("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert _links(out) == ["lo"]


def test_host_shares_the_hosts_interfaces(hutch):  # noqa: F811
    # "the host" is the namespace the test gives hutch (HUTCH_HOST_NETNS)
    hutch("network", "create", "hostside")  # a bridge there, so it has more than lo
    out = hutch("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    host = subprocess.run(["ip", "-n", hutch.hostnet.name, "-o", "link"], capture_output=True,
                          text=True).stdout
    assert _links(out) == _links(host) and len(_links(out)) == 2


def test_container_mode_shares_anothers_namespace(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "first", "busybox", "sleep", "60")
    hutch("run", "-d", "--name", "second", "--network", "container:first", "busybox",
          "sleep", "60")
    a, b = (json.loads(hutch("inspect", n).stdout)[0]["State"]["Pid"] for n in
            ("first", "second"))
    assert os.readlink(f"/proc/{a}/ns/net") == os.readlink(f"/proc/{b}/ns/net")
    assert os.readlink(f"/proc/{a}/ns/net") != os.readlink("/proc/self/ns/net")


def test_unknown_network_is_refused_and_nothing_made(hutch):  # noqa: F811
    r = hutch("run", "--rm", "--network", "nosuch", "busybox", "true", check=False)
    assert r.returncode == 125 and "no network called nosuch" in r.stderr
    assert "hutch network create nosuch" in r.stderr
    assert hutch.ids() == []
    netns_dir = os.path.join(hutch.root, "run", "netns")
    assert not os.path.isdir(netns_dir) or not os.listdir(netns_dir)
