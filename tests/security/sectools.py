"""Helpers of the attack suite (imported by its tests and its conftest)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

BASE = 3_200_000  # the host ids of the runtime tests' containers (open_bundle)
MAPPING = [{"containerID": 0, "hostID": BASE, "size": 65536}]

HUTCH = os.path.join(os.path.dirname(sys.executable), "hutch")


def open_tempdir(prefix: str) -> str:
    """A temp dir every uid may traverse (a container's root is an unprivileged uid)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def parse_probe(output: str) -> dict[str, str]:
    """The probe's lines as {name: result}; "ns" lines become "ns:TYPE"."""
    out: dict[str, str] = {}
    for line in output.splitlines():
        name, _, value = line.partition(" ")
        if name == "ns":
            kind, _, value = value.partition(" ")
            name = f"ns:{kind}"
        assert name not in out, f"probe printed {name} twice:\n{output}"
        out[name] = value
    return out


class Hutch:
    """``hutch --root ROOT ...`` as a user runs it."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([HUTCH, "--root", self.root, *args], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"hutch {' '.join(args)} -> {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def inspect(self, ref: str) -> dict:
        return json.loads(self("inspect", ref).stdout)[0]

    def cleanup(self) -> list[str]:
        problems = []
        ids = self("ps", "-a", "-q", check=False).stdout.split()
        for cid in ids:
            r = self("rm", "-f", cid, check=False)
            if r.returncode != 0:
                problems.append(f"rm -f {cid}: {r.stderr.strip()}")
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if self.root in line]
        for target in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False)
        if mounts:
            problems.append(f"mounts left: {mounts}")
        shutil.rmtree(self.root, ignore_errors=True)
        return problems


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _host_mounts() -> set[tuple[str, str]]:
    """The host's mounts on and below /, /proc, /sys, /dev, /etc (not the test dirs)."""
    keep = ("/proc", "/sys", "/dev", "/etc", "/usr", "/boot")
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point, fstype = fields[4], fields[fields.index("-") + 1]
            if point == "/" or any(point == k or point.startswith(k + "/") for k in keep):
                out.add((point, fstype))
    return out


def host_state(*binaries: str) -> dict[str, object]:
    """What the attacks would change on the host if they worked."""
    return {
        "hostname": socket.gethostname(),
        "domainname": _read("/proc/sys/kernel/domainname"),
        "core_pattern": _read("/proc/sys/kernel/core_pattern"),
        "sysrq": _read("/proc/sys/kernel/sysrq"),
        "modprobe": _read("/proc/sys/kernel/modprobe"),
        "mounts": _host_mounts(),
        "binaries": {b: sha256(b) for b in binaries},
        "etc": sorted(os.listdir("/etc")),
    }


def tracer_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("TracerPid:")).split()[1])


def host_uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Uid:")).split()[1])
