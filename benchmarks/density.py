"""Density: N idle containers started detached; the time, and the host memory each costs.

    .venv/bin/python benchmarks/density.py [--count 100] [--no-podman] [--keep-going]

For hutch (`hutch run -d --network none busybox sleep 3600`, its own --root in a
temporary directory) and, beside it, podman (`podman run -d --network none`,
vfs storage and --root/--runroot under /tmp, runc, limited ulimits), started one
after the other:

- the time to start them all, and per container (median, p90, max);
- what each costs beyond its own process: the supervisor's memory (hutch's shim,
  podman's conmon) from /proc/PID/smaps_rollup: USS (its private pages, what one
  more container adds) and PSS (with its share of the pages it shares); and the
  kernel's side as /proc/meminfo deltas over the run divided by N (MemAvailable,
  slab, kernel stacks, page tables, shmem). The machine is shared: other work
  moves MemAvailable too, so that line is an estimate; USS/PSS are exact.

Everything runs in a cgroup namespace rooted at our own cgroups (podman's
/libpod_parent lands below them), networks stay off (--network none), and every
container, image, mount and directory made here is removed at the end, also on
Ctrl-C or SIGTERM. Run by hand, as root.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hutch.images.templates import build_busybox_rootfs
from hutch.testing import cgroupns
from hutch.testing.hostnet import SimulatedHost

BIN = os.path.dirname(sys.executable)
MEMINFO_KEYS = ("MemAvailable", "Slab", "SUnreclaim", "KernelStack", "PageTables", "Shmem")


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) * 1024
    return out


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss, Pss, Uss (private clean + dirty) of a process, in bytes."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
                fields[parts[0][:-1]] = int(parts[1]) * 1024
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0),
            "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}


def pids_with(*needles: str) -> list[int]:
    """Processes whose command line holds every one of ``needles``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if all(n in cmd for n in needles):
            out.append(int(entry))
    return out


def run(argv: list[str], timeout: float = 120) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:8])} ... exited {r.returncode}: "
                           f"{r.stderr.strip()[-500:]}")
    return r.stdout


def unmount_below(path: str) -> None:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p == real or p.startswith(real + "/")),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@dataclass
class Side:
    """One system under test: how to start a container, what to measure, how to clean."""

    name: str
    supervisor: str  # "hutch shim", "conmon"
    start: Callable[[int], None]
    supervisors: Callable[[], list[int]]  # pids of the supervisors of our containers
    workloads: Callable[[], list[int]]  # pids of the containers' own processes
    cleanup: Callable[[], None]
    latencies: list[float] = field(default_factory=list)
    total: float = 0.0
    started: int = 0
    mem_before: dict[str, int] = field(default_factory=dict)
    mem_after: dict[str, int] = field(default_factory=dict)
    sup: list[dict[str, int]] = field(default_factory=list)
    work: list[dict[str, int]] = field(default_factory=list)


def measure(side: Side, count: int) -> None:
    time.sleep(1)
    side.mem_before = meminfo()
    t0 = time.perf_counter()
    for i in range(count):
        s = time.perf_counter()
        side.start(i)
        side.latencies.append(time.perf_counter() - s)
        side.started += 1
    side.total = time.perf_counter() - t0
    time.sleep(2)  # let the last ones settle (lazy allocations, log files)
    side.mem_after = meminfo()
    side.sup = [smaps_rollup(p) for p in side.supervisors()]
    side.work = [smaps_rollup(p) for p in side.workloads()]


def mib(n: float) -> str:
    return f"{n / 1048576:.2f} MiB"


def report(sides: list[Side], count: int) -> None:
    print(f"\n== {count} idle containers, started one after the other "
          f"({os.cpu_count()} cores, kernel {os.uname().release})")
    for s in sides:
        lat = sorted(s.latencies)
        p90 = lat[max(0, int(round(0.9 * len(lat))) - 1)]
        print(f"\n-- {s.name}")
        print(f"start all: {s.total:.1f} s   per container: median "
              f"{statistics.median(lat) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
              f"max {lat[-1] * 1000:.0f} ms")
        if len(s.sup) != count:
            print(f"  (found {len(s.sup)} {s.supervisor} processes for {count} containers)")
        for label, rows in ((s.supervisor, s.sup), ("container process", s.work)):
            if rows:
                print(f"{label:>18}: USS {mib(statistics.median(r['uss'] for r in rows))}, "
                      f"PSS {mib(statistics.median(r['pss'] for r in rows))}, "
                      f"RSS {mib(statistics.median(r['rss'] for r in rows))} (median of "
                      f"{len(rows)}); USS total {mib(sum(r['uss'] for r in rows))}")
        deltas = {k: (s.mem_before[k] - s.mem_after[k]) if k == "MemAvailable"
                  else (s.mem_after[k] - s.mem_before[k]) for k in MEMINFO_KEYS}
        print("   /proc/meminfo per container: " + ", ".join(
            f"{'MemAvailable drop' if k == 'MemAvailable' else k} {mib(v / count)}"
            for k, v in deltas.items()))
        user = sum(r["uss"] for r in s.sup) + sum(r["uss"] for r in s.work)
        rest = deltas["MemAvailable"] - user
        print(f"   MemAvailable drop beyond the processes' USS (kernel side, estimate): "
              f"{mib(rest / count)} per container")


