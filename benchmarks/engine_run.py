"""`hutch run --rm busybox true` beside `podman run --rm` and `hutch-runtime run`.

    .venv/bin/python benchmarks/engine_run.py [--runs 20]

Goal (issue 6): a third of podman's time or less. hutch uses its own --root in a
temporary directory; podman its own vfs storage, no network (hutch with
--network=none as well, and once more on its default bridge network, in a namespace
of ours), limits within this host's. Compile hutch's bytecode first (install.sh does;
PYTHONDONTWRITEBYTECODE hosts do not write it themselves). Everything runs in a cgroup
namespace rooted at our own cgroups (podman's /libpod_parent stays below them). Run by
hand.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from harness import print_table, ratio, run_checked, time_interleaved

from hutch.images.templates import build_busybox_rootfs
from hutch.testing import cgroupns
from hutch.testing.bundle import make_bundle
from hutch.testing.hostnet import SimulatedHost

BIN = os.path.dirname(sys.executable)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    points = cgroupns.enter()
    with tempfile.TemporaryDirectory(prefix="hb-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o711)  # a container's root (an unprivileged id) walks to its rootfs
        rootfs = build_busybox_rootfs(str(work / "busybox"))
        bundle = make_bundle(work / "bundle", rootfs, ["/bin/true"]).path
        hroot = str(work / "hutch")
        hutch = [f"{BIN}/hutch", "--root", hroot, "run", "--rm"]
        # The default network (a bridge) is timed too, with hutch's host side in a
        # namespace of ours: nothing touches this machine's network.
        sim = SimulatedHost("bench")
        os.environ["HUTCH_HOST_NETNS"] = sim.path
        try:
            subprocess.run([*hutch, "busybox", "true"], check=True)  # the image, the bridge
        except BaseException:
            sim.close()
            raise
        fns = {
            "hutch run --rm": lambda: run_checked([*hutch, "--network=none", "busybox",
                                                   "true"]),
            "hutch run --rm (bridge)": lambda: run_checked([*hutch, "busybox", "true"]),
        }
        n = [0]

        def runtime_run() -> None:
            n[0] += 1
            run_checked([f"{BIN}/hutch-runtime", "--root", str(work / "rt"), "run",
                         "--bundle", str(bundle), f"e{n[0]}"])
        fns["hutch-runtime run"] = runtime_run
        podman = None
        if subprocess.run(["which", "podman"], capture_output=True).returncode == 0:
            store = work / "p"
            podman = ["podman", "--root", str(store / "s"), "--runroot", str(store / "r"),
                      "--tmpdir", str(store / "t"), "--storage-driver", "vfs",
                      "--cgroup-manager", "cgroupfs", "--events-backend", "none",
                      "--runtime", "runc"]
            tar = work / "bb.tar"
            with tarfile.open(tar, "w") as t:
                t.add(rootfs, arcname=".")
            run_checked([*podman, "import", str(tar), "localhost/bb"])
            fns["podman run --rm"] = lambda: run_checked(
                [*podman, "run", "--rm", "--network=none", "--ulimit=nofile=1024:1024",
                 "--ulimit=nproc=4096:4096", "localhost/bb", "/bin/true"])
        try:
            results = time_interleaved(fns, args.runs, args.warmup)
        finally:
            del os.environ["HUTCH_HOST_NETNS"]
            sim.close()
        if podman:
            subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True)
    for name in ("libpod_parent", "hutch"):
        cgroupns.remove_empty(points, name)
    print_table(list(results.values()), baseline="hutch run --rm")
    r = ratio(list(results.values()), "hutch run --rm", "podman run --rm")
    if r is not None:
        print(f"hutch / podman median: {r:.2f} ({'meets' if r <= 1 / 3 else 'misses'} "
              "the goal <= 0.33)")
    e = ratio(list(results.values()), "hutch run --rm", "hutch-runtime run")
    if e is not None:
        base = results["hutch-runtime run"].median_ms
        print(f"engine overhead over hutch-runtime run: "
              f"{results['hutch run --rm'].median_ms - base:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
