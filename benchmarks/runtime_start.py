"""Start-to-exit of /bin/true through `<runtime> run --bundle B <id>`, side by side.

    sudo .venv/bin/python benchmarks/runtime_start.py [--runs 50] [--peers hutch-runtime,runc]

Times hutch-runtime, runc and crun, and lxc-execute and podman when they are
installed, on one busybox bundle (podman gets its own copy of the root file
system, as it writes into it). Each runtime keeps its state in its own --root
in a temporary directory; every container is deleted after its run, untimed.

crun and hybrid cgroup hosts: crun refuses to start anything when the v2
hierarchy of a hybrid host has controllers ("cgroups in hybrid mode not
supported, drop all controllers from cgroupv2"), and no flag turns that check
off (not even --cgroup-manager=disabled). So crun is timed from a private mount
namespace in which /sys/fs/cgroup/unified is detached: crun then sees a legacy
(v1) host, and uses the same v1 hierarchies as the others. The host is not
changed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness import Peer, Result, print_table, ratio, run_checked, time_runs

from hutch.images.templates import build_busybox_rootfs
from hutch.testing.bundle import copy_rootfs, make_bundle
from hutch.testing.host import cgroup_mode

UNIFIED = "/sys/fs/cgroup/unified"
HUTCH_RUNTIME = os.path.join(os.path.dirname(sys.executable), "hutch-runtime")


def crun_needs_private_cgroups() -> bool:
    """True on a hybrid host whose v2 hierarchy has controllers (crun refuses those)."""
    try:
        return cgroup_mode() == "hybrid" and bool(Path(UNIFIED, "cgroup.controllers")
                                                  .read_text().strip())
    except OSError:
        return False


def in_private_mount_namespace(fn: Callable[[], list[int]]) -> list[int]:
    """Run ``fn`` in a forked child with its own mount namespace in which the v2
    hierarchy is detached; return what it returned (the samples)."""
    from hutch.linux import constants as C
    from hutch.linux.syscalls import mount, umount2, unshare

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        os.close(read_fd)
        code = 0
        try:
            unshare(C.CLONE_NEWNS)
            mount(None, "/", None, C.MS_REC | C.MS_PRIVATE)
            umount2(UNIFIED, C.MNT_DETACH)
            payload = json.dumps({"samples": fn()})
        except BaseException as e:  # report to the parent, whatever it is
            payload, code = json.dumps({"error": str(e)}), 1
        with os.fdopen(write_fd, "w") as f:
            f.write(payload)
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        data = json.loads(f.read() or '{"error": "child died"}')
    os.waitpid(pid, 0)
    if "error" in data:
        raise RuntimeError(data["error"])
    samples: list[int] = data["samples"]
    return samples


class Case:
    """How one peer runs the bundle: the timed command and the untimed cleanup."""

    def __init__(self, peer: Peer, state: Path, bundle: Path) -> None:
        self.peer, self.state, self.bundle = peer, state, bundle
        self.counter = 0
        self.private_cgroups = peer.name == "crun" and crun_needs_private_cgroups()

    def ident(self) -> str:
        name = "".join(c if c.isalnum() else "-" for c in self.peer.name)
        return f"bench-{os.getpid()}-{name}-{self.counter}"

    def command(self) -> list[str]:
        return [*self.peer.argv, "--root", str(self.state), "run", "--bundle",
                str(self.bundle), self.ident()]

    def cleanup_command(self) -> list[str] | None:
        return [*self.peer.argv, "--root", str(self.state), "delete", "--force", self.ident()]

    def once(self) -> None:
        run_checked(self.command())

    def after(self) -> None:
        cleanup = self.cleanup_command()
        if cleanup is not None:  # `run` deleted it already, normally: ignore "not found"
            run_checked_quietly(cleanup)
        self.counter += 1

    def measure(self, runs: int, warmup: int) -> list[int]:
        def loop() -> list[int]:
            self.once()  # fails loudly, before timing, if the peer cannot run here
            self.after()
            return time_runs(self.once, runs, warmup, after=self.after)
        return in_private_mount_namespace(loop) if self.private_cgroups else loop()


class LxcCase(Case):
    """lxc-execute with a config equivalent to the bundle's."""

    def __init__(self, peer: Peer, state: Path, bundle: Path) -> None:
        super().__init__(peer, state, bundle)
        self.config = state / "lxc.conf"
        state.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"lxc.rootfs.path = dir:{bundle / 'rootfs'}\n"
            "lxc.uts.name = hutch-test\n"
            "lxc.net.0.type = empty\n"
            "lxc.mount.auto = proc:mixed sys:ro\n"
            "lxc.autodev = 1\n")

    def command(self) -> list[str]:
        return [*self.peer.argv, "-n", self.ident(), "-P", str(self.state), "-f",
                str(self.config), "--", "/bin/true"]

    def cleanup_command(self) -> list[str] | None:
        return None


class PodmanCase(Case):
    """podman run --rootfs on its own copy of the root file system."""

    def command(self) -> list[str]:
        return [*self.peer.argv, "run", "--rm", "--network=none", "--name", self.ident(),
                "--rootfs", str(self.bundle / "rootfs"), "/bin/true"]

    def cleanup_command(self) -> list[str] | None:
        return None


def run_checked_quietly(argv: list[str]) -> None:
    try:
        run_checked(argv)
    except RuntimeError:
        pass


def peers() -> list[tuple[Peer, type[Case]]]:
    return [
        (Peer("hutch-runtime", [HUTCH_RUNTIME]), Case),
        (Peer("runc", ["runc"]), Case),
        (Peer("crun", ["crun"], note="private mntns without the v2 mount"
              if crun_needs_private_cgroups() else ""), Case),
        (Peer("lxc-execute", ["lxc-execute"]), LxcCase),
        (Peer("podman", ["podman"]), PodmanCase),
        (Peer("podman+hutch", ["podman", "--runtime", HUTCH_RUNTIME]), PodmanCase),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per peer (50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (5)")
    parser.add_argument("--peers", help="comma separated names (default: all installed)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run me as root: the runtimes need it")
    wanted = set(args.peers.split(",")) if args.peers else None

    print(f"kernel {os.uname().release}, {os.cpu_count()} cpus, cgroups {cgroup_mode()}; "
          f"{args.runs} runs after {args.warmup} warm-up runs; times are start to exit")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        work = Path(tmp)
        rootfs = Path(build_busybox_rootfs(str(work / "busybox")))
        bundle = make_bundle(work / "bundle", rootfs, ["/bin/true"]).path
        for peer, kind in peers():
            if wanted is not None and peer.name not in wanted or not peer.available():
                continue
            own_bundle = bundle
            if kind is PodmanCase:  # podman writes /etc/hosts & co into the root
                own_bundle = work / f"bundle-{peer.name}"
                copy_rootfs(rootfs, own_bundle / "rootfs")
            case = kind(peer, work / f"state-{peer.name}", own_bundle)
            print(f"{peer.name}: {peer.version()}\n    {shlex.join(case.command())}"
                  + (f"\n    ({peer.note})" if peer.note else ""))
            result = Result(peer.name, note=peer.note)
            try:
                result.samples = case.measure(args.runs, args.warmup)
            except RuntimeError as e:
                result.error = f"failed: {e}"
            results.append(result)
        print()
        print_table(results, baseline="hutch-runtime")
        for other, goal in (("runc", 1.0), ("crun", 2.0)):
            r = ratio(results, "hutch-runtime", other)
            if r is not None:
                verdict = "meets" if r <= goal else "misses"
                print(f"hutch-runtime / {other} median: {r:.2f} ({verdict} the goal <= {goal:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