def hutch_side(work: str) -> Side:
    root = os.path.join(work, "hutch")
    base = [f"{BIN}/hutch", "--root", root]
    run([*base, "run", "--rm", "--network", "none", "busybox", "true"])  # builds the image

    def start(i: int) -> None:
        run([*base, "run", "-d", "--network", "none", "--name", f"d{i}", "busybox",
             "sleep", "3600"])

    def workloads() -> list[int]:
        names = run([*base, "ps", "-q"]).split()
        if not names:
            return []
        data = json.loads(run([*base, "inspect", *names]))
        return [d["State"]["Pid"] for d in data if d["State"]["Pid"]]

    def cleanup() -> None:
        names = run([*base, "ps", "-a", "-q"]).split() if os.path.isdir(root) else []
        batches = [names[i::4] for i in range(4)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda b: subprocess.run([*base, "rm", "-f", *b],
                                                   capture_output=True) if b else None,
                          batches))
        left = run([*base, "ps", "-a", "-q"]).split() if os.path.isdir(root) else []
        if left:
            print(f"hutch: containers left after rm -f: {left}", file=sys.stderr)

    return Side("hutch run -d (shim per container)", "hutch shim", start,
                lambda: pids_with("hutch.shim", root + "/"), workloads, cleanup)


def podman_side(work: str, rootfs: str) -> Side:
    store = tempfile.mkdtemp(prefix="hdp-")  # a short runroot: podman's socket paths
    base = ["podman", "--root", f"{store}/s", "--runroot", f"{store}/r", "--tmpdir",
            f"{store}/t", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none", "--runtime", "runc"]
    tar = os.path.join(work, "bb.tar")
    with tarfile.open(tar, "w") as t:
        t.add(rootfs, arcname=".")
    run([*base, "import", "--quiet", tar, "localhost/hutch-density-bb"])

    def start(i: int) -> None:
        run([*base, "run", "-d", "--network", "none", "--ulimit", "nofile=1024:1024",
             "--ulimit", "nproc=4096:4096", "--name", f"d{i}", "localhost/hutch-density-bb",
             "sleep", "3600"])

    def inspect(field_: str) -> list[int]:
        ids = run([*base, "ps", "-q"]).split()
        if not ids:
            return []
        out = run([*base, "inspect", "--format", "{{.State.%s}}" % field_, *ids])
        return [int(x) for x in out.split() if x.isdigit() and int(x) > 0]

    def cleanup() -> None:
        subprocess.run([*base, "rm", "-f", "-a", "-t", "0"], capture_output=True, timeout=300)
        subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        for pid in pids_with("conmon", store):  # none should be left; ours only
            os.kill(pid, signal.SIGKILL)
        unmount_below(store)
        subprocess.run(["rm", "-rf", store], check=False)

    return Side("podman run -d (conmon per container)", "conmon", start,
                lambda: inspect("ConmonPid"), lambda: inspect("Pid"), cleanup)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--no-podman", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("density.py: run me as root", file=sys.stderr)
        return 1

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    points = cgroupns.enter()
    sides: list[Side] = []
    sim = SimulatedHost("density")  # should any network be made after all: not the host's
    os.environ["HUTCH_HOST_NETNS"] = sim.path
    work = tempfile.mkdtemp(prefix="hutch-density-")
    os.chmod(work, 0o711)  # a container's root (an unprivileged id) walks to its rootfs
    done: list[Side] = []
    try:
        rootfs = build_busybox_rootfs(os.path.join(work, "busybox"))
        plan = [lambda: hutch_side(work)]
        if not args.no_podman:
            plan.append(lambda: podman_side(work, rootfs))
        for make in plan:
            side = make()
            sides.append(side)
            print(f"starting {args.count}: {side.name} ...", file=sys.stderr, flush=True)
            try:
                measure(side, args.count)
            finally:
                print(f"removing them ({side.name}) ...", file=sys.stderr, flush=True)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: clean anyway
                side.cleanup()
                signal.signal(signal.SIGINT, signal.default_int_handler)
            done.append(side)
    except KeyboardInterrupt:
        print("interrupted: everything made was removed", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        unmount_below(work)
        subprocess.run(["rm", "-rf", work], check=False)
        del os.environ["HUTCH_HOST_NETNS"]
        problems = sim.close()
        if problems:
            print(f"network namespace cleanup: {problems}", file=sys.stderr)
        for name in ("libpod_parent", "hutch"):
            cgroupns.remove_empty(points, name)
    report(done, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
