"""Network setup and teardown per container, and throughput over the bridge.

    .venv/bin/python benchmarks/network_setup.py [--runs 30] [--seconds 5] [--repeat 3]

Everything happens in network namespaces this script makes (``hutch-b-<random>-*``)
and removes: one plays the host (hutch's bridge and nftables tables live
there), the others are containers. Nothing touches the machine's own
interfaces, routes, sysctls or firewall. Run by hand, as root.

Setup/teardown (ms per container, a fresh container namespace each run,
created and deleted untimed), taking turns run by run:

- ``iproute2 by hand``: the five ``ip`` commands one would type (veth into the
  namespace, master + up, address, eth0 up, default route), as in issue 7's
  11-15 ms; teardown ``ip link del``.
- ``bridge.attach``: hutch's link work alone (netlink through pyroute2).
- ``connect``: all of ``NetworkManager.connect``: IPAM lease in SQLite, links,
  record, the nftables ruleset rendered and applied; teardown ``disconnect``.
- ``connect -p 8080:80``: the same with a published port (the host port probed).

Throughput (iperf3, TCP, one stream): container to container over the bridge
(veth, bridge, veth, with hutch's rules in force) against loopback in the host
namespace; the goal is at least 90 %.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from harness import Result, print_table

from hutch.network import bridge as br
from hutch.network.manager import NetworkManager
from hutch.network.netlink import Netlink
from hutch.network.ports import parse_publish

TAG = f"hutch-b-{secrets.token_hex(3)}"


def sh(*argv: str) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")
    return res.stdout


class Namespaces:
    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, role: str) -> str:
        name = f"{TAG}-{role}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        return name

    def delete(self, name: str) -> None:
        for pid in sh("ip", "netns", "pids", name).split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        sh("ip", "netns", "del", name)
        self.names.remove(name)

    def close(self) -> None:
        for name in list(self.names):
            try:
                self.delete(name)
            except RuntimeError as e:
                print(f"cleanup: {e}", file=sys.stderr)


def path(name: str) -> str:
    return f"/run/netns/{name}"


def bench_setup(ns: Namespaces, host: str, runs: int, warmup: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hutch-bench-net-") as state:
        manager = NetworkManager(state, host_netns=path(host))
        net = manager.create("bench", subnet="10.89.0.0/16")
        hand_bridge = "hbr-hand"
        sh("ip", "-n", host, "link", "add", hand_bridge, "type", "bridge")
        sh("ip", "-n", host, "addr", "add", "10.90.0.1/16", "dev", hand_bridge)
        sh("ip", "-n", host, "link", "set", hand_bridge, "up")
        hostnl = Netlink(path(host))
        spec = manager._spec(net)  # the same bridge, links only
        setups = {k: Result(k) for k in ("iproute2 by hand", "bridge.attach", "connect",
                                         "connect -p 8080:80")}
        teardowns = {k: Result(k) for k in setups}
        for i in range(warmup + runs):
            for kind in setups:
                c = ns.add(f"c{i}")
                ip = ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.90.0.2")) + i) \
                    if kind == "iproute2 by hand" else \
                    ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.89.100.2")) + i)
                t0 = time.perf_counter_ns()
                if kind == "iproute2 by hand":
                    sh("ip", "-n", host, "link", "add", "vhand", "type", "veth", "peer", "name",
                       "eth0", "netns", c)
                    sh("ip", "-n", host, "link", "set", "vhand", "master", hand_bridge, "up")
                    sh("ip", "-n", c, "addr", "add", f"{ip}/16", "dev", "eth0")
                    sh("ip", "-n", c, "link", "set", "eth0", "up")
                    sh("ip", "-n", c, "route", "add", "default", "via", "10.90.0.1")
                    t1 = time.perf_counter_ns()
                    sh("ip", "-n", host, "link", "del", "vhand")
                elif kind == "bridge.attach":
                    att = br.attach(hostnl, spec, f"raw{i}", path(c), ip)
                    t1 = time.perf_counter_ns()
                    br.detach(hostnl, att.host_if)
                else:
                    publish = [parse_publish("8080:80")] if "-p" in kind else []
                    manager.connect("bench", f"ctr{i}", path(c), publish=publish)
                    t1 = time.perf_counter_ns()
                    manager.disconnect("bench", f"ctr{i}")
                t2 = time.perf_counter_ns()
                ns.delete(c)
                if i >= warmup:
                    setups[kind].samples.append(t1 - t0)
                    teardowns[kind].samples.append(t2 - t1)
        hostnl.close()
        manager.remove("bench")
        manager.close()
    print(f"\nsetup of one attachment ({runs} runs, each in a fresh namespace)")
    print_table(list(setups.values()), baseline="iproute2 by hand")
    print(f"\nteardown of one attachment ({runs} runs)")
    print_table(list(teardowns.values()), baseline="iproute2 by hand")


def iperf(server_ns: str, client_ns: str, addr: str, seconds: int) -> float:
    """Bits per second received, one TCP stream for ``seconds``."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1",
                               "--forceflush", "-B", addr, "-p", "5201"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        while "listening" not in server.stdout.readline():
            if server.poll() is not None:
                raise RuntimeError("iperf3 server did not start")
        out = sh("ip", "netns", "exec", client_ns, "iperf3", "-c", addr, "-p", "5201", "-t",
                 str(seconds), "-J")
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])
    finally:
        server.kill()
        server.wait()


