"""Start-to-exit of /bin/true through `<runtime> run --bundle B <id>`, side by side.

    .venv/bin/python benchmarks/runtime_start.py [--runs 50] [--peers hutch-runtime,runc]

Times hutch-runtime, runc and crun, and lxc-execute and podman (with runc, and
with hutch-runtime) when they are installed, on one busybox bundle (podman
gets its own copy of the root file system, as it writes into it). Each runtime
keeps its state in its own --root in a temporary directory; every container is
deleted after its run, untimed.
The peers take turns run by run, so a change of load on the machine weighs on
all of them alike.

crun on a hybrid cgroup host: crun refuses to start anything when the v2
hierarchy of a hybrid host has controllers ("cgroups in hybrid mode not
supported, drop all controllers from cgroupv2"), and no flag turns that check
off (not even --cgroup-manager=disabled). So crun runs in a mount namespace in
which /sys/fs/cgroup/unified is detached (entered with setns between fork and
exec, which costs nothing measurable): crun then sees a legacy v1 host and
uses the same v1 hierarchies as the others. The host is not changed.

Everything runs in a cgroup namespace whose cgroup mounts are rooted at our own
cgroups (hutch.testing.cgroupns), so podman's absolute /libpod_parent lands
below the cgroup the benchmark runs in; podman gets its own vfs storage.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from harness import Peer, Result, print_table, ratio, run_checked, time_interleaved

from hutch.images.templates import build_busybox_rootfs
from hutch.testing import cgroupns
from hutch.testing.bundle import copy_rootfs, make_bundle
from hutch.testing.host import cgroup_mode

UNIFIED = "/sys/fs/cgroup/unified"
HUTCH_RUNTIME = os.path.join(os.path.dirname(sys.executable), "hutch-runtime")


def crun_needs_hidden_unified() -> bool:
    """True on a hybrid host whose v2 hierarchy has controllers (crun refuses those)."""
    try:
        return cgroup_mode() == "hybrid" and bool(Path(UNIFIED, "cgroup.controllers")
                                                  .read_text().strip())
    except OSError:
        return False


class HiddenUnified:
    """A mount namespace without the v2 hierarchy, held by a forked helper.

    ``preexec`` enters it in a child between fork and exec.
    """

    fd: int | None = None

    def __enter__(self) -> HiddenUnified:
        from hutch.linux import constants as C
        from hutch.linux.syscalls import mount, umount2, unshare

        ready_r, ready_w = os.pipe()
        self._hold_r, self._hold_w = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # the helper: set up, report, wait for the parent's end
            try:
                unshare(C.CLONE_NEWNS)
                mount(None, "/", None, C.MS_REC | C.MS_PRIVATE)
                umount2(UNIFIED, C.MNT_DETACH)
                os.write(ready_w, b"ok")
            except BaseException as e:  # report whatever it is to the parent
                os.write(ready_w, f"cannot hide {UNIFIED}: {e}".encode())
            os.close(self._hold_w)
            os.read(self._hold_r, 1)
            os._exit(0)
        os.close(ready_w)
        os.close(self._hold_r)
        answer = os.read(ready_r, 4096).decode()
        os.close(ready_r)
        if answer != "ok":
            self.__exit__(None, None, None)
            raise RuntimeError(answer or "the mount namespace helper died")
        self.fd = os.open(f"/proc/{self._pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        return self

    def preexec(self) -> None:
        from hutch.linux import constants as C
        from hutch.linux.syscalls import setns
        assert self.fd is not None, "preexec outside the with block"
        setns(self.fd, C.CLONE_NEWNS)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        os.close(self._hold_w)  # the helper reads EOF and exits
        os.waitpid(self._pid, 0)


def _no_preexec() -> None:
    """Same spawn path (fork, not vfork) for every peer as for crun's setns."""


class Case:
    """How one peer runs the bundle: the timed command and the untimed cleanup."""

    def __init__(self, peer: Peer, state: Path, bundle: Path,
                 preexec: Callable[[], None] = _no_preexec) -> None:
        self.peer, self.state, self.bundle, self.preexec = peer, state, bundle, preexec
        self.counter = 0

    def ident(self) -> str:
        name = "".join(c if c.isalnum() else "-" for c in self.peer.name)
        return f"bench-{os.getpid()}-{name}-{self.counter}"

    def command(self) -> list[str]:
        return [*self.peer.argv, "--root", str(self.state), "run", "--bundle",
                str(self.bundle), self.ident()]

    def cleanup_command(self) -> list[str] | None:
        return [*self.peer.argv, "--root", str(self.state), "delete", "--force", self.ident()]

    def once(self) -> None:
        run_checked(self.command(), preexec_fn=self.preexec)

    def after(self) -> None:
        cleanup = self.cleanup_command()
        if cleanup is not None:  # `run` deleted it already, normally: ignore "not found"
            try:
                run_checked(cleanup, preexec_fn=self.preexec)
            except RuntimeError:
                pass
        self.counter += 1


