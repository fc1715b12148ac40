"""A network namespace that plays "the host" for hutch in tests.

hutch's bridges, veth ends, nftables tables and resolvers live in the namespace
named by ``HUTCH_HOST_NETNS``; the tests point it at one of these, so nothing they
run ever touches the machine's own network. Closing it kills what still runs in it
(the resolvers) and deletes it, which takes its links and rules along.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time

from hutch.testing.cleanup import pid_alive

ENV = "HUTCH_HOST_NETNS"


class SimulatedHost:
    def __init__(self, role: str = "host") -> None:
        self.name = f"hutch-t-{secrets.token_hex(3)}-{role}"
        self.path = f"/run/netns/{self.name}"
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True,
                       capture_output=True)

    def env(self) -> dict[str, str]:
        return {**os.environ, ENV: self.path}

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    def close(self) -> list[str]:
        """Kill what runs in it, delete it; returns what could not be removed."""
        problems = []
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        problems += [f"process {p} in {self.name} did not die" for p in pids if pid_alive(p)]
        res = subprocess.run(["ip", "netns", "del", self.name], capture_output=True, text=True)
        if res.returncode != 0 or os.path.exists(self.path):
            problems.append(f"{self.name}: {res.stderr.strip()}")
        return problems

    def __enter__(self) -> SimulatedHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