def bench_throughput(ns: Namespaces, host: str, seconds: int, repeat: int) -> None:
    if shutil.which("iperf3") is None:
        print("\nthroughput: iperf3 is not installed (apt-get install iperf3); skipped")
        return
    c1, c2, c3, c4, lo1500 = (ns.add(r) for r in ("t1", "t2", "t3", "t4", "lo1500"))
    sh("ip", "-n", lo1500, "link", "set", "lo", "mtu", "1500", "up")
    with tempfile.TemporaryDirectory(prefix="hutch-bench-net-") as state:
        manager = NetworkManager(state, host_netns=path(host))
        manager.create("tp")
        manager.create("jumbo", mtu=65535)
        manager.connect("tp", "t1", path(c1))
        e2 = manager.connect("tp", "t2", path(c2))
        manager.connect("jumbo", "t3", path(c3))
        e4 = manager.connect("jumbo", "t4", path(c4))

        def bare() -> float:  # the same links with hutch's tables taken away for a moment
            manager.firewall.remove()
            try:
                return iperf(c2, c1, str(e2.address), seconds)
            finally:
                manager.apply_firewall()

        cases = {
            "bridge, MTU 1500, hutch's rules": lambda: iperf(c2, c1, str(e2.address), seconds),
            "bridge, MTU 1500, no rules": bare,
            "bridge, MTU 65535, hutch's rules": lambda: iperf(c4, c3, str(e4.address), seconds),
            "loopback, MTU 65536 (host's lo)": lambda: iperf(host, host, "127.0.0.1", seconds),
            "loopback, MTU 1500": lambda: iperf(lo1500, lo1500, "127.0.0.1", seconds),
        }
        got: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(repeat):  # taking turns
            for name, fn in cases.items():
                got[name].append(fn())
        for owner, net in (("t1", "tp"), ("t2", "tp"), ("t3", "jumbo"), ("t4", "jumbo")):
            manager.disconnect(net, owner)
        manager.remove("tp")
        manager.remove("jumbo")
        manager.close()
    med = {k: statistics.median(v) for k, v in got.items()}
    print(f"\nthroughput, iperf3 TCP one stream, {seconds} s x {repeat} (median Gbit/s)")
    for name, values in got.items():
        print(f"  {name:<34} {med[name] / 1e9:7.2f}  "
              f"({', '.join(f'{x / 1e9:.2f}' for x in values)})")
    b, bj = med["bridge, MTU 1500, hutch's rules"], med["bridge, MTU 65535, hutch's rules"]
    lo, lo15 = med["loopback, MTU 65536 (host's lo)"], med["loopback, MTU 1500"]
    print(f"  bridge / loopback at the same MTU: {100 * b / lo15:.0f} % (1500), "
          f"{100 * bj / lo:.0f} % (65535/65536); goal: at least 90 %")
    print(f"  bridge at MTU 1500 / the host's lo at 65536: {100 * b / lo:.0f} %")
    print(f"  what hutch's rules cost: "
          f"{100 * (1 - b / med['bridge, MTU 1500, no rules']):.0f} %")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run me as root")
    # a timeout or kill -TERM still removes the namespaces (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ns = Namespaces()
    try:
        host = ns.add("host")
        sh("ip", "-n", host, "link", "set", "lo", "up")
        bench_setup(ns, host, args.runs, args.warmup)
        if not args.skip_throughput:
            bench_throughput(ns, host, args.seconds, args.repeat)
    finally:
        ns.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