class LxcCase(Case):
    """lxc-execute with a config equivalent to the bundle's."""

    def command(self) -> list[str]:
        config = self.state / "lxc.conf"
        if not config.exists():
            self.state.mkdir(parents=True, exist_ok=True)
            config.write_text(f"lxc.rootfs.path = dir:{self.bundle / 'rootfs'}\n"
                              "lxc.uts.name = hutch-test\n"
                              "lxc.net.0.type = empty\n"
                              "lxc.mount.auto = proc:mixed sys:ro\n"
                              "lxc.autodev = 1\n")
        return [*self.peer.argv, "-n", self.ident(), "-P", str(self.state), "-f", str(config),
                "--", "/bin/true"]

    def cleanup_command(self) -> list[str] | None:
        return None


class PodmanCase(Case):
    """podman run --rootfs on its own copy of the root file system."""

    def command(self) -> list[str]:
        # Its own storage (vfs: nothing mounted), no network, no event log; podman's
        # default limits (nofile, nproc 1048576) may be above the host's maxima.
        store = self.state
        return [*self.peer.argv, "--root", str(store / "s"), "--runroot", str(store / "r"),
                "--tmpdir", str(store / "t"), "--storage-driver", "vfs",
                "--cgroup-manager", "cgroupfs", "--events-backend", "none",
                "run", "--rm", "--network=none", "--ulimit=nofile=1024:1024",
                "--ulimit=nproc=4096:4096", "--name", self.ident(),
                "--rootfs", str(self.bundle / "rootfs"), "/bin/true"]

    def cleanup_command(self) -> list[str] | None:
        return None


def peers(hidden: HiddenUnified | None) -> list[tuple[Peer, type[Case], Callable[[], None]]]:
    crun_note = "in a mount namespace without the v2 hierarchy" if hidden else ""
    return [
        (Peer("hutch-runtime", [HUTCH_RUNTIME]), Case, _no_preexec),
        (Peer("runc", ["runc"]), Case, _no_preexec),
        (Peer("crun", ["crun"], note=crun_note), Case,
         hidden.preexec if hidden else _no_preexec),
        (Peer("lxc-execute", ["lxc-execute"]), LxcCase, _no_preexec),
        # podman's default runtime here is crun, which refuses this host (see above)
        (Peer("podman+runc", ["podman", "--runtime", "runc"]), PodmanCase, _no_preexec),
        (Peer("podman+hutch", ["podman", "--runtime", HUTCH_RUNTIME]), PodmanCase, _no_preexec),
    ]


def benchmark(work: Path, runs: int, warmup: int, wanted: set[str] | None,
              hidden: HiddenUnified | None) -> list[Result]:
    rootfs = Path(build_busybox_rootfs(str(work / "busybox")))
    bundle = make_bundle(work / "bundle", rootfs, ["/bin/true"]).path
    cases: dict[str, Case] = {}
    failed: list[Result] = []
    for peer, kind, preexec in peers(hidden):
        if wanted is not None and peer.name not in wanted or not peer.available():
            continue
        own_bundle = bundle
        if kind is PodmanCase:  # podman writes /etc/hosts & co into the root
            own_bundle = work / f"bundle-{peer.name}"
            copy_rootfs(rootfs, own_bundle / "rootfs")
        case = kind(peer, work / f"state-{peer.name}", own_bundle, preexec)
        print(f"{peer.name}: {peer.version()}\n    {shlex.join(case.command())}"
              + (f"\n    ({peer.note})" if peer.note else ""))
        try:  # one untimed run first: a peer that cannot run here is reported, not timed
            case.once()
            case.after()
            cases[peer.name] = case
        except RuntimeError as e:
            failed.append(Result(peer.name, error=f"failed: {e}"))
    timed = time_interleaved({n: c.once for n, c in cases.items()}, runs, warmup,
                             after={n: c.after for n, c in cases.items()})
    for name, result in timed.items():
        result.note = cases[name].peer.note
    return list(timed.values()) + failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per peer (50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (5)")
    parser.add_argument("--peers", help="comma separated names (default: all installed)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run me as root: the runtimes need it")
    wanted = set(args.peers.split(",")) if args.peers else None

    print(f"kernel {os.uname().release}, {os.cpu_count()} cpus, cgroups {cgroup_mode()}; "
          f"{args.runs} runs after {args.warmup} warm-up runs, peers taking turns; "
          "times are start to exit")
    # Every peer runs with the cgroup mounts rooted at our own cgroups, so that
    # podman's absolute /libpod_parent lands below them (house rule).
    cgroup_points = cgroupns.enter()
    hidden = HiddenUnified() if crun_needs_hidden_unified() and \
        (wanted is None or "crun" in wanted) else None
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        if hidden is not None:
            with hidden:
                results = benchmark(Path(tmp), args.runs, args.warmup, wanted, hidden)
        else:
            results = benchmark(Path(tmp), args.runs, args.warmup, wanted, None)
    for leftover in ("libpod_parent", "hutch"):
        cgroupns.remove_empty(cgroup_points, leftover)
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
