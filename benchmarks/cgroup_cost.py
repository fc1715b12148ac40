"""What applying cgroup limits adds to a container start, in ms, beside runc.

    .venv/bin/python benchmarks/cgroup_cost.py [--runs 30]

Four configurations of one busybox bundle running /bin/true, for hutch-runtime
and runc: with no linux.resources (both still create the container's cgroups and
their default device rules), and with memory, pids, cpu quota/shares and blkio
weight limits. The difference of medians is what the limits cost. Run by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from harness import Peer, print_table, run_checked, time_interleaved

from hutch.images.templates import build_busybox_rootfs
from hutch.testing import cgroupns
from hutch.testing.bundle import make_bundle

HUTCH_RUNTIME = os.path.join(os.path.dirname(sys.executable), "hutch-runtime")
LIMITS = {"memory": {"limit": 256 << 20}, "pids": {"limit": 100},
          "cpu": {"shares": 512, "quota": 50000, "period": 100000}}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run me as root")
    points = cgroupns.enter()  # cgroups below our own, whatever the peers ask for
    peers = [p for p in (Peer("hutch-runtime", [HUTCH_RUNTIME]), Peer("runc", ["runc"]))
             if p.available()]
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        work = Path(tmp)
        rootfs = build_busybox_rootfs(str(work / "busybox"))
        bundles = {
            "plain": make_bundle(work / "plain", rootfs, ["/bin/true"],
                                 linux={"cgroupsPath": "hutch-bench/plain"}).path,
            "limits": make_bundle(work / "limits", rootfs, ["/bin/true"],
                                  linux={"cgroupsPath": "hutch-bench/limits",
                                         "resources": LIMITS}).path,
        }
        fns = {}
        counter = [0]
        for peer in peers:
            for kind, bundle in bundles.items():
                state = work / f"state-{peer.name}"

                def once(peer=peer, bundle=bundle, state=state) -> None:
                    counter[0] += 1
                    run_checked([*peer.argv, "--root", str(state), "run", "--bundle",
                                 str(bundle), f"b{os.getpid()}-{counter[0]}"])
                fns[f"{peer.name} {kind}"] = once
        print(f"{args.runs} runs each after {args.warmup} warm-up runs; limits: {LIMITS}")
        results = time_interleaved(fns, args.runs, args.warmup)
    cgroupns.remove_empty(points, "hutch-bench")
    print_table(list(results.values()), baseline="hutch-runtime plain")
    for peer in peers:
        plain = results.get(f"{peer.name} plain")
        limits = results.get(f"{peer.name} limits")
        if plain and limits and plain.samples and limits.samples:
            cost = limits.median_ms - plain.median_ms
            print(f"{peer.name}: limits add {cost:+.2f} ms to the median start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
